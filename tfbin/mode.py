"""Switch a model's tfbin quantizers between their soft (training) and hard (deployed) forms."""
from __future__ import annotations

import contextlib

import tensorflow as tf

from tfbin import sharpness
from tfbin.introspect import binarized_layers
from tfbin.quantizers import hard_forms  # beside the quantizers: the larq layer family needs it below here

__all__ = ["hard"]


def _reset_compiled_functions(model):
    # Keras caches traced train/test/predict functions; the form is chosen at trace time, so
    # they must be traced again after a switch.
    for attr in ("train_function", "test_function", "predict_function"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)


@contextlib.contextmanager
def hard(model: tf.keras.Model):
    """Inside this block every tfbin quantizer of `model` computes its hard form.

    ```python
    with tfbin.hard(model):
        hard_loss, hard_accuracy = model.evaluate(test_data)
        tfbin.export.convert(model, "model.tflite")
    ```

    It flips a trace-time flag and drops the model's traced train/test/predict functions on
    entry and on exit; it never copies the model or changes a weight. Blocks may nest. A model
    whose binarized layers use only larq's quantizers (`ste_sign`) is already in its deployed
    form and passes through unchanged.
    """
    quantizers = sharpness.quantizers(model)
    if not quantizers:
        if binarized_layers(model):  # larq quantizers only (e.g. ste_sign): already the deployed form
            yield model
            return
        raise ValueError(
            f"Model {getattr(model, 'name', model)!r} has no binarized layers, so it has no hard "
            "form; build it with tfbin quantizers (or tfbin.binarize) first."
        )
    with hard_forms(quantizers):
        _reset_compiled_functions(model)
        try:
            yield model
        finally:
            _reset_compiled_functions(model)
