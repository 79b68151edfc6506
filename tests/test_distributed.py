"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 train a tfbin model with schedules."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import tfbin
    import tensorflow as tf
    from tfbin import models
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    tf.keras.utils.set_random_seed(0)
    with strategy.scope():
        model, callbacks = models.build("lenet_bnn", "irnet_cmim", epochs=2, bank_size=32)
        model.compile(tf.keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (128, 28, 28, 1)).astype("float32"), rng.integers(0, 10, 128)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    history = model.fit(data, epochs=2, callbacks=callbacks, verbose=0).history
    inner = model.inner
    print("RESULT " + json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "t": history["t"], "k": history["k"],
        "sharpness": {n: tfbin.sharpness.get(inner, n) for n in tfbin.sharpness.names(inner)},
        "loss": history["loss"], "cmim": history["cmim_loss"],
        "checksum": float(sum(np.abs(w).sum() for w in inner.get_weights())),
    }), flush=True)
    """
)


@pytest.mark.slow
def test_multi_worker_mirrored_strategy_two_processes(tmp_path):
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "TF_CPP_MIN_LOG_LEVEL": "3"}
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, cwd=tmp_path))
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
    assert all(r["replicas"] == 2 for r in results)
    # EDE's schedule, per epoch: t = 0.1 · 100^(e/2), k = max(1/t, 1), the same on both workers.
    for r in results:
        np.testing.assert_allclose(r["t"], [0.1, 1.0], rtol=1e-6)
        np.testing.assert_allclose(r["k"], [10.0, 1.0], rtol=1e-6)
        assert np.isfinite(r["loss"]).all() and np.isfinite(r["cmim"]).all()
    assert results[0]["sharpness"] == results[1]["sharpness"]
    # Synchronous training: both workers end with the same weights.
    np.testing.assert_allclose(results[0]["checksum"], results[1]["checksum"], rtol=1e-6)
