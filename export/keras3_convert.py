"""`tfbin.export.convert` for a Keras 3 model of `tfbin.keras3`'s layers: the same report.

`tfbin.export.convert` hands a Keras 3 model (`is_keras3_model`) to `convert` here, which checks it
as the Keras 2 path checks a larq model and writes the same `ExportReport`:

- the conversion is `tfbin.keras3.convert`: the hard form saved by Keras 3's `model.export` and
  converted by LCE's `convert_saved_model`, a binarized `QuantDense` as a 1×1 convolution, so
  that every binarized conv and dense can become an `LceBconv2d` (no rewrite: LCE fuses the hard
  signs of `tfbin.formulas` itself);
- parity is `tfbin.keras3.verify`, the Keras 2 path's tie-aware rule (`tfbin.export.ties`): quick,
  `DEFAULT_SAMPLES["quick"]` inputs against LCE's indirect-BGEMM kernel; full, `"full"`'s inputs
  against its default kernel;
- sizes: the file, the float TFLite of the same model without its quantizers
  (`tfbin.keras3.float_flatbuffer`; converted in full mode or for latency only, as on Keras 2)
  and the 1-bit limit (`tfbin.keras3.one_bit_limit_bytes`); host latency is `measure.latency`;
- one layer row per binarized layer (`tfbin.keras3.binarized_layers`): the `LceBconv2d` whose
  bitpacked filter holds the signs of the layer's hard kernel (`flatbuffer.main_bconvs`,
  `flatbuffer.holds_signs`), bit for bit — or with whole output channels flipped where the bconv
  writes bitpacked output (its BatchNorm → sign became thresholds: LCE flips the filter of each
  channel whose multiplier is negative, e.g. BatchNorm γ < 0), as the Keras 2 path's
  `converter.layer_bconvs`. LCE's tensor names are cut at 50 characters, so names cannot tell the
  layers apart here; weights can. A layer that no filter matches stayed float, and its row says
  why where it can tell;
- problems, the strict rule and the atomic writing are `tfbin.export.report`'s, as on Keras 2.

Not reported on this path: which float-weight layers take binary inputs
(`float_weight_layers` stays empty) and whether a layer's input sign came from the previous
binary conv's thresholds (`sign_input` is None): both read larq layers.

Keras 3 loads only when a Keras 3 model arrives: `is_keras3_model` looks for an imported Keras 3
and `convert` imports `tfbin.keras3` then, so a Keras 2 export never loads Keras 3.
"""
from __future__ import annotations

import importlib
import os
import sys

import numpy as np
import tensorflow as tf

from tfbin import _quiet
from tfbin.export import flatbuffer as flatbuffer_lib, measure
from tfbin.export.flatbuffer import packed_signs
from tfbin.export.report import ExportReport, deployment, find_problems, write_export

__all__ = ["is_keras3_model", "convert", "layer_rows", "packed_signs"]


def is_keras3_model(model) -> bool:
    """Whether `model` is a Keras 3 model (`keras.Model` of an imported Keras 3 or later). Keras
    is not imported here: a model of a Keras that was never imported is not one of its models."""
    keras = sys.modules.get("keras")
    major = str(getattr(keras, "__version__", "")).split(".")[0]
    return major.isdigit() and int(major) >= 3 and isinstance(model, keras.Model)


def _keras3():
    """`tfbin.keras3`, imported for the first Keras 3 model (its ImportError says what to do when
    Keras's backend is not TensorFlow's)."""
    return importlib.import_module("tfbin.keras3")


def _single_input(model):
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):  # a Keras 3 model that was never built has none
        inputs = None
    if not inputs or len(inputs) != 1:
        raise ValueError("tfbin.export.convert needs a built model with exactly one input.")
    return inputs[0]


def convert(model, path, *, strict: bool, verify: str, sample_inputs, num_samples: int, latency, latency_repeats: int,
            normalization: str, labels, report_path) -> ExportReport:
    """`tfbin.export.convert` of the Keras 3 `model`, which calls it with `verify` checked and
    `num_samples` set (`DEFAULT_SAMPLES[verify]` unless given); the arguments are its own."""
    k3 = _keras3()
    input_shape = tuple(_single_input(model).shape[1:])
    measure_latency = verify == "full" if latency is None else bool(latency)
    x = measure.sample_inputs(sample_inputs, num_samples, input_shape)
    with _quiet.conversion():  # the command's quiet defaults (tfbin._quiet); else a no-op
        flatbuffer = k3.convert(model)
        # The float model costs a second conversion: only what needs it converts it.
        float_flatbuffer = k3.float_flatbuffer(model) if verify == "full" or measure_latency else None
        parity = k3.verify(model, flatbuffer, x, kernel="indirect_bgemm" if verify == "quick" else "default")
        measured = measure.latency(flatbuffer, float_flatbuffer, x[:1], latency_repeats) if measure_latency else None
    rows = layer_rows(model, flatbuffer)
    report = ExportReport(
        path=None if path is None else os.fspath(path),
        layers=rows,
        op_histogram=dict(flatbuffer_lib.op_histogram(flatbuffer)),
        size_bytes=len(flatbuffer),
        float_size_bytes=None if float_flatbuffer is None else len(float_flatbuffer),
        one_bit_limit_bytes=k3.one_bit_limit_bytes(model),
        parity=parity,
        latency=measured,
        deployment=deployment(input_shape, normalization, labels),
        flatbuffer=flatbuffer,
        verify=verify,
    )
    report.problems = find_problems(rows, [], parity)
    write_export(report, flatbuffer, path, report_path, strict, stacklevel=4)  # tfbin.export.convert's caller
    return report


def _kernel_signs(layer) -> np.ndarray:
    """The signs of the filter the layer exports with (call in the hard form), as LCE lays out a
    filter, `[out, kh, kw, in]` booleans (weight −1): its hard kernel `[kh, kw, in, out]` (a Dense
    one `[in, out]` as a 1×1 conv), rewritten by `tfbin.keras3.quant_layers.lce_filter` where
    the "lce" form does (DAB's two levels, {0,1} inputs)."""
    kernel = np.asarray(layer.kernel_quantizer(tf.constant(np.asarray(layer.kernel))))
    kernel = kernel.reshape(1, 1, *kernel.shape) if kernel.ndim == 2 else kernel
    filters = np.asarray(_keras3().quant_layers.lce_filter(layer, tf.constant(kernel))[0])
    return np.transpose(filters, (3, 0, 1, 2)) < 0


def layer_rows(model, flatbuffer: bytes) -> list[dict]:
    """The report's row per binarized layer of the Keras 3 `model`: `lce_op` "LceBconv2d" where
    one `LceBconv2d` of `flatbuffer`'s main graph holds the signs of the layer's hard kernel as its
    filter (`flatbuffer.holds_signs`; with whole output channels flipped only where that bconv
    writes bitpacked output, `flatbuffer.main_bconvs`), each filter matched once, in layer order;
    else None and the `reason`."""
    k3 = _keras3()
    bconvs = flatbuffer_lib.main_bconvs(flatbuffer)
    free = list(range(len(bconvs)))
    with k3.hard(model):
        signs = [(layer, _kernel_signs(layer)) for layer in k3.binarized_layers(model)]
    rows = []
    for layer, negative in signs:
        row = {"layer": layer.name, "type": type(layer).__name__, "lce_op": None, "reason": None, "bconv_count": 0,
               "sign_input": None, "sign_input_detail": None}
        match = next((j for j in free if flatbuffer_lib.holds_signs(bconvs[j][1], negative, bconvs[j][2])), None)
        if match is not None:
            free.remove(match)
            row.update(lce_op="LceBconv2d", bconv_count=1)
        rows.append(row)
    for row, (layer, _) in zip(rows, signs):
        if row["lce_op"] is None:
            row["reason"] = _why_float(k3, layer, len(free))
    return rows


def _why_float(k3, layer, unmatched: int) -> str:
    """Why no `LceBconv2d` has the layer's kernel: what is known to keep LCE from fusing it."""
    reason = "no LceBconv2d of the file has its hard kernel's signs as filter: LCE converted it to float ops"
    if getattr(layer, "groups", 1) > 1:
        reason += " (a grouped binary conv needs a multiple of 32 input channels per group)"
    if unmatched:
        reason += f"; {unmatched} LceBconv2d of the file match no binarized layer's kernel"
    return reason
