"""`convert`: a tfbin/larq model to a verified binary TFLite file (see `tfbin.export`)."""
from __future__ import annotations

import contextlib
import logging
import os

import numpy as np
import tensorflow as tf

from tfbin import _graph, _quiet, mode, sharpness
from tfbin.families import family_of
from tfbin.introspect import binarized_layers, binary_activation_layers
from tfbin.auxiliary import unwrap
from tfbin.export import flatbuffer as flatbuffer_lib, keras3_convert, measure
from tfbin.export.parity import margins, parity as compare
from tfbin.export.report import ExportError, ExportReport, deployment, find_problems, write_export
from tfbin.export.rewrite import export_model
from tfbin.export.thresholds import sign_inputs

__all__ = ["DEFAULT_SAMPLES", "ExportError", "VERIFY_MODES", "convert", "float_twin", "layer_bconvs"]


def float_twin(model: tf.keras.Model) -> tf.keras.Model:
    """The same architecture with every larq layer as its plain Keras layer (no quantizers)."""
    return _graph.rebuild(model, lambda layer: family_of(layer).float_layer(layer), share=True)


def _hard(model):
    return mode.hard(model) if sharpness.quantizers(model) else contextlib.nullcontext()


class _NotCompiledNote(logging.Filter):
    """tf-keras's legacy SavedModel save (which both converters use) calls
    `try_build_compiled_arguments`, whose bare `except` logs "Compiled the loaded model, but the
    compiled metrics have yet to be built" for every model that was never compiled. The models
    converted here are fresh clones, uncompiled on purpose (nothing trains them): the line is
    false for them, so it is dropped while they convert."""

    def filter(self, record):
        return "compiled metrics have yet to be built" not in record.getMessage()


@contextlib.contextmanager
def _converting():
    note = _NotCompiledNote()
    tf.get_logger().addFilter(note)
    try:
        with _quiet.conversion():  # the command's quiet defaults (tfbin._quiet); else a no-op
            yield
    finally:
        tf.get_logger().removeFilter(note)


def _one_bit_limit_bytes(model) -> int:
    """Binarized kernels at 1 bit, every other trainable weight at its stored 32 bits.

    Non-trainable weights (BatchNorm statistics, sharpness values) are left out: at inference
    they fold into the trainable ones' multipliers and biases.
    """
    # Bits per latent weight: the family's (an ABC-Net layer deploys M binary weight bases: M bits).
    binary_kernels = {id(layer.kernel): family_of(layer).kernel_bits(layer) for layer in binarized_layers(model)}
    bits = 0
    for weight in model.trainable_weights:
        count = int(np.prod(weight.shape))
        bits += count * binary_kernels.get(id(weight), 32)
    return int(np.ceil(bits / 8))


# LCE cuts tensor names at this many characters (then appends a counter to keep them unique):
# "meliusnet22/section_0_block_0_improve_binconv_expo1" for the layer
# "section_0_block_0_improve_binconv_export". Names cannot tell which layer an op came from.
_NAME_LIMIT = 50


def _names_layer(tensor_name: str, layer_name: str) -> bool:
    """Whether a tensor name of the file comes from the layer `layer_name`: its scope names the
    layer, or the name was cut (`_NAME_LIMIT`) inside the layer's name. Only describes what a
    layer became (`_map_layers`' reasons, `_float_weight_rows`): a cut name may fit several layers."""
    if any(f"/{layer_name}/" in part or part.endswith(f"/{layer_name}") for part in tensor_name.split(";")):
        return True
    if len(tensor_name) < _NAME_LIMIT:
        return False
    cut = tensor_name[:_NAME_LIMIT].split(";")[-1]
    head, _, last = cut.rpartition("/")
    return bool(head) and len(last) >= min(len(layer_name), 8) and layer_name.startswith(last)


def _export_kernels(export_layer) -> list[np.ndarray]:
    """The signs LCE packs for each binary conv of an export layer: the hard kernel of every
    `Conv2D` in it (larq `QuantConv2D`s: one for a `BinaryConvExport`, DAB's all-ones channels
    included; M·N for an `ABCExport`), as `[out, kh, kw, in]` booleans (weight −1)."""
    convs, seen = [], set()
    for layer in [export_layer, *export_layer.submodules]:
        if isinstance(layer, tf.keras.layers.Conv2D) and getattr(layer, "kernel", None) is not None and id(layer) not in seen:
            seen.add(id(layer))
            convs.append(layer)
    kernels = []
    for conv in convs:
        # The built-in exports fix the kernel (no quantizer); a family's may quantize its own.
        kernel, quantizer = tf.convert_to_tensor(conv.kernel), getattr(conv, "kernel_quantizer", None)
        kernel = np.asarray(kernel if quantizer is None else quantizer(kernel))
        kernels.append(np.transpose(kernel, (3, 0, 1, 2)) < 0)
    return kernels


def layer_bconvs(model, exported, mapping, flatbuffer: bytes) -> dict[str, list[int]]:
    """`{binarized layer name: [operator index of each LceBconv2d it became]}` (indices into
    `flatbuffer.main_graph`'s operators, ascending; `[]` for a layer that stayed float).

    Found by weights, not names (LCE cuts tensor names, `_NAME_LIMIT`): a bconv is the layer's
    where its filter holds the signs of one of the layer's export kernels (`_export_kernels`;
    `exported`, `mapping` from `export_model`), bit for bit — or with whole output channels
    flipped where the bconv writes bitpacked output (`flatbuffer.main_bconvs`). Each bconv is
    matched once, layers in order, each layer's kernels to the first free bconv in op order.
    """
    bconvs = flatbuffer_lib.main_bconvs(flatbuffer)
    free = list(range(len(bconvs)))
    found = {}
    for layer in binarized_layers(model):
        export_name = mapping.get(layer.name)
        operators = []
        for negative in [] if export_name is None else _export_kernels(exported.get_layer(export_name)):
            match = next((j for j in free if flatbuffer_lib.holds_signs(bconvs[j][1], negative, bconvs[j][2])), None)
            if match is not None:
                free.remove(match)
                operators.append(bconvs[match][0])
        found[layer.name] = sorted(operators)
    return found


def _map_layers(model, mapping, refused, ops, bconvs):
    """Each binarized Keras layer -> the LCE op its export layer became, or why it stayed float
    (`bconvs`: `layer_bconvs`)."""
    rows = []
    for layer in binarized_layers(model):
        export_name = mapping.get(layer.name)
        row = {"layer": layer.name, "type": type(layer).__name__, "lce_op": None, "reason": None, "bconv_count": 0}
        if export_name is None:
            row["reason"] = f"rewrite refused: {refused.get(layer.name, 'unsupported layer')}"
        else:
            row["bconv_count"] = len(bconvs.get(layer.name, []))
            expected = family_of(layer).binary_convolutions(layer)
            if row["bconv_count"] == expected:
                row["lce_op"] = "LceBconv2d"
            elif row["bconv_count"]:
                row["reason"] = f"{row['bconv_count']} LceBconv2d found, {expected} expected (its layer family's binary convolutions)"
            else:
                # What it became instead, from the tensor names (LCE names them after the TF ops they came from).
                produced = sorted({name for name, tensors in ops if name != "LceBconv2d" and any(_names_layer(t, export_name) for t in tensors)})
                row["reason"] = (f"converted to {produced or 'ops folded into neighbours'}, not LceBconv2d "
                                 "(no LceBconv2d of the file has its exported kernel's signs as filter)")
        rows.append(row)
    return rows


FLOAT_WEIGHTS_REASON = (
    "binary (±1) inputs but real-valued weights: LCE has no binary op for float weights (its binary "
    "conv needs ±1 weights with one scale per output channel), so this layer runs as float ops on the "
    "sign of its input — no binary kernel, no speed-up or size gain from it"
)


def _float_weight_rows(model, ops):
    """Each binary-activation layer with float weights -> the float ops it became."""
    rows = []
    for layer in binary_activation_layers(model):
        produced = sorted({name for name, tensors in ops if any(_names_layer(t, layer.name) for t in tensors)})
        rows.append({"layer": layer.name, "type": type(layer).__name__, "ops": produced, "reason": FLOAT_WEIGHTS_REASON})
    return rows


# What `convert(verify=...)` accepts: "quick", the default, and "full", which adds the float twin
# (size comparison) and host latency and checks parity on more inputs.
VERIFY_MODES = ("quick", "full")
# Generated parity inputs when the caller gives neither `sample_inputs` nor `num_samples`. Quick:
# enough to catch an exporter bug (a wrong sign, kernel or channel order changes the output of
# every tie-free input) while each input's LCE interpreter run stays a small share of the
# conversion; full: enough inputs for the tie-free statistics of the report to mean something.
DEFAULT_SAMPLES = {"quick": 16, "full": 1000}


def convert(
    model: tf.keras.Model,
    path: str | os.PathLike | None = None,
    *,
    strict: bool = False,
    verify: str = "quick",
    sample_inputs=None,
    num_samples: int | None = None,
    latency: bool | None = None,
    latency_repeats: int = 20,
    normalization: str = "float32 as the Keras model's input",
    labels=None,
    report_path: str | os.PathLike | None = None,
) -> ExportReport:
    """Convert the hard form of `model` with LCE and verify the result.

    # Arguments
        path: where to write the `.tflite` (atomically); None keeps it in the report only.
        strict: raise `ExportError` naming the layers when a binarized layer did not become
            `LceBconv2d`, or when parity fails (otherwise a loud warning).
        verify: how much checking follows the conversion (`VERIFY_MODES`). Both modes report
            the LCE op of each binarized layer and run the tie-aware parity check, with margins
            for every parity input. `"quick"` (default) keeps the cost a small share of LCE's
            own conversion: `DEFAULT_SAMPLES["quick"]` generated inputs, the Keras outputs from
            eager calls (no `predict` function to trace) against LCE's indirect-BGEMM kernel,
            no float-twin conversion (`float_size_bytes` is None) and no latency unless
            `latency=True`. `"full"`: `DEFAULT_SAMPLES["full"]` inputs, `predict` against
            LCE's default kernel, the float TFLite of the same architecture converted for the
            size comparison, and host latency. Anything else raises `ValueError`.
        sample_inputs: inputs for the parity check, all of them used in either mode (default:
            `num_samples` uniform [0, 1] inputs of the model's input shape, `num_samples`
            defaulting to `DEFAULT_SAMPLES[verify]`; pass real data where you have it).
        latency: measure host latency (LCE default and indirect-BGEMM kernels, float TFLite);
            None: only with `verify="full"`. Its float baseline needs the float twin, so
            `latency=True` converts it (and reports its size) in quick mode too.
        normalization, labels: what a deploying app needs to know, copied into the report.
        report_path: also write the report as JSON there and as Markdown beside it (`.md`).
    """
    if verify not in VERIFY_MODES:
        raise ValueError(f"tfbin.export.convert: verify must be one of {', '.join(map(repr, VERIFY_MODES))}; got {verify!r}")
    if keras3_convert.is_keras3_model(model):  # tfbin.keras3's layers: Keras 3's conversion, the same report
        return keras3_convert.convert(
            model, path, strict=strict, verify=verify, sample_inputs=sample_inputs,
            num_samples=DEFAULT_SAMPLES[verify] if num_samples is None else num_samples, latency=latency,
            latency_repeats=latency_repeats, normalization=normalization, labels=labels, report_path=report_path,
        )
    model = unwrap(model)  # a training model's auxiliary losses are not deployed
    if model.inputs is None or len(model.inputs) != 1:
        raise ValueError("tfbin.export.convert needs a built model with exactly one input.")
    exported, mapping, refused = export_model(model)
    flatbuffer = _convert_lce(model, exported)
    measure_latency = verify == "full" if latency is None else bool(latency)
    # The float twin costs a second conversion, about as long as LCE's: only what needs it converts it.
    float_flatbuffer = _convert_float(model) if verify == "full" or measure_latency else None
    input_shape = tuple(model.inputs[0].shape[1:])
    sample_inputs = measure.sample_inputs(sample_inputs, DEFAULT_SAMPLES[verify] if num_samples is None else num_samples, input_shape)
    parity = _parity(model, flatbuffer, sample_inputs, verify)
    with _quiet.conversion():
        measured = measure.latency(flatbuffer, float_flatbuffer, sample_inputs[:1], latency_repeats) if measure_latency else None
    ops = flatbuffer_lib.ops(flatbuffer)
    rows = _layer_rows(model, exported, mapping, refused, flatbuffer, ops)
    float_rows = _float_weight_rows(model, ops)
    report = ExportReport(
        path=None if path is None else os.fspath(path),
        layers=rows,
        float_weight_layers=float_rows,
        op_histogram=dict(flatbuffer_lib.histogram(ops)),
        size_bytes=len(flatbuffer),
        float_size_bytes=None if float_flatbuffer is None else len(float_flatbuffer),
        one_bit_limit_bytes=_one_bit_limit_bytes(model),
        parity=parity,
        latency=measured,
        deployment=deployment(input_shape, normalization, labels),
        flatbuffer=flatbuffer,
        verify=verify,
    )
    report.problems = find_problems(rows, float_rows, parity)
    write_export(report, flatbuffer, path, report_path, strict)
    return report


def _convert_lce(model, exported) -> bytes:
    """The LCE flatbuffer of the hard form (`exported`, the rewritten `model`)."""
    import larq_compute_engine as lce

    with _hard(model), _converting():  # the layers that were not rewritten are shared with `model`
        return lce.convert_keras_model(exported)


def _convert_float(model) -> bytes:
    """The plain TFLite flatbuffer of `model`'s float twin: the size the report compares with,
    and the float baseline of the latency measurement."""
    with _converting():
        return tf.lite.TFLiteConverter.from_keras_model(float_twin(model)).convert()


def _parity(model, flatbuffer: bytes, sample_inputs: np.ndarray, verify: str) -> dict:
    """The hard Keras model against LCE's interpreter on `sample_inputs` (`compare`)."""
    import larq_compute_engine as lce

    with _hard(model):
        expected = _keras_outputs(model, sample_inputs, eager=verify == "quick")
        sample_margins = margins(model, sample_inputs)
    # Quick runs LCE's indirect-BGEMM binary convolution: on x86 hosts it is several times faster
    # than the default BGEMM kernel, and both compute the same integer popcounts and output
    # transform (tests/test_export_verify.py checks that their outputs are bitwise equal).
    kernel = "indirect_bgemm" if verify == "quick" else "default"
    with _quiet.conversion():
        interpreter = lce.testing.Interpreter(flatbuffer, num_threads=1, use_indirect_bgemm=kernel == "indirect_bgemm")
        got = interpreter.predict(sample_inputs)
    return {**compare(np.asarray(expected), np.asarray(got), sample_margins), "lce_kernel": kernel}


def _keras_outputs(model, x: np.ndarray, eager: bool, batch_size: int = 256) -> np.ndarray:
    """The model's outputs on `x`: `predict` (a traced function), or eager calls. Tracing
    `predict` costs more than the forward pass of a few inputs, and `margins` reads its pre-sign
    values from eager calls too; the two agree to float32 rounding (graph rewrites may reorder
    a sum), far inside `compare`'s tolerance."""
    if not eager:
        return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    return np.concatenate([np.asarray(model(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)])


def _layer_rows(model, exported, mapping, refused, flatbuffer: bytes, ops) -> list[dict]:
    """The report's row per binarized layer: the LCE op it became and whether its input sign
    came from the previous binary conv's thresholds."""
    with _hard(model):  # as converted: an export layer may share the model's quantizers
        bconvs = layer_bconvs(model, exported, mapping, flatbuffer)
    rows = _map_layers(model, mapping, refused, ops, bconvs)
    # Binary BatchNorm: whether each layer's BN → sign became the previous bconv's thresholds.
    two_level = {
        name for name, export_name in mapping.items()
        if getattr(exported.get_layer(export_name), "offset_scale", None) is not None
    }
    signs = {s["layer"]: s for s in sign_inputs(model, flatbuffer, bconvs, two_level)}
    for row in rows:
        sign = signs.get(row["layer"], {})
        row["sign_input"], row["sign_input_detail"] = sign.get("sign"), sign.get("detail")
    return rows
