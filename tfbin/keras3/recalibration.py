"""BatchNorm statistics for the deployed (hard) form of a Keras 3 binary net.

`tfbin.recalibrate` for Keras 3, with the same rule and the same report: a soft-forward recipe
(Self-Binarizing's `tanh(v·x)`, ABR's ramp) learns its BatchNormalization moving statistics on
soft activations, while the deployed model computes hard ones; `recalibrate` re-estimates them
with every quantizer in its hard form (see `tfbin.batchnorm` for the reasoning and references).
"""
from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf

from tfbin.keras3.hard_form import hard, layers

__all__ = ["recalibrate", "batch_norms"]


def batch_norms(model) -> list:
    """Every BatchNormalization layer of the Keras 3 `model`, nested ones included."""
    return [layer for layer in layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


@contextlib.contextmanager
def _attributes(objects, name, value):
    previous = [getattr(o, name) for o in objects]
    for o in objects:
        setattr(o, name, value)
    try:
        yield
    finally:
        for o, was in zip(objects, previous):
            setattr(o, name, was)


def _hard_accuracy(model, batches) -> tuple[float, int]:
    """Top-1 accuracy of the hard form on labelled `(x, y)` batches (sparse or one-hot `y`), and
    the number of examples it read."""
    correct = total = 0
    with hard(model):
        for x, y, *_ in batches:
            predicted = np.asarray(model(x, training=False)).argmax(-1)
            y = np.asarray(y)
            if y.ndim == predicted.ndim + 1:
                y = y.argmax(-1)
            correct += int((predicted == y.reshape(predicted.shape)).sum())
            total += len(y)
    if total == 0:
        raise ValueError("recalibrate got an empty `check` dataset: give it labelled (x, y) batches.")
    return correct / total, total


def _batches(data, steps):
    """`data` as a `tf.data.Dataset` of at most `steps` batches."""
    if steps is not None and (int(steps) != steps or steps < 1):
        raise ValueError(f"recalibrate steps must be a positive integer or None, got {steps!r}.")
    if not isinstance(data, tf.data.Dataset):
        data = tf.data.Dataset.from_tensor_slices(np.asarray(data)).batch(256)
    return data if steps is None else data.take(int(steps))


def _average_statistics(model, norms, data) -> int:
    """Run the hard form over `data` in training mode for the BNs only (Dropout off), each BN's
    momentum `1 − 1/k` at batch `k`; the number of batches."""
    dropouts = [layer for layer in layers(model) if isinstance(layer, keras.layers.Dropout)]
    used = 0
    # Eager calls: the momentum changes every batch and BN reads it at call time.
    with hard(model), _attributes(dropouts, "rate", 0.0):
        for batch in data:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            used += 1
            with _attributes(norms, "momentum", 1.0 - 1.0 / used):
                model(x, training=True)
    if used == 0:
        raise ValueError("recalibrate got no batches: the data is empty.")
    return used


def recalibrate(model, data, steps: int | None = 100, check=None) -> dict:
    r"""Re-estimate every BatchNormalization's moving mean and variance with the hard form.

    Each BN's moving statistics become the **average of its batch statistics** over `steps`
    batches of `data`, computed with every tfbin quantizer in its hard form (the first batch
    overwrites the old statistics). No other weight changes: the forward runs in training mode
    for the BNs only (Dropout is switched off, optimizer untouched).

    ```python
    model.fit(train, epochs=3, callbacks=callbacks)
    tfbin.keras3.recalibrate(model, train, steps=100)
    with tfbin.keras3.hard(model):
        model.evaluate(test)
    ```

    # Arguments
        model: a Keras 3 model (with tfbin quantizers or not: `ste_sign` nets are already hard).
        data: a `tf.data.Dataset` of `x` or `(x, y[, w])` batches, or an array of inputs.
        steps: batches to average over (None: the whole dataset).
        check: optional labelled `(x, y)` batches, e.g. held-out training images. The new
            statistics are kept only if the hard accuracy on them does not drop; otherwise the
            previous ones are restored. Never pass the test set: it would choose on it.

    # Returns
        `{"batch_norms": n, "steps": batches used}`; with `check` also `"applied"`,
        `"check_images"`, `"check_accuracy_before"` and `"check_accuracy_after"` (as
        `tfbin.recalibrate`).
    """
    norms = batch_norms(model)
    if not norms:
        raise ValueError(f"Model {model.name!r} has no BatchNormalization layer to recalibrate.")
    data = _batches(data, steps)
    if check is not None:
        saved = [(bn.moving_mean.numpy(), bn.moving_variance.numpy()) for bn in norms]
        before, check_images = _hard_accuracy(model, check)
    report = {"batch_norms": len(norms), "steps": _average_statistics(model, norms, data)}
    if check is None:
        return report
    after, _ = _hard_accuracy(model, check)
    if after < before:
        for bn, (mean, variance) in zip(norms, saved):
            bn.moving_mean.assign(mean)
            bn.moving_variance.assign(variance)
    return {**report, "applied": after >= before, "check_images": check_images,
            "check_accuracy_before": round(before, 4), "check_accuracy_after": round(after, 4)}
