"""tfbin.tuning: search spaces, keras-tuner tuners for tf_keras models, distributed mode, CLI."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin import tuning
from tfbin.introspect import binarized_layers


def _data(n=128, seed=0):
    """Two classes a small net learns in an epoch: brighter top half or brighter bottom half."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 28, 28, 1)).astype("float32")
    y = (x[:, :14].mean((1, 2, 3)) > x[:, 14:].mean((1, 2, 3))).astype("int64")
    split = n * 3 // 4
    return (
        tf.data.Dataset.from_tensor_slices((x[:split], y[:split])).batch(32),
        tf.data.Dataset.from_tensor_slices((x[split:], y[split:])).batch(64),
    )


class _Record(tf.keras.callbacks.Callback):
    """Per fit: the sharpness at the first epoch and the first binarized kernel at the start."""

    def __init__(self):
        super().__init__()
        self.runs = []

    def on_train_begin(self, logs=None):
        self.runs.append({"kernel": binarized_layers(self.model)[0].kernel.numpy().copy()})

    def on_epoch_begin(self, epoch, logs=None):
        self.runs[-1].setdefault("first_epoch", epoch)
        self.runs[-1].setdefault("t", tfbin.sharpness.get(self.model, "t"))


def test_space_values_reach_the_sharpness_weights_of_the_trained_model(tmp_path):
    space = tuning.SearchSpace("irnet", t_start=(0.2, 0.5), t_end=(2.0, 4.0), kind=["linear"], warmup=0.0, hardening=0.0)
    tuner = tuning.RandomSearch("lenet_bnn", space, max_trials=2, max_epochs=2, directory=str(tmp_path), seed=1)
    tuner.search(*_data())
    for trial in tuner.oracle.trials.values():
        values = trial.hyperparameters.values
        model = tuner.load_model(trial)
        # Linear over 2 epochs, set at epoch starts: epoch 1 (the last) used start + (end - start) / 2.
        expected = values["t_start"] + (values["t_end"] - values["t_start"]) / 2
        np.testing.assert_allclose(tfbin.sharpness.get(model, "t"), expected, rtol=1e-6)
        np.testing.assert_allclose(tfbin.sharpness.get(model, "k"), max(1 / expected, 1), rtol=1e-6)
    recipe = tuner.best_recipe()
    best = tuner.oracle.get_best_trials(1)[0].hyperparameters.values
    assert recipe.params["searched"]["t_end"] == best["t_end"]
    assert recipe.schedules["t"](2) == pytest.approx(best["t_end"])


def test_the_objective_is_the_hard_accuracy(tmp_path):
    # v stays small: tanh(v·x) is far from sign(x), so soft and hard accuracies differ.
    space = tuning.SearchSpace("self_binarizing", v_start=0.5, v_end=(0.6, 0.7), kind="exponential", lr=1e-2)
    tuner = tuning.RandomSearch("lenet_bnn", space, max_trials=1, max_epochs=1, directory=str(tmp_path))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (768, 28, 28, 1)).astype("float32")
    y = x[:, :, :20, 0].reshape(768, 28, 10, 2).mean((1, 3)).argmax(1)  # 10 classes: the brightest band
    train = tf.data.Dataset.from_tensor_slices((x[:256], y[:256])).batch(32)
    validation = tf.data.Dataset.from_tensor_slices((x[256:], y[256:])).batch(128)
    tuner.search(train, validation)
    trial = tuner.oracle.get_best_trials(1)[0]
    model = tuner.load_model(trial)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    soft = model.evaluate(validation, verbose=0, return_dict=True)["accuracy"]
    with tfbin.hard(model):
        hard = model.evaluate(validation, verbose=0, return_dict=True)["accuracy"]
    assert trial.score == pytest.approx(hard, abs=1e-6)
    assert trial.metrics.get_last_value("val_soft_accuracy") == pytest.approx(soft, abs=1e-6)
    assert soft != hard


def test_hyperband_continues_parents_weights_on_the_same_schedule(tmp_path):
    record = _Record()
    tuner = tuning.Hyperband("lenet_bnn", "irnet", max_epochs=3, factor=3, directory=str(tmp_path), seed=0, callbacks=[record])
    tuner.search(*_data())
    trials = list(tuner.oracle.trials.values())
    children = [t for t in trials if "tuner/trial_id" in t.hyperparameters.values]
    assert children, "Hyperband made no continued trial"
    order = sorted(trials, key=lambda t: t.trial_id)
    for child in children:
        run = record.runs[order.index(child)]
        parent = tuner.oracle.get_trial(child.hyperparameters.values["tuner/trial_id"])
        parent_kernel = binarized_layers(tuner.load_model(parent))[0].kernel.numpy()
        np.testing.assert_array_equal(run["kernel"], parent_kernel)
        initial = child.hyperparameters.values["tuner/initial_epoch"]
        assert run["first_epoch"] == initial
        schedule = tuner.hypermodel.build(child.hyperparameters).schedules["t"]
        np.testing.assert_allclose(run["t"], schedule(initial), rtol=1e-6)  # not restarted at t(0)


def test_search_resumes_in_the_same_directory(tmp_path):
    train, validation = _data()
    first = tuning.RandomSearch("lenet_bnn", "ste", max_trials=1, max_epochs=1, directory=str(tmp_path), seed=0)
    first.search(train, validation)
    again = tuning.RandomSearch("lenet_bnn", "ste", max_trials=2, max_epochs=1, directory=str(tmp_path), seed=0)
    assert len(again.oracle.trials) == 1  # reloaded
    again.search(train, validation)
    assert len(again.oracle.trials) == 2 and all(t.status == "COMPLETED" for t in again.oracle.trials.values())


def test_bad_ranges_give_clear_errors():
    with pytest.raises(ValueError, match="no hyperparameter 'v_end'"):
        tuning.SearchSpace("irnet", v_end=(1, 2))
    with pytest.raises(ValueError, match="min < max"):
        tuning.SearchSpace("irnet", t_end=(10.0, 1.0))
    with pytest.raises(ValueError, match="log sampling needs min > 0"):
        tuning.SearchSpace("irnet", t_start=(0.0, 1.0))
    with pytest.raises(ValueError, match="fraction of training"):
        tuning.SearchSpace("irnet", warmup=(0.0, 1.5))
    with pytest.raises(ValueError, match="unknown schedule kind"):
        tuning.SearchSpace("irnet", kind=["sawtooth"])
    with pytest.raises(ValueError, match="No search space for recipe 'nope'"):
        tuning.SearchSpace("nope")
    with pytest.raises(ValueError, match="Unknown model"):
        tuning.RandomSearch("nope", "irnet")
    space = tuning.SearchSpace("irnet", t_end=(5.0, 50.0), kind=["exponential", "cosine"], lr=1e-3)
    assert tuning.SearchSpace.from_config(json.loads(json.dumps(space.get_config()))).entries == space.entries


@pytest.mark.slow
def test_distributed_chief_and_two_workers_finish_their_trials(tmp_path):
    script = textwrap.dedent(
        """
        import os, sys
        import numpy as np
        import tfbin
        import tensorflow as tf
        from tfbin import tuning
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 1, (96, 28, 28, 1)).astype("float32")
        y = (x[:, :14].mean((1, 2, 3)) > x[:, 14:].mean((1, 2, 3))).astype("int64")
        train = tf.data.Dataset.from_tensor_slices((x[:64], y[:64])).batch(32)
        validation = tf.data.Dataset.from_tensor_slices((x[64:], y[64:])).batch(32)
        tuner = tuning.RandomSearch("lenet_bnn", "irnet", max_trials=4, max_epochs=1, directory=sys.argv[1], seed=0)
        tuner.search(train, validation)
        print("finished", os.environ["KERASTUNER_TUNER_ID"], flush=True)
        """
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = {**os.environ, "KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": "127.0.0.1",
               "KERASTUNER_ORACLE_PORT": str(port), "TF_CPP_MIN_LOG_LEVEL": "3"}
        procs[tuner_id] = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], env=env,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = {}
    try:
        for tuner_id, proc in procs.items():
            outputs[tuner_id] = proc.communicate(timeout=480)
    finally:
        for proc in procs.values():
            proc.kill()
    for tuner_id, proc in procs.items():
        assert proc.returncode == 0, (tuner_id, outputs[tuner_id][1][-2000:])
        assert f"finished {tuner_id}" in outputs[tuner_id][0]
    trials = [json.load(open(os.path.join(tmp_path, "untitled_project", d, "trial.json")))
              for d in os.listdir(os.path.join(tmp_path, "untitled_project")) if d.startswith("trial_")]
    assert len(trials) == 4 and all(t["status"] == "COMPLETED" for t in trials)
    assert all("val_hard_accuracy" in t["metrics"]["metrics"] for t in trials)
