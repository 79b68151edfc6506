"""Kernel constraints: values against their formula, the DAB recipe applies it in training."""
import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin.constraints import MeanCenteredClip


@pytest.mark.parametrize("shape", [(3, 3, 5, 4), (7, 6)])
def test_mean_centered_clip_centres_over_input_channels_then_clips(shape):
    w = np.random.default_rng(0).normal(0, 0.8, shape).astype("float32")
    got = MeanCenteredClip(0.5)(tf.constant(w)).numpy()
    expected = np.clip(w - w.mean(axis=-2, keepdims=True), -0.5, 0.5)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert np.abs(got).max() <= 0.5
    assert (np.abs(got) == 0.5).any()  # the clip is reached, so it is checked


def test_mean_centered_clip_rejects_vectors_and_bad_bounds():
    with pytest.raises(ValueError, match=r"input channels \(axis -2\).*kernel_constraint"):
        MeanCenteredClip()(tf.zeros((4,)))
    with pytest.raises(ValueError, match="clip_value must be > 0"):
        MeanCenteredClip(0)


def test_mean_centered_clip_round_trips_through_keras_serialization():
    restored = tf.keras.constraints.get(tf.keras.constraints.serialize(MeanCenteredClip(0.7)))
    assert isinstance(restored, MeanCenteredClip) and restored.clip_value == pytest.approx(0.7)
    assert isinstance(tf.keras.constraints.get("mean_centered_clip"), MeanCenteredClip)


def test_dab_mean_center_keeps_every_binarized_kernel_centred_while_training():
    inputs = tf.keras.Input((8, 8, 1))
    x = tf.keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Conv2D(8, 3, padding="same", name="conv")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(16, name="hidden")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3, name="classifier")(x))
    binarized, callbacks = tfbin.binarize(model, tfbin.recipes.get("dab", mean_center=True))
    binarized.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(1)
    binarized.fit(rng.normal(size=(32, 8, 8, 1)), rng.integers(0, 3, 32), epochs=1, batch_size=16, verbose=0, callbacks=callbacks)
    layers = {l.name: l for l in tfbin.unwrap(binarized).layers}
    for name in ("conv", "hidden"):
        kernel = layers[name].kernel.numpy()
        assert isinstance(layers[name].kernel_constraint, MeanCenteredClip)
        # The last step's update came before the constraint: centred up to the clip (none of
        # these small kernels reaches 1), so the mean over input channels is 0 to float error.
        assert np.abs(kernel).max() < 1.0
        np.testing.assert_allclose(kernel.mean(axis=-2), 0.0, atol=1e-6)
    assert not np.allclose(layers["stem"].kernel.numpy().mean(axis=-2), 0.0, atol=1e-6)  # float stem untouched
