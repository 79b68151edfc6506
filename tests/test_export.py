"""Export through LCE: every binarized layer becomes LceBconv2d, with parity and a computed report."""
import json
import os
import subprocess
import sys

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin import export, models, recipes
from tfbin import quantizers as Q
from tfbin.introspect import binarized_layers
from tfbin.export.rewrite import export_model
from tfbin.testing import randomize_batch_norm


# larq's baselines other than `ste` are exported below at a fraction of the cost: `approx_sign` and
# `swish_sign` differ from `ste` in their gradients only (their export input is ste's exactly),
# `bireal` in its kernel scale (one conversion of lenet_bnn).
EXPORTED = [r for r in recipes.available() if r not in recipes.LARQ_BASELINES[1:]]


@pytest.mark.parametrize("recipe", EXPORTED)
def test_every_recipe_exports_all_binarized_layers_as_bconv_with_parity(tmp_path, recipe):
    # fmnist_small: binarized convs and a binarized hidden Dense before the float classifier.
    # Parity is asserted where it is exact: on tie-free samples (every pre-sign value farther
    # than TIE_ULPS rounding units from its threshold). A max |diff| over all samples would
    # depend on how this CPU's float kernels round the near-threshold values (AVX2 vs AVX-512,
    # oneDNN on or off). Seeded weights: the tie-free fraction is a property of the weights
    # (with seed 0 it is 0.51-0.65 per recipe, the same with oneDNN on and off).
    tf.keras.utils.set_random_seed(0)
    # abc: 2×2 bases keep the test fast (the default 3×3 is 9 bconvs per layer; tests/test_abc.py covers others)
    overrides = {"weight_bases": 2, "activation_bases": 2} if recipe == "abc" else {}
    model, _ = models.build("fmnist_small", recipe, epochs=1, **overrides)
    randomize_batch_norm(model)
    x = np.random.default_rng(1).uniform(0, 1, size=(1000, 28, 28, 1)).astype("float32")
    path = tmp_path / "model.tflite"
    report = export.convert(model, path, strict=True, sample_inputs=x, latency=False)
    assert [r["lce_op"] for r in report.layers] == ["LceBconv2d"] * 4
    bconvs = [getattr(l, "weight_bases", 1) * getattr(l, "activation_bases", 1) for l in binarized_layers(model)]  # M·N for ABC-Net
    assert [r["bconv_count"] for r in report.layers] == bconvs
    assert report.op_histogram["LceBconv2d"] == sum(bconvs) and report.op_histogram["CONV_2D"] == 1
    # fmnist_small is conv → pool → BN: only the BN right after a binary conv becomes thresholds,
    # and only when that conv has symmetric levels (DAB's a + b·sign adds a float offset term;
    # ABC-Net's N shifted signs of one input run as float ADD → LceQuantize).
    signs = [r["sign_input"] for r in report.layers]
    assert signs == ["float", "float", "float" if recipe in ("dab", "abc") else "fused", "float"]
    if recipe == "dab":
        assert "two unequal kernel levels" in report.layers[2]["sign_input_detail"]
    parity = report.parity
    assert parity["samples"] == 1000 and parity["passed"]
    assert parity["tie_free_fraction"] >= 0.4
    assert parity["unexplained_mismatches"] == 0 and parity["tie_free_agreement"] == 1.0
    assert parity["argmax_agreement"] >= 0.99  # ties may flip a few argmaxes, not many
    assert path.read_bytes() == report.flatbuffer
    assert not any(q.hard_mode for q in tfbin.sharpness.quantizers(model))


def test_larq_gradient_baselines_give_the_exporter_exactly_what_ste_gives_it():
    # approx_sign and swish_sign compute sign(x) forward like ste (their gradients differ): the
    # model LCE converts, built from the same weights, is ste's op for op and weight for weight,
    # so their export is the one the test above checks for ste.
    tf.keras.utils.set_random_seed(0)
    base = models.build("fmnist_small", "ste").model
    randomize_batch_norm(base)
    reference, _, refused = export_model(base)
    assert not refused
    for recipe in ("approx_sign", "swish_sign"):
        model = tfbin.binarize(base, recipe).model
        exported, mapping, refused = export_model(model)
        assert not refused and len(mapping) == 4, recipe
        assert [type(l).__name__ for l in exported.layers] == [type(l).__name__ for l in reference.layers]
        for got, expected in zip(exported.weights, reference.weights, strict=True):
            np.testing.assert_array_equal(got.numpy(), expected.numpy(), err_msg=recipe)


def test_bireal_magnitude_aware_kernels_fold_into_the_binary_conv(tmp_path):
    # MagnitudeAwareSign's per-output-channel scale mean|W_o| becomes LCE's output multiplier:
    # lenet_bnn exports with ste's ops exactly (its 2 MUL + 2 ADD are the BatchNorms after the
    # max-pools, as for ste), every binarized layer one LceBconv2d, with parity.
    tf.keras.utils.set_random_seed(0)
    model, _ = models.build("lenet_bnn", "bireal")
    randomize_batch_norm(model)
    conv = binarized_layers(model)[0]
    scales = np.abs(conv.kernel.numpy()).reshape(-1, conv.kernel.shape[-1]).mean(0)
    assert scales.std() > 0.01 * scales.mean()  # unequal per channel: a real test of the fold
    x = np.random.default_rng(1).uniform(0, 1, size=(200, 28, 28, 1)).astype("float32")
    report = export.convert(model, tmp_path / "bireal.tflite", strict=True, sample_inputs=x, latency=False)
    assert [r["lce_op"] for r in report.layers] == ["LceBconv2d"] * 2
    assert report.op_histogram == {"CONV_2D": 1, "MAX_POOL_2D": 2, "MUL": 2, "ADD": 2, "LceQuantize": 2, "LceBconv2d": 2,
                                   "RESHAPE": 1, "FULLY_CONNECTED": 1, "SOFTMAX": 1}
    assert report.parity["passed"] and report.parity["unexplained_mismatches"] == 0


def test_margins_are_distances_to_the_threshold_in_rounding_units():
    from tfbin.export.parity import margins

    # One binarized dense layer right after the input: its pre-sign values are the inputs.
    model = tf.keras.Sequential([
        tf.keras.Input((4,)),
        lq.layers.QuantDense(3, input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip"),
    ])
    x = np.array([[1.0, -2.0, 0.5, 4.0], [1.0, -2.0, 1e-6, 4.0], [0.0, 1.0, 1.0, 1.0]], "float32")
    got = margins(model, x)
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(got, [0.5 / (eps * 4.0), 1e-6 / (eps * 4.0), 0.0], rtol=1e-6)
    # A {0,1} rectifier thresholds at θ = (0.5 − c)/(v·a): the margin is measured from there.
    abr = Q.BoundedRectifier(offset=0.25)
    model = tf.keras.Sequential([tf.keras.Input((2,)), lq.layers.QuantDense(2, input_quantizer=abr, kernel_quantizer="ste_sign")])
    abr.slope.assign([1.0, 2.0])
    theta = np.array([0.25, 0.125])
    x = np.array([[0.5, 1.0]], "float32")
    np.testing.assert_allclose(margins(model, x), [np.min(np.abs(x - theta)) / (eps * 1.0)], rtol=1e-6)


def test_margins_scale_with_the_float_sum_a_clip_hides():
    # A residual net's sign input is hardtanh(BN(conv(x)) + shortcut): the clip bounds the value
    # by 1 but its rounding is that of the sum and its summands (IR-Net's ResNet-20: TFLite and
    # Keras differ by up to 889 units of 1 and at most 7.5 units of the summands' magnitude: bench/tie_scale.py).
    from models.small import HardTanh
    from tfbin.export.parity import margins

    inputs = tf.keras.Input((4,))
    doubled = tf.keras.layers.Dense(4, use_bias=False, kernel_initializer="identity")(inputs)
    summed = tf.keras.layers.Add()([inputs, doubled])  # 2x
    outputs = lq.layers.QuantDense(3, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(HardTanh()(summed))
    model = tf.keras.Model(inputs, outputs)
    x = np.array([[3.0, -1e-3, 0.25, 0.5], [0.1, 0.2, -0.2, 1e-4]], "float32")
    eps = np.finfo(np.float32).eps
    clipped = np.clip(2 * x, -1, 1)
    # The scale: the largest of the clipped value, the sum (2x) and its summands (x, x).
    expected = np.abs(clipped).min(1) / (eps * np.abs(2 * x).max(1))  # the old rule: / max|clipped|
    np.testing.assert_allclose(margins(model, x), expected, rtol=1e-6)


def test_a_wrong_export_is_an_unexplained_mismatch_and_fails_strict(monkeypatch, tmp_path):
    # Break the rewrite on purpose: every exported binary kernel's first output channel negated.
    # Tie-free samples then disagree, which tie-awareness must not excuse.
    from tfbin.export import rewrite

    original = rewrite.BinaryConvExport.__init__

    def broken(self, *, kernel, **kwargs):
        kernel = np.array(kernel)
        kernel[..., 0] *= -1
        original(self, kernel=kernel, **kwargs)

    tf.keras.utils.set_random_seed(0)
    model, _ = models.build("lenet_bnn", "ste")
    randomize_batch_norm(model)
    x = np.random.default_rng(1).uniform(0, 1, size=(200, 28, 28, 1)).astype("float32")
    monkeypatch.setattr(rewrite.BinaryConvExport, "__init__", broken)
    with pytest.warns(UserWarning, match="parity failed"):
        report = export.convert(model, sample_inputs=x, latency=False)
    assert report.parity["unexplained_mismatches"] > 0 and not report.parity["passed"]
    assert report.parity["tie_free_samples"] > 0
    with pytest.raises(export.ExportError, match="tie-free samples disagree"):
        export.convert(model, tmp_path / "m.tflite", strict=True, sample_inputs=x, latency=False)
    assert not (tmp_path / "m.tflite").exists()


def test_a_float_model_is_not_a_binary_export(tmp_path):
    model = tf.keras.Sequential([tf.keras.Input((6,)), tf.keras.layers.Dense(4), tf.keras.layers.Dense(2)])
    with pytest.raises(export.ExportError, match="no binarized layer"):
        export.convert(model, tmp_path / "f.tflite", strict=True, latency=False, num_samples=8)
    with pytest.warns(UserWarning, match="no binarized layer"):
        report = export.convert(model, latency=False, num_samples=8)
    assert not report.all_binary


@pytest.mark.slow
def test_export_parity_holds_with_both_tensorflow_kernel_sets():
    # oneDNN on and off are two sets of float kernels on one machine: the tie-aware parity
    # tests must pass with either (they stand in for other CPUs' kernels). This suite already
    # runs them with the kernels of this process's setting; the subprocess takes the other one.
    other = "1" if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0" else "0"
    for flag in (other,):
        env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": flag, "TF_CPP_MIN_LOG_LEVEL": "3"}
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
             "-k", "every_recipe_exports and (dab or ste or self_binarizing) or a_wrong_export"],
            capture_output=True, text=True, env=env, timeout=900,
        )
        assert result.returncode == 0, (flag, result.stdout[-3000:])
        assert "4 passed" in result.stdout, result.stdout[-500:]


def border_model(recipe, padding):
    inputs = tf.keras.Input((7, 7, 3))
    x = tf.keras.layers.Conv2D(16, 3, padding="same")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Conv2D(24, 3, padding=padding, use_bias=True)(x)
    x = tf.keras.layers.Conv2D(8, 1)(x)  # kept float ("last"): the binary conv's output map is compared
    model = tf.keras.Model(inputs, x)
    # abr's {0, 1} unit (not its default): the one whose export is a rewrite, not a plain sign.
    binarized, _ = tfbin.binarize(model, recipe, epochs=1, **({"symmetric": False} if recipe == "abr" else {}))
    randomize_batch_norm(binarized)
    layer = [l for l in binarized.layers if isinstance(l, lq.layers.QuantConv2D)][0]
    layer.bias.assign(np.random.default_rng(2).normal(size=24))
    if recipe == "abr":
        layer.input_quantizer.slope.assign(np.random.default_rng(3).uniform(0.3, 3, 16))
    return binarized, layer


@pytest.mark.parametrize("recipe", ["abr", "dab"])
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_abr_and_dab_rewrites_are_exact_including_same_padding_borders(recipe, padding):
    model, layer = border_model(recipe, padding)
    x = np.random.default_rng(4).normal(size=(64, 7, 7, 3)).astype("float32")
    probe = tf.keras.Model(model.inputs, model.get_layer(layer.name).output)
    exported, mapping, refused = export_model(model)
    assert not refused and layer.name in mapping
    probe_export = tf.keras.Model(exported.inputs, exported.get_layer(mapping[layer.name]).output)
    with tfbin.hard(model):
        expected = probe.predict(x, verbose=0)
        got = probe_export.predict(x, verbose=0)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, atol=1e-5 * scale)
    if padding == "same":  # the borders, where the padding enters the sums
        np.testing.assert_allclose(got[:, [0, -1]], expected[:, [0, -1]], atol=1e-5 * scale)
        np.testing.assert_allclose(got[:, :, [0, -1]], expected[:, :, [0, -1]], atol=1e-5 * scale)
    report = export.convert(model, sample_inputs=x, latency=False, strict=True)
    assert report.layers[0]["lce_op"] == "LceBconv2d"


class ShiftedSign(Q.SoftHardQuantizer):
    """A user quantizer whose hard form, sign(x - 0.3), has no rewrite: export must say so."""

    def soft(self, x):
        return tf.tanh(x - 0.3)

    def hard(self, x):
        return lq.math.sign(x - 0.3)


def unsupported_model():
    return tf.keras.Sequential(
        [
            tf.keras.Input((6, 6, 3)),
            tf.keras.layers.Conv2D(8, 3, padding="same"),
            lq.layers.QuantConv2D(8, 3, padding="same", pad_values=1.0, input_quantizer=ShiftedSign(), kernel_quantizer="ste_sign", name="shifted"),
            lq.layers.QuantConv2D(8, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign", kernel_quantizer="ste_sign", name="plain"),
            tf.keras.layers.GlobalAveragePooling2D(),
            tf.keras.layers.Dense(3),
        ]
    )


def test_unsupported_binarized_layer_warns_or_fails_strictly_naming_it(tmp_path):
    model = unsupported_model()
    with pytest.warns(UserWarning, match=r"layer 'shifted' stayed float: rewrite refused.*sign\(x\)"):
        report = export.convert(model, tmp_path / "m.tflite", latency=False)
    assert [r["lce_op"] for r in report.layers] == [None, "LceBconv2d"]
    assert not report.all_binary and "shifted" in report.to_markdown()
    with pytest.raises(export.ExportError, match="'shifted'"):
        export.convert(model, tmp_path / "strict.tflite", strict=True, latency=False)
    assert not (tmp_path / "strict.tflite").exists()  # nothing written on failure


def test_report_numbers_are_computed_from_the_model(tmp_path):
    two_models = {
        1: models.build("lenet_bnn", "irnet", epochs=1).model,
        2: models.build("fmnist_small", "irnet", epochs=1).model,
    }
    reports = []
    for width, model in two_models.items():
        report = export.convert(model, tmp_path / f"{width}.tflite", num_samples=50, latency=True, latency_repeats=3, report_path=tmp_path / f"{width}.json")
        kernels = {id(l.kernel) for l in binarized_layers(model)}
        bits = sum(int(np.prod(w.shape)) * (1 if id(w) in kernels else 32) for w in model.trainable_weights)
        assert report.one_bit_limit_bytes == int(np.ceil(bits / 8))
        assert report.size_bytes == os.path.getsize(tmp_path / f"{width}.tflite")
        assert report.size_bytes < report.float_size_bytes / 5
        assert 0.5 < report.size_bytes / report.one_bit_limit_bytes < 2
        saved = json.loads((tmp_path / f"{width}.json").read_text())
        assert saved["size_bytes"] == report.size_bytes and saved["op_histogram"] == report.op_histogram
        assert (tmp_path / f"{width}.md").read_text().startswith("# Export report")
        assert all(report.latency[k] > 0 for k in ("lce_default_ms", "lce_indirect_bgemm_ms", "float_tflite_ms"))
        reports.append(report)
    assert reports[0].size_bytes != reports[1].size_bytes
    assert reports[0].op_histogram != reports[1].op_histogram


def cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "tfbin.cli", *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("fmt", ["model.h5", "model.keras", "saved_model"])
def test_cli_exports_saved_models(tmp_path, fmt):
    model, _ = models.build("lenet_bnn", "irnet", epochs=1)
    model.save(tmp_path / fmt)
    out = tmp_path / "out.tflite"
    result = cli("export", str(tmp_path / fmt), "-o", str(out), "--strict", "--no-latency")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2/2 binarized layers as LceBconv2d" in result.stdout
    assert json.loads((tmp_path / "out.report.json").read_text())["all_binary"] is True
    assert out.stat().st_size > 0


def test_cli_export_bad_files_fail_in_one_line(tmp_path):
    missing = cli("export", str(tmp_path / "nope.h5"), "-o", str(tmp_path / "o.tflite"))
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1] == f"tfbin export: error: {tmp_path / 'nope.h5'}: no such file or directory"
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"not an hdf5 file at all")
    result = cli("export", str(corrupt), "-o", str(tmp_path / "o.tflite"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "is not a loadable Keras model" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "o.tflite").exists()


def test_unwritable_output_fails_in_one_line_and_leaves_no_partial_file(tmp_path):
    model, _ = models.build("lenet_bnn", "irnet", epochs=1)
    model.save(tmp_path / "model.keras")
    result = cli("export", str(tmp_path / "model.keras"), "-o", str(tmp_path / "missing_dir" / "o.tflite"), "--no-latency")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "does not exist" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "missing_dir").exists()
    # A target that cannot be replaced (a directory): the temporary file is removed again.
    (tmp_path / "taken.tflite").mkdir()
    result = cli("export", str(tmp_path / "model.keras"), "-o", str(tmp_path / "taken.tflite"), "--no-latency")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras", "taken.tflite"]
    assert not any((tmp_path / "taken.tflite").iterdir())
