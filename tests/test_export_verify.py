"""`tfbin.export.convert(verify=...)`: the quick default and the full verification (issue #39).

Quick checks the same things as full (the LCE op of every binarized layer, tie-aware parity with
margins on every parity input) on fewer inputs, and leaves out the float twin's conversion and
host latency; the report says which ran."""
import json
import os
import subprocess
import sys

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from tfbin import export, models
from tfbin.export import converter
from tfbin.testing import randomize_batch_norm


def tiny_model():
    """A float stem, one binarized conv, a float head: converts in about a second."""
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 1)),
        tf.keras.layers.Conv2D(8, 3, padding="same"),
        tf.keras.layers.BatchNormalization(),
        lq.layers.QuantConv2D(8, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(3),
    ])
    randomize_batch_norm(model)
    return model


def test_verify_other_than_quick_or_full_is_a_clear_error_before_any_conversion(monkeypatch):
    monkeypatch.setattr(converter, "export_model", lambda *a, **k: pytest.fail("converted before checking verify"))
    for bad in ("bad", "Full", None, True):
        with pytest.raises(ValueError, match=r"verify must be one of 'quick', 'full'; got " + repr(bad).replace("(", r"\(")):
            export.convert(tiny_model(), verify=bad)


def test_quick_is_the_default_margins_every_input_and_skips_the_float_twin(monkeypatch, tmp_path):
    measured = []

    def counting_margins(model, x, *args, **kwargs):
        measured.append(len(x))
        return original_margins(model, x, *args, **kwargs)

    original_margins = converter.margins
    monkeypatch.setattr(converter, "margins", counting_margins)
    monkeypatch.setattr(converter, "_convert_float", lambda model: pytest.fail("quick converted the float twin"))
    report = export.convert(tiny_model(), tmp_path / "q.tflite", report_path=tmp_path / "q.json")
    quick = converter.DEFAULT_SAMPLES["quick"]
    # The tie-free statistics are over every parity input: each one's margin is measured.
    assert measured == [quick] and report.parity["samples"] == quick
    assert report.verify == "quick" and report.parity["lce_kernel"] == "indirect_bgemm"
    assert report.float_size_bytes is None and report.latency is None
    saved = json.loads((tmp_path / "q.json").read_text())
    assert saved["verify"] == "quick" and saved["parity"]["samples"] == quick and saved["size_vs_float"] is None
    markdown = (tmp_path / "q.md").read_text()
    assert f"Verification: **quick**, parity on {quick} inputs" in markdown
    assert "not measured: the float TFLite size and host latency" in markdown and "--verify full" in markdown
    assert report.all_binary and (tmp_path / "q.tflite").read_bytes() == report.flatbuffer


def test_full_converts_the_float_twin_measures_latency_and_says_so(tmp_path):
    # The caller's sample_inputs (and num_samples) win over the mode's default number of inputs
    # (full's default is checked through the command below).
    x = np.random.default_rng(0).uniform(0, 1, (7, 8, 8, 1)).astype("float32")
    report = export.convert(tiny_model(), verify="full", sample_inputs=x, latency_repeats=2, report_path=tmp_path / "f.json")
    assert report.verify == "full" and report.parity["samples"] == 7 and report.parity["lce_kernel"] == "default"
    assert report.float_size_bytes > report.size_bytes and report.latency["lce_default_ms"] > 0
    assert json.loads((tmp_path / "f.json").read_text())["verify"] == "full"
    markdown = (tmp_path / "f.md").read_text()
    assert "Verification: **full**, parity on 7 inputs" in markdown and "not measured" not in markdown
    assert export.convert(tiny_model(), num_samples=5).parity["samples"] == 5


@pytest.mark.parametrize("recipe", ["irnet", "dab"])
def test_lce_indirect_bgemm_kernel_is_bitwise_the_default_one(recipe):
    # Quick's parity runs LCE's indirect-BGEMM kernel, full's the default BGEMM one: the same
    # integer popcounts and output transform, so the same outputs bit for bit, also where a
    # binary conv writes thresholded (bitpacked) outputs (irnet's fused BN → sign) and where a
    # kernel has two unequal levels per channel (dab's extra all-ones channels).
    import larq_compute_engine as lce

    tf.keras.utils.set_random_seed(0)
    model, _ = models.build("fmnist_small", recipe, epochs=1)
    randomize_batch_norm(model)
    x = np.random.default_rng(1).uniform(0, 1, size=(64, 28, 28, 1)).astype("float32")
    report = export.convert(model, sample_inputs=x, strict=True)
    default = lce.testing.Interpreter(report.flatbuffer, num_threads=1).predict(x)
    indirect = lce.testing.Interpreter(report.flatbuffer, num_threads=1, use_indirect_bgemm=True).predict(x)
    np.testing.assert_array_equal(indirect, default)


def test_quick_and_full_reach_the_same_parity_verdict_on_the_same_inputs():
    tf.keras.utils.set_random_seed(0)
    model, _ = models.build("fmnist_small", "irnet", epochs=1)
    randomize_batch_norm(model)
    x = np.random.default_rng(1).uniform(0, 1, size=(64, 28, 28, 1)).astype("float32")
    quick = export.convert(model, sample_inputs=x).parity
    full = export.convert(model, verify="full", sample_inputs=x, latency=False).parity
    # Verdicts: exactly equal. Differences: float32 rounding at most (eager calls vs `predict`).
    for key in ("samples", "tie_free_samples", "unexplained_mismatches", "unexplained_samples", "passed", "min_margin_ulps"):
        assert quick[key] == full[key], key
    assert quick["tie_free_samples"] > 0 and quick["passed"]
    for key in ("argmax_agreement", "max_abs_diff", "median_abs_diff", "within_tolerance"):
        assert quick[key] == pytest.approx(full[key], rel=1e-4, abs=1e-6), key


def test_cli_verify_option_defaults_to_quick_and_rejects_other_values():
    from tfbin import cli

    parser = cli.build_parser()
    assert parser.parse_args(["export", "m.keras", "-o", "m.tflite"]).verify == "quick"
    assert parser.parse_args(["export", "m.keras", "-o", "m.tflite", "--verify", "full"]).verify == "full"
    verbs = parser._subparsers._group_actions[0].choices
    assert "(default: quick)" in " ".join(verbs["export"].format_help().split())
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["export", "m.keras", "-o", "m.tflite", "--verify", "fast"])
    assert exit_.value.code == 2


def test_cli_verify_full_writes_the_full_report(tmp_path):
    model, _ = models.build("lenet_bnn", "irnet", epochs=1)
    model.save(tmp_path / "model.keras")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "tfbin.cli", "export", str(tmp_path / "model.keras"), "-o", str(tmp_path / "m.tflite"), "--verify", "full"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "on 1000 inputs (full verification)" in result.stdout
    saved = json.loads((tmp_path / "m.report.json").read_text())
    assert saved["verify"] == "full" and saved["float_size_bytes"] > saved["size_bytes"] and saved["latency"]
