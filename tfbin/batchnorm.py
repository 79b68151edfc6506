"""BatchNorm statistics for the deployed (hard) form of a binary net.

A soft-forward recipe (Self-Binarizing's `tanh(v·x)`, ABR's clipped ramp) learns its
BatchNormalization moving statistics on the soft activations, but the deployed model computes
the hard ones: their mean and variance differ (for a unit ramp `clip(x + ½, 0, 1)` on N(0, 1)
inputs against its step, the variance ratio is 1.35), so every BN after a binarized layer
normalizes with the wrong statistics. `recalibrate` re-estimates them in the hard form —
the remedy of post-training BN re-estimation (e.g. Ioffe, "Batch Renormalization", 2017;
Izmailov et al., "Averaging Weights Leads to Wider Optima", 2018, `update_bn`). The procedure
is `tfbin.frameworks.recalibrate`, shared with `tfbin.keras3.recalibrate`; this module finds a
tf-keras model's BatchNormalization and Dropout layers and its hard form.
"""
from __future__ import annotations

import contextlib

import tensorflow as tf

from tfbin import frameworks, sharpness
from tfbin.mode import hard
from tfbin.auxiliary import unwrap

__all__ = ["recalibrate", "batch_norms"]


def batch_norms(model) -> list:
    """Every BatchNormalization layer of `model`, nested ones included."""
    return [m for m in model.submodules if isinstance(m, tf.keras.layers.BatchNormalization)]


def _hard_form(model):
    """The hard form of `model` (`tfbin.hard`); larq-only binarized models (`ste_sign`) and float
    ones are already what they compute deployed."""
    return hard(model) if sharpness.quantizers(model) else contextlib.nullcontext()


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
    dropouts = [m for m in model.submodules if isinstance(m, tf.keras.layers.Dropout)]
    return frameworks.recalibrate(model, data, steps, check, norms=batch_norms(model), dropouts=dropouts, hard_form=_hard_form)
