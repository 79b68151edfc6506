"""The Keras 3 path on its own: what `pip install tfbin` (no `[larq]` extra) gives a user who starts
with TensorFlow today. These tests need neither larq nor tf-keras, so `make test-keras3` runs them
in a virtualenv with the newest TensorFlow the path supports and no Keras 2 at all; `make test`
runs them beside the Keras 2 path.

Values are checked against the papers' formulas written here in NumPy, not against
`tfbin.formulas` (which the quantizers use).
"""
import importlib.util
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfbin.keras3 as tb
from tfbin import schedules
from gradients import value_and_grad

WITHOUT_KERAS2 = importlib.util.find_spec("larq") is None


@pytest.mark.skipif(not WITHOUT_KERAS2, reason="larq is installed: the Keras 2 path may load it (test_keras3.py checks the import in a subprocess)")
def test_nothing_of_keras2_is_loaded():
    assert not {"larq", "tf_keras", "larq_zoo"} & set(sys.modules)
    assert keras.__version__.startswith("3.")


def test_ste_sign_is_the_sign_with_a_gradient_clipped_at_one():
    x = np.array([-2.0, -1.0, -0.3, 0.0, 0.4, 1.0, 1.5], np.float32)
    y, grad = value_and_grad(tb.SteSign(), x)
    np.testing.assert_array_equal(y, np.where(x >= 0, 1.0, -1.0))  # sign(0) = +1
    np.testing.assert_array_equal(grad, (np.abs(x) <= 1).astype(np.float32))


def test_ede_sign_forward_is_the_sign_and_its_gradient_is_k_t_sech2():
    x = np.linspace(-2, 2, 41).astype(np.float32)
    quantizer = tb.EDESign()
    quantizer.build(x.shape)
    t, k = 0.7, 1 / 0.7  # IR-Net: k = max(1/t, 1)
    quantizer.sharpness_weights["t"].assign(t)
    quantizer.sharpness_weights["k"].assign(k)
    y, grad = value_and_grad(quantizer, x)
    np.testing.assert_array_equal(y, np.where(x >= 0, 1.0, -1.0))
    np.testing.assert_allclose(grad, k * t * (1 - np.tanh(t * x) ** 2), rtol=1e-5, atol=1e-6)


def small_binary_model():
    return keras.Sequential([
        keras.Input((12, 12, 3)),
        keras.layers.Conv2D(8, 3, padding="same", use_bias=False),
        keras.layers.BatchNormalization(),
        tb.QuantConv2D(16, 3, input_quantizer=tb.EDESign(), kernel_quantizer="ste_sign",
                       kernel_constraint="weight_clip", padding="same", pad_values=1.0, use_bias=False),
        keras.layers.BatchNormalization(),
        tb.QuantConv2D(16, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                       kernel_constraint="weight_clip", padding="same", pad_values=1.0, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(4, activation="softmax"),
    ])


@pytest.mark.margin(exact="sharpness values against the schedule, clipped kernels, recalibrate's report, the op histogram")
def test_a_binary_net_trains_sharpens_and_exports_with_every_binary_conv_fused():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(64, 12, 12, 3)).astype(np.float32)
    y = np.arange(64) % 4
    model = small_binary_model()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    ede = schedules.ede(0.1, 10.0, epochs=3)
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[tb.SharpeningScheduler(ede)])
    assert all(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
    for name, schedule in ede.items():  # set at the start of the last epoch (index 2)
        assert tb.sharpness.get(model, name) == pytest.approx(schedule(2), rel=1e-6)
    kernels = [l.kernel.numpy() for l in model.layers if isinstance(l, tb.QuantConv2D)]
    assert all(np.abs(k).max() <= 1.0 for k in kernels)  # weight_clip
    report = tb.recalibrate(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(16), steps=4)
    assert report == {"batch_norms": 3, "steps": 4}
    flatbuffer = tb.convert(model)
    histogram = tb.op_histogram(flatbuffer)
    assert histogram["LceBconv2d"] == 2 and histogram["CONV_2D"] == 1
    # The export's figures need no Keras 2 either: the sizes and the margins of the tie-aware parity.
    assert len(tb.float_flatbuffer(model)) > len(flatbuffer) > tb.one_bit_limit_bytes(model) > 0
    with tb.hard(model):
        margins = tb.margins(model, x)
    assert margins.shape == (64,) and np.all(margins >= 0) and np.any(margins > 64)


def test_an_export_verifies_against_lces_interpreter():
    rng = np.random.default_rng(1)
    model = small_binary_model()
    x = rng.uniform(size=(32, 12, 12, 3)).astype(np.float32)
    found = tb.verify(model, tb.convert(model), x)
    assert found["passed"] and found["samples"] == 32 and found["unexplained_mismatches"] == 0, found


@pytest.mark.margin(exact="layer classes, quantizer classes, sharpness against the schedule, the op histogram")
def test_binarize_applies_a_built_in_recipe_without_keras2():
    # The recipes are tfbin.builtin_recipes' configs: IR-Net's EDE activations and Libra-PB kernels,
    # its EDE schedule driving the sharpness, every binarized layer an LCE binary conv.
    L = keras.layers
    float_model = keras.Sequential([
        keras.Input((12, 12, 3)),
        L.Conv2D(8, 3, padding="same", activation="relu"),
        L.Conv2D(32, 3, padding="same", activation="relu"),
        L.GlobalAveragePooling2D(),
        L.Dense(32, activation="relu"),
        L.Dense(4),
    ])
    with pytest.warns(UserWarning, match="removed activation 'relu'"):
        model, callbacks = tb.binarize(float_model, "irnet", epochs=2, t_min=0.5, t_max=5.0)
    binary = [l for l in model.layers if isinstance(l, (tb.QuantConv2D, tb.QuantDense))]
    assert [type(l).__name__ for l in binary] == ["QuantConv2D", "QuantDense"]
    assert all(type(l.input_quantizer) is tb.EDESign and type(l.kernel_quantizer) is tb.LibraSign for l in binary)
    assert [type(c) for c in callbacks] == [tb.SharpeningScheduler]
    rng = np.random.default_rng(2)
    x, y = rng.uniform(size=(32, 12, 12, 3)).astype(np.float32), np.arange(32) % 4
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=callbacks)
    assert tb.sharpness.get(model, "t") == pytest.approx(schedules.ede(0.5, 5.0, epochs=2)["t"](1), rel=1e-6)
    assert tb.op_histogram(tb.convert(model))["LceBconv2d"] == 2
    with pytest.raises(NotImplementedError, match="ContrastiveMI"):
        tb.binarize(float_model, "irnet_cmim", epochs=2)
    with pytest.raises(ValueError, match="Unknown recipe 'irnett'"):
        tb.binarize(float_model, "irnett", epochs=2)
