"""The tie-aware parity rule, framework-neutral: what `tfbin.export.parity` (Keras 2) and
`tfbin.keras3.verify` (Keras 3) both measure.

A binary net's output depends on the sign of every binarized layer's input. TensorFlow and the
TFLite interpreter compute the float parts (the float first layer, BatchNorm, pooling) with
different kernels and summation orders (oneDNN on or off, XNNPACK, AVX2 or AVX-512), so a
pre-sign value within a few float32 rounding units of its threshold can take a different sign
in each — and in an untrained net one flipped sign can move a saturated softmax a lot. Such a
sample says nothing about the exporter. For every sample the **margin** is the smallest
distance of any binarized layer's pre-sign input to its threshold, in units of float32 rounding
of the values that input was computed from: `eps32 · m`, `m` the largest magnitude of the
sample's values of that input and of its **rounding sources** (`rounding_sources`): where the
input is a clip or activation of a float sum (a residual net's `hardtanh(BN(conv(x)) +
shortcut)`), the sum and its summands. A clip hides their magnitude but not their rounding:
on IR-Net's ResNet-20 the pre-sign values of TFLite and Keras differ by up to 889 units of the
clipped value's scale (1), and by at most 7.5 units of the summands' scale
(`bench/tie_scale.py`). A sample whose
margins all exceed `TIE_ULPS` is *tie-free*: its binary activations are the same in any correct
implementation, so Keras and TFLite must agree on it, and a disagreement there is an
**unexplained mismatch** — an exporter bug, not rounding.

Which layers' inputs are signs, and at which thresholds, is the framework's question (the
callers'); here are the rule (`layer_margins`), its loop over batches (`probe_margins`) and the
comparison (`parity`). NumPy only: this module loads neither larq nor either Keras.
"""
from __future__ import annotations

import numpy as np

__all__ = ["TIE_ULPS", "layer_margins", "probe_margins", "parity", "rounding_sources"]

# Rounding units (of a layer's rounding sources' largest value) within which a pre-sign value
# counts as a tie. Summation-order differences of the float layers in front of a sign stay within
# a few units (measured: at most 7.5 on IR-Net's ResNet-20, 18 layers x 100 samples,
# `bench/tie_scale.py`); 64 leaves 8x headroom. The price: in a deep net few samples are then
# tie-free (the export table of docs/benchmarks.md gives the fractions).
TIE_ULPS = 64.0
_EPS32 = float(np.finfo(np.float32).eps)


def layer_margins(value, threshold, sources=()) -> np.ndarray:
    """Per sample of one layer's pre-sign input `value` (`[samples, ...]`): min over its values
    of `|x − θ| / (eps32 · m)`, `m` the sample's largest magnitude in `value` and in `sources`
    (the values `value` was rounded from, `[samples, ...]` each: see `rounding_sources`).
    `threshold`: None or 0 (a sign at 0), a scalar or an array broadcast over the last axis
    (one per channel), or a list of those (several thresholds, as an ABC-Net layer's: the
    nearest counts)."""
    v = np.asarray(value, np.float64)
    thetas = threshold if isinstance(threshold, list) else [0.0 if threshold is None else threshold]
    distance = np.min([np.abs(v - t) for t in thetas], axis=0).reshape(len(v), -1)
    magnitude = [np.abs(np.asarray(a, np.float64)).reshape(len(v), -1).max(1) for a in (v, *sources)]
    scale = np.maximum(np.max(magnitude, axis=0), np.finfo(np.float32).tiny)
    return distance.min(1) / (_EPS32 * scale)


def rounding_sources(tensor) -> list:
    """The symbolic tensors of a functional Keras graph (either Keras) whose magnitudes bound the
    rounding of `tensor`, a pre-sign input: walking back from it through weightless layers of one
    input that keep its shape (activations, clips: `hardtanh`, ReLU), the first other tensor
    and, where a merge (`Add`, `Concatenate`) computed that one, the merge's inputs. Empty when
    `tensor` is such a tensor itself (a conv's or BatchNorm's output), as the rounding of a layer
    with weights is relative to its own output's magnitude."""
    current = tensor
    while True:
        layer, node_index, _ = current._keras_history
        inputs = _node_inputs(layer, node_index)
        if len(inputs) != 1 or layer.weights or tuple(inputs[0].shape) != tuple(current.shape) or inputs[0] is current:
            break
        current = inputs[0]
    if current is tensor:
        return []
    layer, node_index, _ = current._keras_history
    inputs = _node_inputs(layer, node_index)
    return [current, *(inputs if len(inputs) > 1 else [])]


def _node_inputs(layer, node_index) -> list:
    """The input tensors of `layer`'s call `node_index` (Keras 2's and Keras 3's nodes both have
    `input_tensors`; an input layer's node has none, or itself)."""
    found = layer._inbound_nodes[node_index].input_tensors
    return list(found) if isinstance(found, (list, tuple)) else [found]


def probe_margins(probe, thresholds: list, x: np.ndarray, batch_size: int = 128, sources=None) -> np.ndarray:
    """Per sample of `x`: the min of `layer_margins` over the layers whose pre-sign inputs
    `probe(batch, training=False)` returns (a Keras model of either Keras), `batch_size` samples
    at a time. The probe's outputs are, per entry of `thresholds`, the layer's input followed by
    `sources[i]` (default 0) of its rounding sources."""
    counts = sources or [0] * len(thresholds)
    result = np.full(len(x), np.inf)
    for start in range(0, len(x), batch_size):
        values = probe(x[start : start + batch_size], training=False)
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        for theta, count in zip(thresholds, counts):
            value, extra, values = values[0], values[1 : 1 + count], values[1 + count :]
            n = len(value)
            result[start : start + n] = np.minimum(result[start : start + n], layer_margins(value, theta, extra))
    return result


def parity(expected: np.ndarray, got: np.ndarray, sample_margins: np.ndarray) -> dict:
    """Compare Keras (`expected`) and TFLite (`got`) outputs, `[samples, ...]`, sample by sample."""
    n = len(expected)
    expected, got = expected.reshape(n, -1), got.reshape(n, -1)
    per_sample = np.abs(expected - got).max(axis=1)
    tolerance = 1e-3 * max(1.0, float(np.abs(expected).max()))
    agree = (expected.argmax(1) == got.argmax(1)) & (per_sample <= tolerance)
    tie_free = sample_margins > TIE_ULPS
    unexplained = np.flatnonzero(tie_free & ~agree)
    return {
        "samples": int(n),
        "argmax_agreement": float(np.mean(expected.argmax(1) == got.argmax(1))),
        "max_abs_diff": float(per_sample.max()),
        "median_abs_diff": float(np.median(per_sample)),
        "tolerance": tolerance,
        "within_tolerance": float(np.mean(per_sample <= tolerance)),
        "tie_ulps": TIE_ULPS,
        "tie_free_samples": int(tie_free.sum()),
        "tie_free_fraction": float(tie_free.mean()),
        "tie_free_agreement": float(agree[tie_free].mean()) if tie_free.any() else None,
        "unexplained_mismatches": int(unexplained.size),
        "unexplained_samples": [int(i) for i in unexplained[:10]],
        "min_margin_ulps": float(sample_margins.min()),
        "passed": bool(unexplained.size == 0),
    }
