"""Where each binarized layer's input sign is computed in the converted model.

Self-Binarizing Networks' "binary batch normalization" is a comparison: for `γ > 0`,
`sign(γ(x − μ)/σ + β) = sign(x − τ)` with `τ = μ − βσ/γ` (the sign flips when `γ < 0`).
LCE does exactly this when a BatchNormalization (and the sign after it) directly follows a
binary convolution: the conv writes bitpacked ±1 outputs through per-channel thresholds, and
the next binary conv reads them with no float tensor in between. Otherwise the BN runs in float
(MUL/ADD or folded into a float conv) and an `LceQuantize` op computes the sign.

`sign_inputs` reads this from the flatbuffer (which op produces each `LceBconv2d`'s input) and
explains the float cases from the Keras graph.
"""
from __future__ import annotations

import tensorflow as tf

from tfbin import _graph
from tfbin.export import flatbuffer as flatbuffer_lib
from tfbin.introspect import binarized_layers, is_binarized

__all__ = ["sign_inputs"]

# Ops that produce a bitpacked tensor from a binary conv's thresholded output.
_FUSED_PRODUCERS = {"LceBconv2d", "LceBMaxPool2d"}


def _why_float(layer, model, is_binarized, two_level) -> str:
    """Why the BN → sign in front of `layer` could not become the previous conv's threshold."""
    # `model`'s own calls of its layers: the exporter's rebuilt model shares them and adds a node.
    between, last, current = [], layer, _graph.predecessor(layer, model)
    while current is not None and not isinstance(current, tf.keras.layers.InputLayer):
        if isinstance(current, (tf.keras.layers.Conv2D, tf.keras.layers.Dense)):
            if not is_binarized(current):
                return f"the layer before it, {current.name!r}, is float: its output is quantized by LceQuantize"
            forward = between[::-1]  # the layers after the conv, in order
            norms = [i for i, l in enumerate(forward) if isinstance(l, tf.keras.layers.BatchNormalization)]
            kinds = lambda ls: ", ".join(type(l).__name__ for l in ls)  # noqa: E731
            if not norms:
                return f"no BatchNormalization after the binary layer {current.name!r} to fold into a threshold"
            if norms[0] > 0:
                return (f"{kinds(forward[:norms[0]])} between the binary layer {current.name!r} and its "
                        "BatchNormalization: LCE folds a BN into thresholds only when it directly follows the conv")
            if len(forward) > 1:
                return f"{kinds(forward[1:])} between the BatchNormalization after {current.name!r} and this layer"
            if current.name in two_level:
                return (f"the binary layer {current.name!r} has two unequal kernel levels per channel "
                        "(a + b·sign): it runs as a binary conv plus a float offset term (slice, mul, add), "
                        "so the BN after it cannot become its output threshold")
            return f"BatchNormalization directly after {current.name!r}, yet not fused by the converter"
        between.append(current)
        last, current = current, _graph.predecessor(current, model)
    if current is None:
        inbound = _graph.inbound_layers(last, model)
        if inbound is None:
            return f"{last.name!r}, on the way back to the previous binary layer, is called more than once"
        if len(inbound) > 1:
            return (f"{type(last).__name__} {last.name!r} merges {len(inbound)} branches before it (e.g. a residual "
                    "shortcut): the sign is taken of the float sum, so no single conv's BN can become its threshold")
    return "its input is the model's input"


def sign_inputs(model, flatbuffer: bytes, bconvs: dict, two_level=frozenset()) -> list[dict]:
    """Per binarized layer: whether the sign of its input became a fused output threshold of the
    previous binary conv (`"fused"`), ran as `LceQuantize` after float ops (`"float"`, with the
    reason), or could not be found (`"unknown"`: the layer has no LceBconv2d).
    `bconvs`: `{layer name: [operator index of each LceBconv2d the layer became]}` (indices into
    `flatbuffer.main_graph`'s operators: `tfbin.export.converter.layer_bconvs`, which finds them by
    their filters; tensor names cannot, LCE cuts them). `two_level`: names of the layers exported
    with a kernel offset term (unequal levels, DAB)."""
    operators, _ = flatbuffer_lib.main_graph(flatbuffer)
    producer = {t: name for name, _, outputs in operators for t in outputs}
    rows = []
    for layer in binarized_layers(model):
        row = {"layer": layer.name, "sign": None, "detail": None}
        # The producer of the first bconv's bitpacked input (input 0): the previous bconv or
        # LceBMaxPool2d when the sign is fused, LceQuantize after float ops otherwise.
        found = sorted(bconvs.get(layer.name, []))
        if not found:
            row["sign"], row["detail"] = "unknown", "no LceBconv2d for this layer"
        else:
            source = producer.get(operators[found[0]][1][0], "model input")
            if source in _FUSED_PRODUCERS:
                row["sign"] = "fused"
                row["detail"] = f"BN → sign became output thresholds of the previous binary conv (bitpacked, via {source})"
            else:
                row["sign"] = "float"
                row["detail"] = f"computed by {source} after float ops; " + _why_float(layer, model, is_binarized, two_level)
        rows.append(row)
    return rows
