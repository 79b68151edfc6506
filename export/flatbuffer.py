"""TFLite flatbuffers read and rewritten with TensorFlow's own schema: the one reader of the package."""
from __future__ import annotations

import collections

import flatbuffers
import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

__all__ = [
    "ops", "main_graph", "op_histogram", "histogram", "without_names", "bconv_filters", "main_bconvs", "packed_signs",
    "stored_signs", "holds_signs",
]


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


def _constant(model, tensor):
    """A constant INT32 / FLOAT32 tensor of the file as a numpy array; None for any other."""
    dtypes = {schema.TensorType.INT32: np.dtype("<i4"), schema.TensorType.FLOAT32: np.dtype("<f4")}  # TFLite: little-endian
    data = model.Buffers(tensor.Buffer()).DataAsNumpy()
    if isinstance(data, int) or tensor.Type() not in dtypes:  # DataAsNumpy: 0 when empty
        return None
    return np.frombuffer(data.tobytes(), dtypes[tensor.Type()]).reshape(tensor.ShapeAsNumpy())


def _bconvs(flatbuffer: bytes, subgraphs=None):
    """`(subgraph, operator index, filter, writes bitpacked output)` of each `LceBconv2d`, in op order."""
    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    for s in range(model.SubgraphsLength()) if subgraphs is None else subgraphs:
        graph = model.Subgraphs(s)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if model.OperatorCodes(op.OpcodeIndex()).CustomCode() != b"LceBconv2d":
                continue
            bitpacked = graph.Tensors(op.Outputs(0)).Type() == schema.TensorType.INT32
            yield s, i, _constant(model, graph.Tensors(op.Inputs(1))), bitpacked


def bconv_filters(flatbuffer: bytes) -> list:
    """Each `LceBconv2d`'s filter, over all subgraphs in op order, as stored: LCE's bitpacked
    int32 array `[out, kh, kw, ceil(in / 32)]` whose bit `c % 32` (from the least significant) of
    word `c // 32` is set where the weight of input channel `c` is −1; None for a filter that is
    not a constant of the file. Read without unpacking the rest of the model."""
    return [stored for _, _, stored, _ in _bconvs(flatbuffer)]


def main_bconvs(flatbuffer: bytes) -> list[tuple[int, np.ndarray | None, bool]]:
    """Each `LceBconv2d` of subgraph 0 (the graph of a converted Keras model) as `(operator
    index in main_graph's list, its filter as packed signs (stored_signs), whether it writes
    bitpacked output)`. A bconv that writes bitpacked output (its BatchNorm → sign became
    thresholds) has the filter of each output channel whose multiplier was negative flipped:
    LCE makes every multiplier positive so that one `>` comparison gives the output bit."""
    return [(i, stored_signs(stored), bitpacked) for _, i, stored, bitpacked in _bconvs(flatbuffer, [0])]


def packed_signs(negative: np.ndarray) -> np.ndarray:
    """LCE's bitpacking of a filter's signs: `negative`, `[out, kh, kw, in]` booleans (weight
    −1), as int32 words `[out, kh, kw, ceil(in / 32)]`, channel `c` at bit `c % 32` (from the
    least significant) of word `c // 32`, the bits past `in` clear."""
    negative = np.asarray(negative, bool)
    padded = np.pad(negative, [(0, 0)] * (negative.ndim - 1) + [(0, -negative.shape[-1] % 32)])
    return np.ascontiguousarray(np.packbits(padded, axis=-1, bitorder="little")).view("<i4")


def stored_signs(stored):
    """A filter of `bconv_filters` as packed signs (a float one is packed here; None stays None)."""
    if stored is None or stored.dtype.kind == "i":
        return stored
    return packed_signs(stored < 0)


def holds_signs(stored, negative: np.ndarray, flipped_channels: bool = False) -> bool:
    """Whether the packed filter `stored` (`stored_signs`) holds the signs `negative`
    (`[out, kh, kw, in]` booleans, weight −1), bit for bit; with `flipped_channels`, also where
    whole output channels hold the opposite signs (a bconv writing bitpacked output, `main_bconvs`)."""
    negative = np.asarray(negative, bool)
    if stored is None or stored.shape[:-1] != negative.shape[:-1] or stored.shape[-1] != -(-negative.shape[-1] // 32):
        return False
    per_channel = lambda packed: (stored == packed).reshape(len(stored), -1).all(axis=1)  # noqa: E731
    same = per_channel(packed_signs(negative))
    if flipped_channels and not same.all():
        same |= per_channel(packed_signs(~negative))
    return bool(same.all())
