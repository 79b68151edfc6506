"""`tfbin.export.convert` and `tfbin export` with a Keras 3 model (issue #40 item 3): the model of
`tfbin.keras3`'s layers converts through `tfbin.keras3.convert` (Keras 3's `model.export`, then
LCE) and gets the Keras 2 path's report: op histogram, tie-aware parity, sizes, one row per
binarized layer, problems, the strict rule and the atomic writing."""
import json
import os
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfbin.keras3 as k3
from tfbin import cli, export
from tfbin.export import converter, flatbuffer as flatbuffer_lib, keras3_convert
from tfbin.keras3.quant_layers import export_form
from test_keras3 import small_float_cnn  # the same net, 32 wide here


def binary_net(conv_groups=1):
    """A float stem, a binarized conv and a binarized Dense (named `bconv`, `bdense`)."""
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(8, 3, padding="same"),
        keras.layers.BatchNormalization(),
        k3.QuantConv2D(16, 3, padding="same", pad_values=1.0, use_bias=False, groups=conv_groups, input_quantizer="ste_sign",
                       kernel_quantizer="ste_sign", kernel_constraint="weight_clip", name="bconv"),
        keras.layers.BatchNormalization(),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        k3.QuantDense(10, input_quantizer="ste_sign", kernel_quantizer="ste_sign", name="bdense"),
    ])


def randomize_batch_norms(model, rng):
    """Varied BatchNorm statistics: the signs see both signs, and most inputs are tie-free."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 2.0, c) * rng.choice([-1, 1], c))
            layer.beta.assign(rng.normal(0.0, 0.5, c))
            layer.moving_mean.assign(rng.normal(0.0, 1.0, c))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c))
    return model


def test_a_keras3_model_is_told_from_a_keras2_one():
    assert keras3_convert.is_keras3_model(binary_net())
    assert not keras3_convert.is_keras3_model(tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)]))
    assert not keras3_convert.is_keras3_model(object())


def test_quick_export_writes_the_tflite_and_the_keras2_report(rng, tmp_path):
    model = randomize_batch_norms(binary_net(), rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a binary net with parity: no problem to warn about
        report = export.convert(model, tmp_path / "m.tflite", report_path=tmp_path / "m.json")
    assert (tmp_path / "m.tflite").read_bytes() == report.flatbuffer and report.size_bytes == len(report.flatbuffer)
    # Every binarized conv and Dense is an LCE binary op, identified by its weights.
    assert report.op_histogram["LceBconv2d"] == len(k3.binarized_layers(model)) == 2, report.op_histogram
    assert "FULLY_CONNECTED" not in report.op_histogram and report.op_histogram["CONV_2D"] == 1  # the float stem
    assert [(r["layer"], r["lce_op"]) for r in report.layers] == [("bconv", "LceBconv2d"), ("bdense", "LceBconv2d")]
    assert report.all_binary and report.problems == []
    quick = converter.DEFAULT_SAMPLES["quick"]
    assert report.verify == "quick" and report.parity["samples"] == quick and report.parity["lce_kernel"] == "indirect_bgemm"
    assert report.parity["passed"] and report.parity["tie_free_samples"] > 0 and report.parity["unexplained_mismatches"] == 0
    assert report.float_size_bytes is None and report.latency is None  # quick, as on Keras 2
    assert report.one_bit_limit_bytes == k3.one_bit_limit_bytes(model) < report.size_bytes
    assert report.deployment["input_shape"] == [1, 8, 8, 3]
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["all_binary"] and saved["op_histogram"]["LceBconv2d"] == 2 and saved["size_vs_float"] is None
    assert "**2 of 2 binarized layers run as LCE binary ops.**" in (tmp_path / "m.md").read_text()


def test_full_export_converts_the_float_model_and_measures_latency(rng, tmp_path):
    model = randomize_batch_norms(binary_net(), rng)
    x = rng.uniform(size=(40, 8, 8, 3)).astype("float32")
    report = export.convert(model, verify="full", sample_inputs=x, latency_repeats=2, report_path=tmp_path / "f.json")
    assert report.verify == "full" and report.parity["samples"] == 40 and report.parity["lce_kernel"] == "default"
    assert report.parity["passed"] and report.all_binary
    assert report.float_size_bytes > report.size_bytes > report.one_bit_limit_bytes
    assert report.latency["lce_default_ms"] > 0 and report.latency["float_tflite_ms"] > 0
    saved = json.loads((tmp_path / "f.json").read_text())
    assert saved["size_vs_float"] == report.size_bytes / report.float_size_bytes and saved["verify"] == "full"


def test_a_layer_lce_does_not_fuse_is_named_and_strict_writes_no_tflite(rng, tmp_path):
    # A grouped binary conv with 4 input channels per group: LCE runs it as float ops.
    model = randomize_batch_norms(binary_net(conv_groups=2), rng)
    with pytest.raises(export.ExportError, match=r"'bconv' stayed float.*a grouped binary conv needs a multiple of 32"):
        export.convert(model, tmp_path / "strict.tflite", strict=True, report_path=tmp_path / "strict.json")
    assert not (tmp_path / "strict.tflite").exists()  # strict: no file unless binary
    assert json.loads((tmp_path / "strict.json").read_text())["all_binary"] is False  # the report says why
    with pytest.warns(UserWarning, match="'bconv' stayed float") as caught:
        report = export.convert(model, tmp_path / "m.tflite")
    assert caught[0].filename == __file__  # the warning names the caller's line, not the exporter's
    assert [r["lce_op"] for r in report.layers] == [None, "LceBconv2d"] and not report.all_binary
    assert report.op_histogram["LceBconv2d"] == 1 and (tmp_path / "m.tflite").exists()


def test_a_layer_whose_kernel_is_in_no_binary_conv_has_no_lce_op(rng):
    model = randomize_batch_norms(binary_net(), rng)
    flatbuffer = k3.convert(model)
    assert [r["lce_op"] for r in keras3_convert.layer_rows(model, flatbuffer)] == ["LceBconv2d", "LceBconv2d"]
    # Its bconv writes float output (only a bitpacked-output bconv may hold whole channels flipped):
    # a fully negated kernel is another kernel.
    assert not flatbuffer_lib.main_bconvs(flatbuffer)[1][2]
    dense = model.get_layer("bdense")
    dense.kernel.assign(-dense.kernel)  # no longer the kernel that was converted
    rows = keras3_convert.layer_rows(model, flatbuffer)
    assert [r["lce_op"] for r in rows] == ["LceBconv2d", None]
    assert "1 LceBconv2d of the file match no binarized layer's kernel" in rows[1]["reason"]


def test_a_bconv_writing_bitpacked_output_maps_with_its_negative_gamma_channels_flipped(rng):
    # conv_1 → BatchNorm → sign of conv_2: LCE folds BN → sign into conv_1's output thresholds and
    # flips conv_1's filter in each channel whose γ < 0, so its filter no longer equals the kernel.
    def binary(name):
        return k3.QuantConv2D(32, 3, padding="same", pad_values=1.0, use_bias=False, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip", name=name)
    keras.utils.set_random_seed(0)
    model = randomize_batch_norms(keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(8, 3, padding="same", use_bias=False),
        keras.layers.BatchNormalization(),
        binary("conv_1"),
        keras.layers.BatchNormalization(name="bn_1"),
        binary("conv_2"),
        keras.layers.BatchNormalization(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3),
    ]), rng)
    gamma = model.get_layer("bn_1").gamma
    gamma.assign(np.abs(gamma.numpy()) * np.where(np.arange(32) % 3 == 0, -1.0, 1.0))  # some multipliers negative
    report = export.convert(model, strict=True, num_samples=16, latency=False)
    assert [(r["layer"], r["lce_op"], r["bconv_count"], r["reason"]) for r in report.layers] == [
        ("conv_1", "LceBconv2d", 1, None), ("conv_2", "LceBconv2d", 1, None)]
    assert report.op_histogram["LceBconv2d"] == 2 and report.all_binary and report.parity["passed"]
    # The premise: conv_1's bconv writes bitpacked output, its negative-γ channels flipped.
    (_, stored, bitpacked), (_, _, bitpacked_2) = flatbuffer_lib.main_bconvs(report.flatbuffer)
    with k3.hard(model):
        negative = keras3_convert._kernel_signs(model.get_layer("conv_1"))
    assert bitpacked and not bitpacked_2
    assert not flatbuffer_lib.holds_signs(stored, negative) and flatbuffer_lib.holds_signs(stored, negative, True)


def test_a_bireal_net_exports_its_magnitude_aware_kernels_as_binary_convs(rng, tmp_path):
    # bireal's MagnitudeAwareSign kernels are mean|W_o|·sign(W_o): LCE folds the per-output-channel
    # scale into the binary conv's output multiplier (or its output thresholds, where the bconv
    # writes bitpacked output: c2 → bn2 → max-pool → c3's sign), so the net exports with the ops
    # of approx_sign's twin net (the same graph with SteSign kernels), every binarized layer an
    # LceBconv2d matched by its kernel's signs, with parity.
    keras.utils.set_random_seed(0)
    float_model = small_float_cnn(width=32, classes=10, head_activation=None)
    for name in ("c2", "c3", "h"):  # unequal channel scales: a real test of the fold
        kernel = float_model.get_layer(name).kernel
        kernel.assign(kernel.numpy() * rng.uniform(0.1, 1.0, kernel.shape[-1]).astype("float32"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # binarize's notes on removed ReLUs and the inserted BatchNorm
        bireal = k3.binarize(float_model, "bireal").model
        twin = k3.binarize(float_model, "approx_sign").model
    for model in (bireal, twin):
        randomize_batch_norms(model, np.random.default_rng(3))
    binarized = k3.binarized_layers(bireal)
    assert [(l.name, type(l.kernel_quantizer).__name__) for l in binarized] == [
        ("c2", "MagnitudeAwareSign"), ("c3", "MagnitudeAwareSign"), ("h", "MagnitudeAwareSign")]
    x = rng.uniform(size=(64, 12, 12, 3)).astype("float32")
    assert not np.allclose(bireal(x, training=False), twin(x, training=False), rtol=1e-2)  # the premise: the scales matter
    report = export.convert(bireal, tmp_path / "bireal.tflite", strict=True, sample_inputs=x, latency=False)
    assert [(r["layer"], r["lce_op"], r["bconv_count"]) for r in report.layers] == [
        ("c2", "LceBconv2d", 1), ("c3", "LceBconv2d", 1), ("h", "LceBconv2d", 1)]
    assert report.op_histogram["LceBconv2d"] == len(binarized) == 3 and report.all_binary and report.problems == []
    assert report.op_histogram["CONV_2D"] == 1 and report.op_histogram["FULLY_CONNECTED"] == 1, report.op_histogram  # stem, head
    assert report.op_histogram == k3.op_histogram(k3.convert(twin))  # no op for the scales
    assert report.parity["passed"] and report.parity["unexplained_mismatches"] == 0, report.parity
    assert report.parity["tie_free_samples"] > 0 and report.parity["tie_free_agreement"] == 1.0, report.parity
    # c2's bconv writes bitpacked output (its BatchNorm → max-pool → sign became thresholds).
    assert [bitpacked for _, _, bitpacked in flatbuffer_lib.main_bconvs(report.flatbuffer)] == [True, False, False]


def test_packed_signs_is_lces_bitpacking():
    negative = np.zeros((2, 1, 1, 40), bool)
    negative[0, 0, 0, [0, 31]] = True
    negative[1, 0, 0, 33] = True
    packed = keras3_convert.packed_signs(negative)
    assert packed.shape == (2, 1, 1, 2) and packed.dtype == np.int32
    assert packed[0, 0, 0].tolist() == [1 - 2**31, 0] and packed[1, 0, 0].tolist() == [0, 2]


def test_a_keras2_export_loads_no_keras3():
    code = """
        import sys
        import tfbin
        import tensorflow as tf
        from tfbin.export import converter, flatbuffer as flatbuffer_lib, keras3_convert
        assert not keras3_convert.is_keras3_model(tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)]))
        print("tfbin.keras3" in sys.modules)
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr[-3000:]


def test_the_command_exports_a_keras3_file(rng, tmp_path):
    model = randomize_batch_norms(binary_net(), rng)
    model.save(tmp_path / "k3.keras")
    tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)]).save(tmp_path / "k2.keras")
    assert cli._keras3_file(str(tmp_path / "k3.keras")) and not cli._keras3_file(str(tmp_path / "k2.keras"))
    out = tmp_path / "k3.tflite"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "tfbin.cli", "export", str(tmp_path / "k3.keras"), "-o", str(out), "--strict"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2/2 binarized layers as LceBconv2d" in result.stdout and out.exists()
    saved = json.loads((tmp_path / "k3.report.json").read_text())
    assert saved["all_binary"] and saved["parity"]["passed"] and [r["layer"] for r in saved["layers"]] == ["bconv", "bdense"]



@pytest.mark.margin(exact="op histogram, the layer rows of the report, unexplained mismatches; each layer's lce form against its Keras form to float32 summation rounding (1e-5 of the largest output: integer sums of up to 288 terms)")
@pytest.mark.parametrize("recipe, overrides", [("dab", {}), ("abr", {"symmetric": False, "epochs": 1})])
def test_two_level_kernels_and_zero_one_inputs_export_as_binary_convs(rng, tmp_path, recipe, overrides):
    # DAB's kernels (α_o or −β_o) and ABR's {0,1} units are not LCE's ±1 signs: the "lce" form
    # rewrites them as the Keras 2 exporter does (kernel m·S + d with all-ones channels for d;
    # inputs (sign(x − θ) + 1)/2), so every binarized layer is still one LceBconv2d.
    keras.utils.set_random_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # binarize's notes on removed ReLUs and the inserted BatchNorm
        model = k3.binarize(small_float_cnn(width=32, classes=10, head_activation=None), recipe, **overrides).model
    randomize_batch_norms(model, np.random.default_rng(3))
    x = rng.uniform(size=(64, 12, 12, 3)).astype("float32")
    if recipe == "dab":
        for name in ("c2", "c3", "h"):  # uneven kernels: α_o ≠ β_o, so d ≠ 0 in every channel
            kernel = model.get_layer(name).kernel
            kernel.assign(kernel.numpy() + rng.uniform(0.05, 0.3, kernel.shape[-1]).astype("float32"))
        with k3.hard(model):  # each layer alone on the same inputs: the same signs, only the sums' rounding differs
            for layer in k3.binarized_layers(model):
                inputs = rng.normal(size=(8, *layer.input.shape[1:])).astype("float32")
                keras_form = np.asarray(layer(inputs))
                with export_form([layer], "lce"):
                    lce_form = np.asarray(layer(inputs))
                np.testing.assert_allclose(lce_form, keras_form, rtol=0, atol=1e-5 * np.abs(keras_form).max())
    report = export.convert(model, tmp_path / f"{recipe}.tflite", strict=True, sample_inputs=x, latency=False)
    assert report.op_histogram["LceBconv2d"] == len(k3.binarized_layers(model)) == 3 and report.all_binary, report.op_histogram
    assert report.op_histogram["CONV_2D"] == 1 and report.op_histogram["FULLY_CONNECTED"] == 1, report.op_histogram  # stem, head
    assert [r["lce_op"] for r in report.layers] == ["LceBconv2d"] * 3
    assert report.parity["passed"] and report.parity["unexplained_mismatches"] == 0, report.parity
