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


@pytest.mark.margin(exact="binarized kernels' input-channel means against 0 (the constraint's formula on the trained weights; init + 2 Adam steps stay far below the clip at 1); float kernels left uncentred")
def test_dab_mean_center_keeps_every_binarized_kernel_centred_while_training():
    model, callbacks = tfbin.models.build("lenet_bnn", tfbin.recipes.get("dab", mean_center=True))
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    model.fit(rng.normal(size=(32, 28, 28, 1)), rng.integers(0, 10, 32), epochs=1, batch_size=16, verbose=0, callbacks=callbacks)
    kernels = [l for l in tfbin.unwrap(model).layers if getattr(l, "kernel", None) is not None]
    first, binarized, last = kernels[0], kernels[1:-1], kernels[-1]
    assert [type(l.kernel_constraint) for l in binarized] == [MeanCenteredClip, MeanCenteredClip]
    for layer in binarized:
        kernel = layer.kernel.numpy()
        # Keras applies the constraint after the last step's update: centred exactly, as no
        # weight of these freshly initialized kernels reaches the clip at 1.
        assert np.abs(kernel).max() < 1.0
        np.testing.assert_allclose(kernel.mean(axis=-2), 0.0, atol=1e-6)
    for layer in (first, last):  # full precision: left as trained
        assert layer.kernel_constraint is None
        assert np.abs(layer.kernel.numpy().mean(axis=-2)).max() > 1e-4
