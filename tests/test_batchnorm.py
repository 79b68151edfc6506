"""tfbin.recalibrate: BatchNorm statistics of the hard form, against their definition."""
import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin import quantizers as Q


def soft_hard_net():
    inputs = tf.keras.Input((6, 6, 2))
    x = tf.keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization(name="bn1")(x)
    x = lq.layers.QuantConv2D(5, 3, padding="same", pad_values=1.0, input_quantizer=Q.BoundedRectifier(),
                              kernel_quantizer="ste_sign", name="binary")(x)
    x = tf.keras.layers.BatchNormalization(name="bn2")(x)
    x = tf.keras.layers.Dropout(0.9)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3, name="head")(x))


def test_moving_statistics_become_the_mean_of_hard_batch_statistics(rng):
    model = soft_hard_net()
    batches = [rng.normal(size=(16, 6, 6, 2)).astype("float32") * (k + 1) for k in range(3)]
    weights_before = {w.name: w.numpy() for w in model.weights if "moving" not in w.name}
    # Expected, from the definition: per batch, BN1 normalizes with that batch's statistics,
    # the rectifier is in its hard form (a step), and BN2's statistics are those of its input
    # (Keras keeps the unbiased variance in the moving average).
    stem = tf.keras.Model(model.inputs, model.get_layer("stem").output)
    bn2_input = tf.keras.Model(model.inputs, model.get_layer("bn2").input)
    expected = {"bn1": [], "bn2": []}
    with tfbin.hard(model):
        for x in batches:
            s = stem(x).numpy()
            expected["bn1"].append((s.mean((0, 1, 2)), s.reshape(-1, 4).var(0, ddof=1)))
            b = bn2_input(x, training=True).numpy()
            expected["bn2"].append((b.mean((0, 1, 2)), b.reshape(-1, 5).var(0, ddof=1)))
    result = tfbin.recalibrate(model, tf.data.Dataset.from_tensor_slices(np.concatenate(batches)).batch(16), steps=None)
    assert result == {"batch_norms": 2, "steps": 3}
    for name in ("bn1", "bn2"):
        bn = model.get_layer(name)
        np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([m for m, _ in expected[name]], 0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([v for _, v in expected[name]], 0), rtol=1e-3, atol=1e-5)
        assert bn.momentum == 0.99  # restored
    for w in model.weights:  # nothing else moved
        if "moving" not in w.name:
            np.testing.assert_array_equal(w.numpy(), weights_before[w.name])
    assert not any(q.hard_mode for q in tfbin.sharpness.quantizers(model))
    assert model.layers[-3].rate == 0.9  # Dropout restored (and off during recalibration)


def test_recalibration_closes_the_gap_of_statistics_learned_on_soft_activations(rng):
    # BN2 after a soft ramp learned the soft statistics; the hard model is scored with them.
    model = soft_hard_net()
    x = rng.normal(size=(256, 6, 6, 2)).astype("float32")
    tfbin.recalibrate(model, x)  # statistics of the hard form
    with tfbin.hard(model):
        hard_outputs = model.predict(x, verbose=0)
    for _ in range(3):  # then soft batch statistics overwrite them, as in training
        model(x, training=True)
    bn2 = model.get_layer("bn2")
    bn2.moving_mean.assign(tf.zeros_like(bn2.moving_mean))
    with tfbin.hard(model):
        stale = model.predict(x, verbose=0)
    tfbin.recalibrate(model, tf.data.Dataset.from_tensor_slices(x).batch(256), steps=1)
    with tfbin.hard(model):
        again = model.predict(x, verbose=0)
    assert np.abs(stale - hard_outputs).max() > 1e-2
    np.testing.assert_allclose(again, hard_outputs, rtol=1e-4, atol=1e-4)


def test_a_check_set_keeps_the_new_statistics_only_if_its_hard_accuracy_does_not_drop(rng):
    model = soft_hard_net()
    x = rng.normal(size=(256, 6, 6, 2)).astype("float32")
    bn2 = model.get_layer("bn2")

    # The labels come from the very calls the check makes (same batches, eager): no near-tie
    # can flip an argmax between two kernels' sums.
    def predictions():
        with tfbin.hard(model):
            return np.concatenate([np.asarray(model(x[i : i + 64], training=False)).argmax(-1) for i in range(0, len(x), 64)])

    def labelled(y):
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(64)

    tfbin.recalibrate(model, x)
    recalibrated, recalibrated_mean = predictions(), bn2.moving_mean.numpy()
    bn2.moving_mean.assign(bn2.moving_mean + 3.0)  # stale statistics that change the predictions
    stale, stale_mean = predictions(), bn2.moving_mean.numpy()
    assert (stale != recalibrated).any()

    # Labels the stale model gets all right: recalibration lowers their accuracy and is undone.
    kept = tfbin.recalibrate(model, x, check=labelled(stale))
    assert kept["applied"] is False and kept["check_accuracy_before"] == 1.0 and kept["check_images"] == len(x)
    assert kept["check_accuracy_after"] == round(float((recalibrated == stale).mean()), 4)
    np.testing.assert_array_equal(bn2.moving_mean.numpy(), stale_mean)

    # Labels the recalibrated model gets all right (one-hot): the new statistics stay.
    applied = tfbin.recalibrate(model, x, check=labelled(np.eye(3, dtype="float32")[recalibrated]))
    assert applied["applied"] is True and applied["check_accuracy_after"] == 1.0
    assert applied["check_accuracy_before"] == round(float((recalibrated == stale).mean()), 4)
    np.testing.assert_allclose(bn2.moving_mean.numpy(), recalibrated_mean, rtol=1e-5, atol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="no BatchNormalization"):
        tfbin.recalibrate(tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)]), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="positive integer"):
        tfbin.recalibrate(soft_hard_net(), np.zeros((4, 6, 6, 2)), steps=0)
    with pytest.raises(ValueError, match="empty"):
        tfbin.recalibrate(soft_hard_net(), tf.data.Dataset.from_tensor_slices(np.zeros((0, 6, 6, 2), "float32")).batch(2))
    with pytest.raises(ValueError, match="empty `check`"):
        empty = tf.data.Dataset.from_tensor_slices((np.zeros((0, 6, 6, 2), "float32"), np.zeros(0))).batch(2)
        tfbin.recalibrate(soft_hard_net(), np.zeros((4, 6, 6, 2)), check=empty)
