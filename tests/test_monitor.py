"""BinarizationMonitor: its numbers on models whose state is known."""
import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin import models
from tfbin.introspect import binarized_layers
from tfbin.callbacks import BinarizationMonitor
from tfbin.testing import randomize_batch_norm


def _data(rng, n=96):
    return rng.uniform(0, 1, (n, 28, 28, 1)).astype("float32"), rng.integers(0, 10, n)


def _fit(model, x, y, callbacks, epochs=2):
    model.compile(tf.keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model.fit(x, y, epochs=epochs, batch_size=32, callbacks=callbacks, verbose=0).history


@pytest.mark.parametrize("v, expected", [(1e9, 1.0), (1e-6, 0.0)])
@pytest.mark.margin(exact="lr 0, nothing trains: saturation 1.0 at v = 1e9 and 0.0 at v = 1e-6")
def test_saturation_of_a_model_in_a_known_state(rng, v, expected):
    model = models.build("lenet_bnn", "self_binarizing", epochs=2).model
    randomize_batch_norm(model, 0)
    tfbin.sharpness.set(model, "v", v)
    x, y = _data(rng)
    history = _fit(model, x, y, [BinarizationMonitor((x, y), samples=64)], epochs=1)
    assert history["saturation"] == [expected]
    for layer in binarized_layers(model):
        assert history[f"saturation_{layer.name}"] == [expected]


@pytest.mark.margin(exact="lr 0, nothing trains: flip ratios 0 and 1 after negating the kernels; the monitor's accuracies against evaluate() on the same weights")
def test_accuracies_are_soft_and_hard_evaluations_and_flips_are_counted(rng):
    model = models.build("lenet_bnn", "self_binarizing", epochs=2).model
    randomize_batch_norm(model, 0)
    tfbin.sharpness.set(model, "v", 0.5)  # soft and hard forms differ a lot
    x, y = _data(rng)
    layers = binarized_layers(model)
    negate = tf.keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: epoch == 1 and [l.kernel.assign(-l.kernel) for l in layers]
    )
    history = _fit(model, x, y, [negate, BinarizationMonitor((x, y))])
    assert history["flip_ratio"] == [0.0, 1.0]  # lr 0: nothing moves, then every sign flips
    soft = model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"]
    with tfbin.hard(model):
        hard = model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"]
    assert soft != hard
    np.testing.assert_allclose(history["val_soft_accuracy"][-1], soft, atol=1e-6)
    np.testing.assert_allclose(history["val_hard_accuracy"][-1], hard, atol=1e-6)
    np.testing.assert_allclose(history["soft_hard_gap"][-1], soft - hard, atol=1e-6)


@pytest.mark.margin(exact="lr 0, nothing trains: saturation 1.0 of sign-forward quantizers; error messages")
def test_sign_forward_quantizers_are_saturated_and_bad_input(rng):
    model = models.build("lenet_bnn", "ste").model
    x, y = _data(rng, 32)
    assert _fit(model, x, y, [BinarizationMonitor((x, y))], epochs=1)["saturation"] == [1.0]
    with pytest.raises(ValueError, match="validation_data"):
        BinarizationMonitor(x)
    with pytest.raises(ValueError, match="samples must be >= 1"):
        BinarizationMonitor((x, y), samples=0)
