"""BatchNorm statistics for the deployed (hard) form of a Keras 3 binary net.

`tfbin.recalibrate` for Keras 3, with the same rule and the same report: a soft-forward recipe
(Self-Binarizing's `tanh(v·x)`, ABR's ramp) learns its BatchNormalization moving statistics on
soft activations, while the deployed model computes hard ones; `recalibrate` re-estimates them
with every quantizer in its hard form (see `tfbin.batchnorm` for the reasoning and references).
The procedure is the Keras 2 path's own code (`tfbin.frameworks.recalibrate`); this module finds a
Keras 3 model's BatchNormalization and Dropout layers and its hard form.
"""
from __future__ import annotations

import keras

from tfbin import frameworks
from tfbin.keras3.hard_form import hard, layers

__all__ = ["recalibrate", "batch_norms"]


def batch_norms(model) -> list:
    """Every BatchNormalization layer of the Keras 3 `model`, nested ones included."""
    return [layer for layer in layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


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
    dropouts = [layer for layer in layers(model) if isinstance(layer, keras.layers.Dropout)]
    return frameworks.recalibrate(model, data, steps, check, norms=batch_norms(model), dropouts=dropouts, hard_form=hard)
