"""SharpeningScheduler, sharpness get/set, hard mode, and sharpness surviving save/load."""
import os

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin import quantizers as Q
from tfbin import schedules, sharpness
from tfbin.callbacks import SharpeningScheduler


def tiny_model():
    return tf.keras.Sequential(
        [
            tf.keras.Input((4, 4, 1)),
            lq.layers.QuantConv2D(4, 3, padding="same", pad_values=1.0, input_quantizer=Q.EDESign(), kernel_quantizer=Q.LibraSign()),
            tf.keras.layers.Flatten(),
            lq.layers.QuantDense(3, input_quantizer=Q.SelfBinarizingSign(), kernel_quantizer=Q.EDESign()),
        ]
    )


def tiny_data(n=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4, 4, 1)).astype("float32"), rng.integers(0, 3, size=n)


class Recorder(tf.keras.callbacks.Callback):
    """Records the sharpness values in effect at every batch (after the scheduler ran)."""

    def __init__(self, names):
        super().__init__()
        self.names, self.seen = names, []

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append(tuple(sharpness.get(self.model, n) for n in self.names))


def compiled(model):
    model.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.margin(exact="sharpness values against the schedule's formula at each epoch, and their logged values")
def test_scheduler_sets_every_same_named_weight_per_epoch_and_logs_it():
    model = compiled(tiny_model())
    ede = schedules.ede(0.1, 10, epochs=4)
    recorder = Recorder(["t", "k"])
    x, y = tiny_data()
    history = model.fit(x, y, epochs=4, batch_size=32, verbose=0, callbacks=[SharpeningScheduler(ede), recorder])
    assert len(sharpness.variables(model, "t")) == 3  # conv input, conv kernel, dense kernel
    expected = [(ede["t"](e), ede["k"](e)) for e in range(4) for _ in range(2)]
    np.testing.assert_allclose(recorder.seen, expected, rtol=1e-6)
    np.testing.assert_allclose(history.history["t"], [ede["t"](e) for e in range(4)], rtol=1e-6)


@pytest.mark.margin(exact="sharpness at every batch against the schedule's formula at fractional epochs")
def test_scheduler_per_batch_uses_fractional_epochs():
    model = compiled(tiny_model())
    schedule = schedules.Linear(1, 9, epochs=2)
    recorder = Recorder(["v"])
    x, y = tiny_data()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[SharpeningScheduler({"v": schedule}, "batch"), recorder])
    expected = [schedule(e + b / 4) for e in range(2) for b in range(4)]
    np.testing.assert_allclose(np.ravel(recorder.seen), expected, rtol=1e-6)


class Interrupt(tf.keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if self.model._tfbin_epoch == 2 and batch == 1:
            raise KeyboardInterrupt("simulated interruption")

    def on_epoch_begin(self, epoch, logs=None):
        self.model._tfbin_epoch = epoch


@pytest.mark.margin(exact="sharpness at every batch of the resumed run against the uninterrupted run's (the schedule's formula); batch counts")
def test_resume_after_a_real_interruption_gives_the_same_values(tmp_path):
    x, y = tiny_data()
    schedule = schedules.Exponential(1, 100, epochs=5)

    def run(extra):
        model = compiled(tiny_model())
        recorder = Recorder(["v"])
        callbacks = [SharpeningScheduler({"v": schedule}, "batch"), recorder] + extra
        try:
            model.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=callbacks)
            interrupted = False
        except KeyboardInterrupt:
            interrupted = True
        return np.ravel(recorder.seen), interrupted

    uninterrupted, _ = run([])
    backup = tf.keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    first, interrupted = run([backup, Interrupt()])
    assert interrupted
    resumed, _ = run([tf.keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))])
    assert len(first) == 2 * 4 + 2  # two epochs, then two batches of the third
    np.testing.assert_allclose(resumed, uninterrupted[8:], rtol=1e-6)  # resumes at epoch 2


@pytest.mark.margin(exact="fit fails at train begin, before any step: error type and message")
def test_unknown_sharpness_name_lists_the_known_ones():
    model = compiled(tiny_model())
    x, y = tiny_data()
    with pytest.raises(KeyError, match=r"'v_typo'.*\['h', 'k', 't', 'v'\]"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[SharpeningScheduler({"v_typo": 3.0})])
    with pytest.raises(ValueError, match="update_freq"):
        SharpeningScheduler({"v": 1.0}, update_freq="step")


def test_scheduler_config_round_trip():
    scheduler = SharpeningScheduler(schedules.ede(0.01, 10, 40), update_freq="batch")
    clone = SharpeningScheduler.from_config(scheduler.get_config())
    assert clone.schedules == scheduler.schedules and clone.update_freq == "batch"


def test_hard_mode_switches_forms_and_recompiles(rng):
    model = compiled(tiny_model())
    x, y = tiny_data()
    model(x)
    sharpness.set(model, "v", 0.5)  # far from the hard sign
    soft = model.predict(x, verbose=0)
    with tfbin.hard(model):
        hard = model.predict(x, verbose=0)
        assert all(q.hard_mode for q in sharpness.quantizers(model))
    assert np.abs(soft - hard).max() > 1e-2
    np.testing.assert_allclose(model.predict(x, verbose=0), soft, rtol=1e-6)
    with pytest.raises(ValueError, match="no binarized layers"):
        with tfbin.hard(tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)])):
            raise AssertionError("hard() must refuse a model without binarized layers")
    ste = tfbin.models.build("lenet_bnn", "ste").model  # larq's ste_sign: already deployed form
    with tfbin.hard(ste) as same:
        assert same is ste


@pytest.mark.parametrize("fmt", ["model.h5", "model.keras", "saved_model"])
def test_sharpness_values_survive_save_and_load(tmp_path, fmt):
    model = tiny_model()
    x, _ = tiny_data(8)
    model(x)
    sharpness.set(model, "t", 3.25)
    sharpness.set(model, "v", 7.5)
    path = os.fspath(tmp_path / fmt)
    model.save(path)
    loaded = tf.keras.models.load_model(path)  # no custom_objects: tfbin registered them
    assert sharpness.get(loaded, "t") == 3.25 and sharpness.get(loaded, "v") == 7.5
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    with tfbin.hard(loaded), tfbin.hard(model):
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


RESUME_UNDER_DETERMINISM = """
import json, sys
import numpy as np
import tfbin
import tensorflow as tf
tf.config.experimental.enable_op_determinism()
EPOCHS = 3
rng = np.random.default_rng(0)
x, y = rng.uniform(0, 1, (192, 28, 28, 1)).astype("float32"), rng.integers(0, 10, 192)
# BackupAndRestore checkpoints the model, not the input pipeline: the batches of an epoch must
# not depend on how many epochs this process has run (no reshuffling iterator).
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)

class Interrupt(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 2:
            raise KeyboardInterrupt("simulated interruption in epoch 2")

def run(extra):
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    model, callbacks = tfbin.models.build("lenet_bnn", "irnet_cmim", epochs=EPOCHS, bank_size=64)
    model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    try:
        history = model.fit(data, epochs=EPOCHS, callbacks=[*callbacks, *extra], verbose=0).history
    except KeyboardInterrupt:
        return None
    state = [v.numpy() for v in model.weights + model.optimizer.variables]
    return state, history

backup = sys.argv[1]
full, full_history = run([])
assert run([tf.keras.callbacks.BackupAndRestore(backup), Interrupt()]) is None
resumed, resumed_history = run([tf.keras.callbacks.BackupAndRestore(backup)])
print(json.dumps({
    "count": len(full), "resumed_count": len(resumed),
    "max_diff": max(float(np.abs(a.astype("float64") - b).max()) for a, b in zip(full, resumed)),
    "moved_epochs": len(resumed_history["loss"]),
    "t_full": full_history["t"][-1:], "t_resumed": resumed_history["t"],
}))
"""


@pytest.mark.slow
@pytest.mark.margin(exact="weights and optimizer state bitwise equal under op determinism; counts of variables and epochs")
def test_resumed_run_ends_bitwise_on_the_uninterrupted_weights_under_op_determinism(tmp_path):
    """irnet_cmim (schedules, BN statistics, contrastive heads and memory bank, Adam state):
    interrupted mid-epoch 2 and resumed in a new model, it ends on exactly the weights and
    optimizer state of an uninterrupted run (tolerance 0) when op determinism is on."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", RESUME_UNDER_DETERMINISM, str(tmp_path / "backup")],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["count"] == result["resumed_count"] > 20  # weights, BN stats, heads, banks, Adam slots
    assert result["moved_epochs"] == 2  # the resumed fit ran epochs 2 and 3 only
    assert result["t_resumed"][-1] == result["t_full"][-1]
    assert result["max_diff"] == 0.0
