"""The verification report of an export, as JSON (for tools) and Markdown (for people), and what
both exporters (`tfbin.export.converter` for Keras 2, `tfbin.export.keras3_convert` for Keras 3)
do with it: its problems, the strict rule and the atomic writing (`write_export`)."""
from __future__ import annotations

import dataclasses
import json
import os
import warnings

from tfbin import _io

__all__ = ["ExportError", "ExportReport", "deployment", "find_problems", "write_export"]


class ExportError(RuntimeError):
    """Strict export failed: a binarized layer did not become a binary op, or parity failed."""


@dataclasses.dataclass
class ExportReport:
    path: str | None
    layers: list
    op_histogram: dict
    size_bytes: int
    # The float twin's TFLite size; None when it was not converted (verify="quick" without latency).
    float_size_bytes: int | None
    one_bit_limit_bytes: int
    parity: dict
    latency: dict | None
    deployment: dict
    problems: list = dataclasses.field(default_factory=list)
    # Layers with binary inputs and float weights: `{layer, type, ops, reason}` (they run as float).
    float_weight_layers: list = dataclasses.field(default_factory=list)
    flatbuffer: bytes = dataclasses.field(default=b"", repr=False)
    # Which verification ran: "quick" or "full" (`tfbin.export.convert`'s `verify`).
    verify: str | None = None

    @property
    def all_binary(self) -> bool:
        """The model has binarized layers and every one became an `LceBconv2d`."""
        return bool(self.layers) and all(row["lce_op"] == "LceBconv2d" for row in self.layers)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("flatbuffer")
        data["size_vs_float"] = None if self.float_size_bytes is None else self.size_bytes / max(1, self.float_size_bytes)
        data["size_vs_one_bit_limit"] = self.size_bytes / max(1, self.one_bit_limit_bytes)
        data["all_binary"] = self.all_binary
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_markdown(self) -> str:
        d = self.to_dict()
        lines = [f"# Export report: {self.path or '(in memory)'}", ""]
        binary = sum(r["lce_op"] == "LceBconv2d" for r in self.layers)
        lines += [f"**{binary} of {len(self.layers)} binarized layers run as LCE binary ops.**", ""]
        lines += [self._verification_line(), ""]
        lines += ["| layer | type | LCE op | why not binary | BN → sign of its input |", "|---|---|---|---|---|"]
        lines += [
            f"| {r['layer']} | {r['type']} | {r['lce_op'] or 'float'}{' ×' + str(r['bconv_count']) if r.get('bconv_count', 1) > 1 else ''} | {r['reason'] or ''} | "
            f"{r.get('sign_input') or ''}{': ' + r['sign_input_detail'] if r.get('sign_input_detail') else ''} |"
            for r in self.layers
        ]
        if self.float_weight_layers:
            lines += [
                "",
                f"**{len(self.float_weight_layers)} layer(s) with binary activations and float weights run as float ops**: "
                "LCE has no binary op for float weights.",
                "",
                "| layer | type | TFLite ops | why float |",
                "|---|---|---|---|",
            ]
            lines += [f"| {r['layer']} | {r['type']} | {', '.join(r['ops']) or '—'} | {r['reason']} |" for r in self.float_weight_layers]
        lines += ["", "## Size", "", "| file | bytes | ratio |", "|---|---|---|"]
        lines += [
            f"| this model | {self.size_bytes:,} | 1 |",
            f"| float TFLite, same architecture | {self.float_size_bytes:,} | {self.float_size_bytes / max(1, self.size_bytes):.2f}× larger |"
            if self.float_size_bytes is not None else
            '| float TFLite, same architecture | not converted (quick verification; `verify="full"` converts it) | — |',
            f"| 1-bit limit (binarized kernels at 1 bit, other trainable weights at 32) | {self.one_bit_limit_bytes:,} | this model is {d['size_vs_one_bit_limit']:.2f}× the limit |",
        ]
        p = self.parity
        lines += [
            "",
            "## Keras (hard form) vs TFLite parity",
            "",
            f"{p['samples']} inputs: argmax agreement {p['argmax_agreement']:.4f}; max |diff| {p['max_abs_diff']:.3g} "
            f"(median {p['median_abs_diff']:.3g}); {p['within_tolerance']:.4f} of inputs within {p['tolerance']:.3g}.",
            "",
            f"Tie-free inputs (every binarized input farther than {p['tie_ulps']:g} float32 rounding units from its "
            f"threshold): {p['tie_free_samples']} ({p['tie_free_fraction']:.2%}); agreement on them "
            f"{'—' if p['tie_free_agreement'] is None else format(p['tie_free_agreement'], '.4f')}; unexplained mismatches "
            f"{p['unexplained_mismatches']}{' (samples ' + str(p['unexplained_samples']) + ')' if p['unexplained_mismatches'] else ''}. "
            "Disagreements on the other inputs are sign ties that any two float implementations may resolve differently. "
            f"**{'passed' if p['passed'] else 'FAILED'}**.",
        ]
        lines += ["", "## Ops", "", "| op | count |", "|---|---|"]
        lines += [f"| {name} | {count} |" for name, count in sorted(self.op_histogram.items())]
        if self.latency:
            lat = self.latency
            lines += [
                "",
                "## Host latency",
                "",
                f"LCE default kernels {lat['lce_default_ms']} ms, LCE indirect BGEMM {lat['lce_indirect_bgemm_ms']} ms, "
                f"float TFLite {lat['float_tflite_ms']} ms. {lat['note']}",
            ]
        dep = self.deployment
        lines += [
            "",
            "## Deploying",
            "",
            f"- input: shape {dep['input_shape']}, {dep['input_dtype']}, {dep['normalization']}",
            f"- labels: {dep['labels'] if dep['labels'] else 'not given'}",
            f"- {dep['op_resolver']}",
        ]
        if self.problems:
            lines += ["", "## Problems", ""] + [f"- {problem}" for problem in self.problems]
        return "\n".join(lines) + "\n"

    def _verification_line(self) -> str:
        """What was checked: the mode, the parity inputs, and what a quick verification left out."""
        line = f"Verification: **{self.verify or 'unknown'}**, parity on {self.parity['samples']} inputs"
        if self.parity.get("lce_kernel"):
            kernel = {"indirect_bgemm": "indirect-BGEMM", "default": "default BGEMM"}.get(self.parity["lce_kernel"], self.parity["lce_kernel"])
            line += f" (LCE's {kernel} kernel)"
        left_out = [what for what, done in (("the float TFLite size", self.float_size_bytes is not None),
                                            ("host latency", self.latency is not None)) if not done]
        if left_out:
            line += f"; not measured: {' and '.join(left_out)}"
            if self.verify == "quick":
                line += ' (`verify="full"`, `tfbin export --verify full`, measures them)'
        return line + "."

    def write(self, path: str | os.PathLike) -> None:
        """Write the JSON report to `path` and the Markdown one beside it (`.md`), atomically."""
        path = os.fspath(path)
        _io.write_text_atomic(path, self.to_json())
        _io.write_text_atomic(os.path.splitext(path)[0] + ".md", self.to_markdown())


def deployment(input_shape: tuple, normalization: str, labels) -> dict:
    """What an app that runs the `.tflite` needs to know."""
    return {
        "input_shape": [1, *input_shape],
        "input_dtype": "float32",
        "normalization": normalization,
        "labels": list(labels) if labels is not None else None,
        "op_resolver": "register LCE's ops: compute_engine::tflite::RegisterLCECustomOps(&resolver)",
    }


def find_problems(rows, float_rows, parity) -> list[str]:
    """Why the `.tflite` is not the binary net it should be (empty when it is): the report's
    `problems` from its layer rows, its float-weight rows and its parity."""
    problems = [f"layer {r['layer']!r} stayed float: {r['reason']}" for r in rows if r["lce_op"] != "LceBconv2d"]
    if not rows and float_rows:
        problems.append(
            f"the model has no binarized layer: its {len(float_rows)} binary-activation layer(s) have float weights, "
            "for which LCE has no binary op, so they run as float ops (no binary speed-up)"
        )
    elif not rows:
        problems.append("the model has no binarized layer: this is a float model, not a binary net (wrong checkpoint?)")
    if not parity["passed"]:
        problems.append(
            f"parity failed: {parity['unexplained_mismatches']} of {parity['tie_free_samples']} tie-free samples "
            f"disagree (first: {parity['unexplained_samples']}); no sign there is within rounding of its threshold"
        )
    return problems


def write_export(report: ExportReport, flatbuffer: bytes, path, report_path, strict: bool, stacklevel: int = 3) -> None:
    """Write the `.tflite` to `path` and the report to `report_path` (each atomically; None: not
    written), or, strict with problems, only the report and raise `ExportError`. Problems without
    `strict` are one warning; its `stacklevel` (`warnings.warn`'s, counted from here) names the
    caller of `tfbin.export.convert`: 3 when `convert` calls this, one more per frame between."""
    problems = report.problems
    if problems and strict:
        # The report says why; the .tflite is not written (strict means: no file unless binary).
        if report_path is not None:
            report.write(report_path)
        where = f" (report: {os.fspath(report_path)})" if report_path is not None else ""
        raise ExportError("tfbin.export (strict): " + "; ".join(problems) + where)
    if problems:
        warnings.warn("tfbin.export: " + "; ".join(problems), stacklevel=stacklevel)
    if path is not None:
        _io.write_bytes_atomic(path, flatbuffer)
    if report_path is not None:
        report.write(report_path)
