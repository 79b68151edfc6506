"""TFLite flatbuffers read and rewritten with TensorFlow's own schema: the one reader of the package."""
from __future__ import annotations

import collections

import flatbuffers
import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

__all__ = ["ops", "main_graph", "op_histogram", "histogram", "without_names", "bconv_filters"]


def _model(flatbuffer: bytes):
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))


def _op_names(model):
    """Each operator code's name: builtins by their enum name, custom ops by their custom code."""
    builtin_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    names = []
    for code in model.operatorCodes:
        if code.customCode:
            names.append(code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode)
        else:
            names.append(builtin_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "UNKNOWN"))
    return names


def ops(flatbuffer: bytes):
    """`[(op name, input and output tensor names)]` over all subgraphs; custom ops by their custom code."""
    model = _model(flatbuffer)
    names = _op_names(model)
    found = []
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            tensors = [*(op.inputs if op.inputs is not None else []), *(op.outputs if op.outputs is not None else [])]
            found.append((names[op.opcodeIndex], [subgraph.tensors[i].name.decode() for i in tensors if i >= 0]))
    return found


def main_graph(flatbuffer: bytes):
    """`([(op name, input tensor indices, output tensor indices)], tensor names)` of subgraph 0."""
    model = _model(flatbuffer)
    names = _op_names(model)
    graph = model.subgraphs[0]
    return [(names[op.opcodeIndex], list(op.inputs), list(op.outputs)) for op in graph.operators], [t.name.decode() for t in graph.tensors]


def histogram(found) -> collections.Counter:
    """`{op name: count}` of the output of `ops`."""
    return collections.Counter(name for name, _ in found)


def op_histogram(flatbuffer: bytes) -> collections.Counter:
    """`{op name: count}` of a TFLite flatbuffer; LCE's custom ops by name (`LceBconv2d`)."""
    return histogram(ops(flatbuffer))


def without_names(flatbuffer: bytes) -> bytes:
    """The flatbuffer with tensor, subgraph and signature names removed.

    Keras numbers layers per session, so two exports of the same model can differ only in the
    tensor names derived from them; compare files with their names stripped.
    """
    model = _model(flatbuffer)
    for subgraph in model.subgraphs:
        subgraph.name = b""
        for tensor in subgraph.tensors:
            tensor.name = b""
    model.signatureDefs = None
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder))
    return bytes(builder.Output())


def bconv_filters(flatbuffer: bytes) -> list:
    """Each `LceBconv2d`'s filter, over all subgraphs in op order, as stored: LCE's bitpacked
    int32 array `[out, kh, kw, ceil(in / 32)]` whose bit `c % 32` (from the least significant) of
    word `c // 32` is set where the weight of input channel `c` is −1; None for a filter that is
    not a constant of the file. Read without unpacking the rest of the model."""
    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    dtypes = {schema.TensorType.INT32: np.dtype("<i4"), schema.TensorType.FLOAT32: np.dtype("<f4")}  # TFLite: little-endian
    found = []
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if model.OperatorCodes(op.OpcodeIndex()).CustomCode() != b"LceBconv2d":
                continue
            tensor = graph.Tensors(op.Inputs(1))
            data = model.Buffers(tensor.Buffer()).DataAsNumpy()
            constant = not isinstance(data, int) and tensor.Type() in dtypes  # DataAsNumpy: 0 when empty
            found.append(np.frombuffer(data.tobytes(), dtypes[tensor.Type()]).reshape(tensor.ShapeAsNumpy()) if constant else None)
    return found
