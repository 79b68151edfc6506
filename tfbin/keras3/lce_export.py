"""A Keras 3 model to a binary TFLite flatbuffer through Larq Compute Engine.

The model's hard form is saved as a SavedModel with Keras 3's `model.export` and converted with
`larq_compute_engine.convert_saved_model`, which fuses the hard signs of `tfbin.formulas` into
`LceBconv2d` / `LceQuantize` ops without larq or Keras 2. While it is saved, the quant layers
compute their "lce" form (`tfbin.keras3.quant_layers.FORMS`): a binarized `QuantDense` as a 1×1
convolution, so that it becomes an `LceBconv2d` too, as on the Keras 2 path. `float_flatbuffer`
converts the same model without its quantizers with TensorFlow's own converter (the float TFLite
the export report compares sizes with). `op_histogram` is the exporter's own
(`tfbin.export.flatbuffer`).
"""
from __future__ import annotations

import contextlib
import os
import tempfile

import larq_compute_engine as lce
import tensorflow as tf

from tfbin.export.flatbuffer import op_histogram
from tfbin.keras3.hard_form import hard, layers
from tfbin.keras3.quant_layers import export_form

__all__ = ["convert", "float_flatbuffer", "op_histogram"]


@contextlib.contextmanager
def _saved_model(model, input_signature):
    """The path of `model` saved by `model.export` in a temporary folder (removed on exit)."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "saved_model")
        model.export(path, format="tf_saved_model", verbose=False, input_signature=input_signature)
        yield path


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
    with hard(model), export_form(layers(model), "lce"), _saved_model(model, input_signature) as path:
        return lce.convert_saved_model(path, **converter_options)


def float_flatbuffer(model, input_signature=None) -> bytes:
    """The plain float32 TFLite flatbuffer of the Keras 3 `model` without its quantizers: every
    `QuantConv2D` / `QuantDense` computes its plain Keras layer (zero padding, float kernel;
    the "float" form), converted by TensorFlow's `TFLiteConverter` with its defaults, as the Keras
    2 path converts its float twin. The size an export report compares the binary file with,
    and the float baseline of a latency measurement."""
    with export_form(layers(model), "float"), _saved_model(model, input_signature) as path:
        return tf.lite.TFLiteConverter.from_saved_model(path).convert()
