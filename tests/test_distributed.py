"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 train a tfbin model with a
sharpening schedule and the contrastive loss, and end where one device ends on the same global
batches."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

# A net without batch statistics (LayerNormalization before every binarized layer and after the
# last one, so binarize inserts no BatchNormalization, whose per-replica statistics would make
# the two set-ups differ), binarized with self_binarizing with v kept small for activations and kernels, and the schedule shape of its earlier defaults (its tanh(v·x)
# forward is then smooth, so float summation order cannot flip a sign and fork the runs; with
# v in the hundreds the two set-ups drift apart within a few steps, as any two runs of a
# near-sign network do), plus ContrastiveMI with a memory bank. The global batch is 32; with
# two workers each takes its half of every global batch, so both set-ups see the same samples
# at every step.
WORKER = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import tfbin
    import tensorflow as tf
    from tfbin.losses import ContrastiveMI
    GLOBAL_BATCH, STEPS, EPOCHS = 32, 4, 2
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    tf.keras.utils.set_random_seed(int(os.environ.get("TFBIN_TEST_SEED", "0")))
    with strategy.scope():
        float_model = tf.keras.Sequential([
            tf.keras.layers.Conv2D(8, 3, input_shape=(16, 16, 1)),
            tf.keras.layers.LayerNormalization(),
            tf.keras.layers.Conv2D(16, 3, strides=2),
            tf.keras.layers.LayerNormalization(),
            tf.keras.layers.Conv2D(16, 3, strides=2),
            tf.keras.layers.LayerNormalization(),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(32),
            tf.keras.layers.LayerNormalization(),
            tf.keras.layers.Dense(10),
        ])
        binarized = tfbin.binarize(float_model, "self_binarizing", epochs=EPOCHS, v_end=4.0, v_kernel_end=4.0, sharpen=0.75, warmup=0.0, finish=0.25)
        model = ContrastiveMI(0.5, bank_size=32, projection_dim=16).wrap(binarized.model)
        model.compile(tf.keras.optimizers.SGD(0.01),
                      tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(int(os.environ.get("TFBIN_TEST_SEED", "0")))
    x = rng.uniform(0, 1, (GLOBAL_BATCH * STEPS, 16, 16, 1)).astype("float32")
    y = rng.integers(0, 10, GLOBAL_BATCH * STEPS)

    def dataset_fn(context):
        per_worker = GLOBAL_BATCH // context.num_input_pipelines
        part = slice(context.input_pipeline_id * per_worker, (context.input_pipeline_id + 1) * per_worker)
        batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
        return batches.map(lambda a, b: (a[part], b[part])).repeat()

    initial = [w.numpy() for w in model.inner.trainable_weights]
    history = model.fit(tf.keras.utils.experimental.DatasetCreator(dataset_fn), epochs=EPOCHS,
                        steps_per_epoch=STEPS, callbacks=binarized.callbacks, verbose=0).history
    print("RESULT " + json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "v": history["v"],
        "sharpness": {n: tfbin.sharpness.get(model.inner, n) for n in tfbin.sharpness.names(model.inner)},
        "loss": history["loss"], "cmim": history["cmim_loss"],
        # trained weights, schedule variables and memory banks (not the metrics' accumulators)
        "weights": [w.numpy().ravel().tolist() for w in
                    model.trainable_weights + model.inner.non_trainable_weights + model.terms[0].non_trainable_weights],
        "moved": max(float(np.abs(a - b.numpy()).max()) for a, b in zip(initial, model.inner.trainable_weights)),
    }), flush=True)
    """
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _runs(directory, seed=0):
    """Two workers of a MultiWorkerMirroredStrategy on 127.0.0.1 and one device, each running
    WORKER with `seed`: (worker results, single-device result)."""
    cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(2)]}
    configs = [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(2)]
    procs = []
    for tf_config in [*configs, None]:  # two workers, then one device (no TF_CONFIG: one local replica)
        env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
        env.update({"TF_CPP_MIN_LOG_LEVEL": "3", "TFBIN_TEST_SEED": str(seed)})
        if tf_config:
            env["TF_CONFIG"] = tf_config
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, cwd=directory))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=480))
    finally:
        for proc in procs:
            proc.kill()
    results = []
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[len("RESULT "):]))
    return results[:2], results[2]


def multiworker_figures(seed=0):
    """How far two workers end from one device on the same global batches (float summation
    order), and how far training moved the weights."""
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        workers, single = _runs(directory, seed)
    dist, one = (np.concatenate([np.ravel(w) for w in r["weights"]]) for r in (workers[0], single))
    relative = lambda a, b: float(np.max(np.abs(np.subtract(a, b)) / np.abs(b)))  # noqa: E731
    return {
        "multiworker_weight_gap": float(np.max(np.abs(dist - one) - 1e-4 * np.abs(one))),
        "multiworker_loss_gap": max(relative(workers[0][k], single[k]) for k in ("loss", "cmim")),
        "multiworker_moved": single["moved"],
    }


@pytest.mark.slow
@pytest.mark.release  # three processes, ~1-2 min; the mirrored-strategy test in test_cmim.py runs in make test
@pytest.mark.margin("multiworker_weight_gap", "multiworker_loss_gap", "multiworker_moved")
def test_two_workers_equal_one_device_on_the_same_global_batch(tmp_path):
    workers, single = _runs(tmp_path, seed=0)
    results = [*workers, single]
    assert [r["replicas"] for r in results] == [2, 2, 1]
    # SBN's schedule, set every batch and logged at the last one (step 4e + 3 of 8): exponential
    # from 1 to 4 over the first 3/4 of training (sharpen=0.75), then held: v = 4^min(1, step/6).
    for r in results:
        np.testing.assert_allclose(r["v"], [4 ** 0.5, 4 ** 1.0], rtol=1e-6)
        assert r["sharpness"] == single["sharpness"]
        assert np.isfinite(r["loss"]).all() and np.isfinite(r["cmim"]).all()
    # Synchronous training: both workers hold the same weights ...
    for a, b in zip(workers[0]["weights"], workers[1]["weights"]):
        np.testing.assert_array_equal(a, b)
    # ... which are those of one device trained on the same global batches (the contrastive
    # loss's negatives span both workers, with their gradient), up to float summation order.
    assert len(workers[0]["weights"]) == len(single["weights"])
    # Bounds: rtol 1e-4 + atol 1e-5 on weights, rtol 1e-4 on losses, moved > 1e-3; the measured
    # spreads (seeds 0-2 x oneDNN 0/1) are in bench/results/test_margins.json.
    for dist, one in zip(workers[0]["weights"], single["weights"]):
        np.testing.assert_allclose(dist, one, rtol=1e-4, atol=1e-5)
    assert single["moved"] > 1e-3  # training really changed the weights the comparison is about
    np.testing.assert_allclose(workers[0]["loss"], single["loss"], rtol=1e-4)
    np.testing.assert_allclose(workers[0]["cmim"], single["cmim"], rtol=1e-4)
