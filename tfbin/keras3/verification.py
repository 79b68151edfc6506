"""What a Keras 3 export is checked against: tie-aware parity with LCE's interpreter and sizes.

The Keras 2 exporter's report (`tfbin.export.convert`) holds the op histogram, the tie-aware
parity of `tfbin.export.parity` and the size against the float TFLite and against the 1-bit
limit. These are the same figures for a Keras 3 model of `tfbin.keras3`'s layers, computed by
the same rules: the margins and `parity` are `tfbin.export.ties`' (the Keras 2 path's, NumPy
only); only which layers have sign inputs, and at which thresholds, is read here from Keras 3's
layers. Nothing here loads larq or Keras 2.

```python
flatbuffer = tb.convert(model)
found = tb.verify(model, flatbuffer, x_test[:1000])      # parity's dict: "passed", "tie_free_agreement", ...
sizes = len(flatbuffer), len(tb.float_flatbuffer(model)), tb.one_bit_limit_bytes(model)
```
"""
from __future__ import annotations

import keras
import larq_compute_engine as lce
import numpy as np

from tfbin.export.ties import parity, probe_margins, rounding_sources
from tfbin.keras3.binary_quantizers import BoundedRectifier
from tfbin.keras3.hard_form import hard, layers
from tfbin.keras3.quant_layers import QuantConv2D, QuantDense, is_binarized

__all__ = ["LCE_KERNELS", "binarized_layers", "input_threshold", "margins", "one_bit_limit_bytes", "verify"]

# LCE interpreter's binary convolution kernels `verify` can run: its default BGEMM and the
# indirect BGEMM (several times faster on x86 hosts; the same integer popcounts and outputs).
LCE_KERNELS = ("default", "indirect_bgemm")
_PROBE = np.array([-3.0, -1.0, -1e-3, -1e-30, 0.0, 1e-30, 1e-3, 1.0, 3.0], np.float32)


def binarized_layers(model) -> list:
    """The binarized `QuantConv2D` / `QuantDense` layers of the Keras 3 `model` (input and kernel
    quantizers of precision 1, `quant_layers.is_binarized`), nested models included, in layer
    order: those LCE runs as binary convolutions (`LceBconv2d`) after `tfbin.keras3.convert`."""
    return [layer for layer in layers(model) if is_binarized(layer)]


def _sign_input_layers(model) -> list:
    """The quant layers whose input quantizer has precision 1 (binarized, or binary inputs with
    float weights: their input signs decide their outputs just the same)."""
    return [layer for layer in layers(model) if isinstance(layer, (QuantConv2D, QuantDense))
            and getattr(layer.input_quantizer, "precision", None) == 1]


def input_threshold(layer):
    """`(found, theta)`: the hard form of the layer's input quantizer is a step at `theta`
    (`found`): `sign(x)` with `sign(0) = +1` (θ = None, i.e. 0) or the {0,1} step of a
    `BoundedRectifier`, `v·a·x + c ≥ 0.5` (θ = `(0.5 − c)/(v·a)` per channel, as the Keras 2
    exporter reads it); `(False, None)` for a quantizer of unknown threshold."""
    quantizer = layer.input_quantizer
    if isinstance(quantizer, BoundedRectifier) and not quantizer.symmetric:
        return True, np.asarray(quantizer.step_threshold())
    channels = int(layer.input.shape[-1])
    x = np.repeat(_PROBE[:, None], channels, axis=1).reshape(len(_PROBE), *[1] * (len(layer.input.shape) - 2), channels)
    with hard(quantizer):
        y = np.asarray(quantizer(keras.ops.convert_to_tensor(x)))
    return (True, None) if np.array_equal(y, np.where(x >= 0, 1.0, -1.0)) else (False, None)


def margins(model, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Per sample of `x`: `tfbin.export.parity.margins` for a Keras 3 model — the min over the
    layers with 1-bit input quantizers and over their input values of `|x − θ| / (eps32 · m)`
    (`tfbin.export.ties.layer_margins`: `m` the largest magnitude of those values and of their
    `rounding_sources`; θ from `input_threshold`; a layer whose quantizer has no
    known threshold is left out, as on the Keras 2 path). Computed with the model as it is: call
    it in its hard form (`with tfbin.keras3.hard(model):`), as `verify` does."""
    found = [(layer, theta) for layer in _sign_input_layers(model) for known, theta in [input_threshold(layer)] if known]
    if not found:
        return np.full(len(x), np.inf)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # the structure the model is called with
    sources = [rounding_sources(layer.input) for layer, _ in found]
    probe = keras.Model(inputs, [t for (layer, _), extra in zip(found, sources) for t in (layer.input, *extra)])
    return probe_margins(probe, [theta for _, theta in found], np.asarray(x, np.float32), batch_size,
                         [len(extra) for extra in sources])


def _outputs(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """The model's outputs on `x` from eager calls (no `predict` function to trace), flattened per sample."""
    found = [np.asarray(model(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    return np.concatenate(found).reshape(len(x), -1)


def verify(model, flatbuffer: bytes, x, *, kernel: str = "default", batch_size: int = 256) -> dict:
    """The Keras 3 `model`'s hard form against `flatbuffer` (its `tfbin.keras3.convert`) in LCE's
    interpreter (one thread) on the inputs `x`, sample by sample, tie-aware: the dict of
    `tfbin.export.parity.parity` (`samples`, `argmax_agreement`, `max_abs_diff`,
    `tie_free_samples`, `tie_free_fraction`, `tie_free_agreement`, `unexplained_mismatches`,
    `passed`, ...) with the margins of `margins`, plus `lce_kernel` (`LCE_KERNELS`: `"default"`,
    or `"indirect_bgemm"`, faster on x86 with the same outputs), as `tfbin.export.convert` reports."""
    if kernel not in LCE_KERNELS:
        raise ValueError(f"tfbin.keras3.verify: kernel must be one of {LCE_KERNELS}, got {kernel!r}")
    x = np.asarray(x, np.float32)
    with hard(model):
        expected = _outputs(model, x, batch_size)
        sample_margins = margins(model, x)
    interpreter = lce.testing.Interpreter(flatbuffer, num_threads=1, use_indirect_bgemm=kernel == "indirect_bgemm")
    got = np.asarray(interpreter.predict(x)).reshape(len(x), -1)
    return {**parity(expected, got, sample_margins), "lce_kernel": kernel}


def one_bit_limit_bytes(model) -> int:
    """The 1-bit limit of the Keras 3 `model`'s size, counted as the Keras 2 report counts it:
    binarized kernels (`binarized_layers`) at 1 bit, every other trainable weight at 32 bits;
    non-trainable weights (BatchNorm statistics, sharpness values) left out, as at inference
    they fold into the trainable ones' multipliers and biases."""
    binary = {id(layer.kernel) for layer in binarized_layers(model)}
    bits = sum(int(np.prod(w.shape)) * (1 if id(w) in binary else 32) for w in model.trainable_weights)
    return int(np.ceil(bits / 8))
