"""BatchNorm statistics for the deployed (hard) form of a binary net.

A soft-forward recipe (Self-Binarizing's `tanh(v·x)`, ABR's clipped ramp) learns its
BatchNormalization moving statistics on the soft activations, but the deployed model computes
the hard ones: their mean and variance differ (for a unit ramp `clip(x + ½, 0, 1)` on N(0, 1)
inputs against its step, the variance ratio is 1.35), so every BN after a binarized layer
normalizes with the wrong statistics. `recalibrate` re-estimates them in the hard form —
the remedy of post-training BN re-estimation (e.g. Ioffe, "Batch Renormalization", 2017;
Izmailov et al., "Averaging Weights Leads to Wider Optima", 2018, `update_bn`).
"""
from __future__ import annotations

import contextlib

import numpy as np
import tensorflow as tf

from tfbin import sharpness
from tfbin.mode import hard
from tfbin.auxiliary import unwrap

__all__ = ["recalibrate", "batch_norms"]


def batch_norms(model) -> list:
    """Every BatchNormalization layer of `model`, nested ones included."""
    return [m for m in model.submodules if isinstance(m, tf.keras.layers.BatchNormalization)]


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
    context = hard(model) if sharpness.quantizers(model) else contextlib.nullcontext()
    with context:
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


def recalibrate(model: tf.keras.Model, data, steps: int | None = 100, check=None) -> dict:
    r"""Re-estimate every BatchNormalization's moving mean and variance with the hard form.

    Each BN's moving statistics become the **average of its batch statistics** over `steps`
    batches of `data`, computed with every tfbin quantizer in its hard form: at batch `k` the BN
    momentum is `1 − 1/k`, so the moving value is the running mean of the batch values (the
    first batch overwrites the old statistics). No other weight changes: the forward runs in
    training mode for the BNs only (Dropout is switched off, optimizer untouched).

    ```python
    model.fit(train, epochs=3, callbacks=callbacks)
    tfbin.recalibrate(model, train, steps=100)
    with tfbin.hard(model):
        model.evaluate(test)
    ```

    # Arguments
        model: a model with tfbin quantizers (a `TrainingModel` is unwrapped); larq-only
            binarized models (`ste_sign`) are already hard and are recalibrated as they are.
        data: a `tf.data.Dataset` of `x` or `(x, y[, w])` batches, or an array of inputs.
        steps: batches to average over (None: the whole dataset).
        check: optional labelled `(x, y)` batches, e.g. held-out training images. The new
            statistics are kept only if the hard accuracy on them does not drop; otherwise the
            previous ones are restored. Never pass the test set: it would choose on it.

    # Returns
        `{"batch_norms": n, "steps": batches used}`; with `check` also `"applied"` (whether the
        new statistics were kept), `"check_images"` (examples read from `check`),
        `"check_accuracy_before"` and `"check_accuracy_after"`.
    """
    model = unwrap(model)
    norms = batch_norms(model)
    if not norms:
        raise ValueError(f"Model {model.name!r} has no BatchNormalization layer to recalibrate.")
    if steps is not None and (int(steps) != steps or steps < 1):
        raise ValueError(f"recalibrate steps must be a positive integer or None, got {steps!r}.")
    if not isinstance(data, tf.data.Dataset):
        data = tf.data.Dataset.from_tensor_slices(np.asarray(data)).batch(256)
    if steps is not None:
        data = data.take(int(steps))
    if check is not None:
        saved = [(bn.moving_mean.numpy(), bn.moving_variance.numpy()) for bn in norms]
        before, check_images = _hard_accuracy(model, check)
    dropouts = [m for m in model.submodules if isinstance(m, tf.keras.layers.Dropout)]
    context = hard(model) if sharpness.quantizers(model) else contextlib.nullcontext()
    used = 0
    # Eager calls: the momentum changes every batch and BN reads it at call time.
    with context, _attributes(dropouts, "rate", 0.0):
        for batch in data:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            used += 1
            with _attributes(norms, "momentum", 1.0 - 1.0 / used):
                model(x, training=True)
    if used == 0:
        raise ValueError("recalibrate got no batches: the data is empty.")
    report = {"batch_norms": len(norms), "steps": used}
    if check is None:
        return report
    after, _ = _hard_accuracy(model, check)
    if after < before:
        for bn, (mean, variance) in zip(norms, saved):
            bn.moving_mean.assign(mean)
            bn.moving_variance.assign(variance)
    return {**report, "applied": after >= before, "check_images": check_images,
            "check_accuracy_before": round(before, 4), "check_accuracy_after": round(after, 4)}
