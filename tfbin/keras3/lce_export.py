"""A Keras 3 model to a binary TFLite flatbuffer through Larq Compute Engine.

The model's hard form is saved as a SavedModel with Keras 3's `model.export` and converted with
`larq_compute_engine.convert_saved_model`, which fuses the hard signs of `tfbin.formulas` into
`LceBconv2d` / `LceQuantize` ops without larq or Keras 2. `op_histogram` is the exporter's own
(`tfbin.export.flatbuffer`).
"""
from __future__ import annotations

import os
import tempfile

import larq_compute_engine as lce

from tfbin.export.flatbuffer import op_histogram
from tfbin.keras3.hard_form import hard

__all__ = ["convert", "op_histogram"]


def convert(model, input_signature=None, **converter_options) -> bytes:
    """The TFLite flatbuffer of the Keras 3 `model`'s hard form, converted by LCE.

    Not `tf.saved_model.save`: LCE's converter aborts the whole process on a Keras 3 model with
    BatchNormalization saved that way (LLVM "Failed to infer result type(s)" at a variable read);
    and `larq_compute_engine.convert_keras_model` takes tf-keras models only.

    # Arguments
        model: a built Keras 3 model.
        input_signature: for `model.export` (default None: the model's inputs), e.g. a list of
            `tf.TensorSpec` for a model that was never called.
        **converter_options: passed to `larq_compute_engine.convert_saved_model`
            (`inference_input_type`, `experimental_default_int8_range`, ...).
    """
    with tempfile.TemporaryDirectory() as directory, hard(model):
        path = os.path.join(directory, "saved_model")
        model.export(path, format="tf_saved_model", verbose=False, input_signature=input_signature)
        return lce.convert_saved_model(path, **converter_options)
