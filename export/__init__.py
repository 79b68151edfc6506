"""Convert tfbin/larq models into binary TFLite models with Larq Compute Engine.

`convert` converts the **hard** form of a model (`tfbin.hard`) and writes the flatbuffer
atomically; `op_histogram` counts the operators of a flatbuffer, so callers (and tests) can check
that every binarized layer became an `LceBconv2d`.
"""
from __future__ import annotations

import collections
import os

import tensorflow as tf

from tfbin import _io, mode, sharpness

__all__ = ["convert", "op_histogram"]


def convert(model: tf.keras.Model, path: str | os.PathLike | None = None) -> bytes:
    """Convert `model` in its hard form with LCE; write it to `path` (atomically) if given."""
    import larq_compute_engine as lce  # heavy; loaded on use

    if sharpness.quantizers(model):
        with mode.hard(model):
            flatbuffer = lce.convert_keras_model(model)
    else:
        flatbuffer = lce.convert_keras_model(model)
    if path is not None:
        _io.write_bytes_atomic(path, flatbuffer)
    return flatbuffer


def op_histogram(flatbuffer: bytes) -> collections.Counter:
    """`{op name: count}` over all subgraphs; custom ops (LCE's) by their custom code."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    builtin_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    names = []
    for code in model.operatorCodes:
        if code.customCode:
            names.append(code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode)
        else:
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            names.append(builtin_names.get(builtin, str(builtin)))
    counts = collections.Counter()
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            counts[names[op.opcodeIndex]] += 1
    return counts
