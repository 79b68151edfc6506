"""ABC-Net layers (tfbin.layers): forward values and gradients against the paper's formulas in
numpy, the abc recipe, exact export into M·N LceBconv2d per layer, serialization."""
import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin import export, recipes
from tfbin.introspect import binarized_layers
from tfbin.layers import ABCConv2D, ABCDense, weight_bases, weight_shifts
from tfbin.testing import randomize_batch_norm


def np_sign(x):
    return np.where(x >= 0, 1.0, -1.0)


def np_bases(w, m):
    """The paper's B_i = sign(W − mean + u_i·std) per output channel, α by numpy lstsq."""
    flat = w.reshape(-1, w.shape[-1]).astype(np.float64)
    mean, std = flat.mean(0), flat.std(0)
    u = [0.0] if m == 1 else [-1 + i * 2 / (m - 1) for i in range(m)]
    bases = np.stack([np_sign(flat - mean + ui * std) for ui in u])  # [M, K, O]
    alpha = np.stack([np.linalg.lstsq(bases[:, :, o].T, flat[:, o], rcond=None)[0] for o in range(w.shape[-1])], 1)
    return bases.reshape((m,) + w.shape), alpha  # [M, ...], [M, O]


def np_conv(a, k, stride=1):
    """Valid NHWC convolution (cross-correlation), float64."""
    kh, kw = k.shape[:2]
    oh, ow = (a.shape[1] - kh) // stride + 1, (a.shape[2] - kw) // stride + 1
    out = np.zeros((a.shape[0], oh, ow, k.shape[-1]))
    for i in range(oh):
        for j in range(ow):
            patch = a[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            out[:, i, j, :] = np.einsum("bhwc,hwco->bo", patch, k)
    return out


def np_activations(x, v):
    return [np_sign(x + (vn - np.float32(0.5))) for vn in v]


def test_weight_shifts_are_the_papers():
    np.testing.assert_allclose(weight_shifts(1), [0.0])
    np.testing.assert_allclose(weight_shifts(2), [-1.0, 1.0])
    np.testing.assert_allclose(weight_shifts(5), [-1.0, -0.5, 0.0, 0.5, 1.0])


@pytest.mark.parametrize("m", [1, 2, 3, 5])
def test_weight_bases_and_alpha_match_numpy_lstsq(rng, m):
    w = rng.normal(0.1, 0.3, (3, 3, 4, 6)).astype("float32")
    bases, alpha = (t.numpy() for t in weight_bases(w, m))
    expected_bases, expected_alpha = np_bases(w, m)
    np.testing.assert_array_equal(bases, expected_bases)
    np.testing.assert_allclose(alpha, expected_alpha, rtol=1e-4, atol=1e-6)
    # least squares: the residual is orthogonal to every base, per channel
    flat = bases.reshape(m, -1, w.shape[-1])
    residual = w.reshape(-1, w.shape[-1]) - np.einsum("mo,mko->ko", alpha, flat)
    np.testing.assert_allclose(np.einsum("ko,mko->mo", residual, flat), 0.0, atol=1e-4)


def test_coinciding_bases_get_the_minimum_norm_alpha():
    # Two weights per channel: every shift gives the same signs, so the bases coincide and
    # lstsq's minimum-norm solution splits α evenly (as numpy.linalg.lstsq).
    w = np.array([[0.3, -1.0], [-0.5, 2.0]], "float32")
    bases, alpha = (t.numpy() for t in weight_bases(w, 3))
    np.testing.assert_allclose(alpha, np_bases(w, 3)[1], rtol=1e-5)
    assert np.isfinite(alpha).all()


@pytest.mark.parametrize("padding,pad_values,strides", [("valid", 0.0, 1), ("same", 1.0, 1), ("same", 0.0, 2)])
def test_conv_forward_is_the_sum_of_m_times_n_binary_convolutions(rng, padding, pad_values, strides):
    m, n = 2, 3
    layer = ABCConv2D(5, 3, weight_bases=m, activation_bases=n, padding=padding, pad_values=pad_values, strides=strides)
    x = rng.normal(0, 1, (2, 7, 7, 4)).astype("float32")
    layer.build(x.shape)
    layer.bias.assign(rng.normal(0, 1, 5))
    layer.shifts.assign([0.9, 0.4, -0.3])
    layer.scales.assign([0.7, -0.2, 1.3])
    got = layer(x).numpy()

    w = layer.kernel.numpy()
    bases, alpha = np_bases(w, m)
    beta, v = layer.scales.numpy(), layer.shifts.numpy()
    if padding == "same":  # TF's 'same' split for 7 inputs, kernel 3
        total = max((-(-7 // strides) - 1) * strides + 3 - 7, 0)
        pads = ((0, 0), (total // 2, total - total // 2), (total // 2, total - total // 2), (0, 0))
    expected = 0.0
    for an, bn in zip(np_activations(x, v), beta):
        if padding == "same":
            an = np.pad(an, pads, constant_values=pad_values)
        for bm, am in zip(bases, alpha):
            expected = expected + am * bn * np_conv(an, bm, strides)
    np.testing.assert_allclose(got, expected + layer.bias.numpy(), rtol=1e-5, atol=1e-4)


def test_dense_forward_matches_numpy(rng):
    layer = ABCDense(3, weight_bases=3, activation_bases=2, activation="relu")
    x = rng.normal(0, 1, (4, 6)).astype("float32")
    got = layer(x).numpy()
    bases, alpha = np_bases(layer.kernel.numpy(), 3)
    approx = sum(b * a for b, a in zip(layer.scales.numpy(), np_activations(x, layer.shifts.numpy())))
    kernel = np.einsum("mo,mko->ko", alpha, bases)
    np.testing.assert_allclose(got, np.maximum(approx @ kernel + layer.bias.numpy(), 0), rtol=1e-5, atol=1e-5)


def test_activation_bases_threshold_at_half_minus_v_and_initial_thresholds_spread():
    layer = ABCDense(2, weight_bases=1, activation_bases=3, threshold_spread=1.0)
    layer.build((None, 4))
    np.testing.assert_allclose(layer.shifts.numpy(), [1.5, 0.5, -0.5])  # thresholds −1, 0, 1
    np.testing.assert_allclose(layer.scales.numpy(), [1 / 3] * 3)
    x = tf.constant([[-1.0, -0.999, 0.0, 1.0]])
    a = [t.numpy()[0] for t in layer.binary_activations(x)]
    # H_v(x) = 2·1[clip(x + v, 0, 1) ≥ 0.5] − 1: +1 from x = 0.5 − v on
    np.testing.assert_array_equal(a[0], [1, 1, 1, 1])
    np.testing.assert_array_equal(a[1], [-1, -1, 1, 1])
    np.testing.assert_array_equal(a[2], [-1, -1, -1, 1])
    single = ABCDense(2, weight_bases=1, activation_bases=1)
    single.build((None, 4))
    np.testing.assert_allclose(single.shifts.numpy(), [0.5])  # N = 1: a plain sign


def test_gradients_reach_w_v_and_beta_with_the_analytic_ste_form(rng):
    m, n = 2, 2
    layer = ABCDense(3, weight_bases=m, activation_bases=n)
    x = tf.constant(rng.uniform(-1.5, 1.5, (5, 4)).astype("float32"))
    layer.build(x.shape)
    layer.shifts.assign([0.8, 0.1])
    layer.scales.assign([0.6, 1.4])
    upstream = rng.normal(0, 1, (5, 3)).astype("float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * upstream)
    gx, gw, gv, gb, gbias = tape.gradient(loss, [x, layer.kernel, layer.shifts, layer.scales, layer.bias])

    xv, v, beta = x.numpy().astype(np.float64), layer.shifts.numpy(), layer.scales.numpy()
    bases, alpha = np_bases(layer.kernel.numpy(), m)
    kernel = np.einsum("mo,mko->ko", alpha, bases)
    acts = np_activations(x.numpy(), v)
    approx = sum(b * a for b, a in zip(beta, acts))
    d_approx = upstream @ kernel.T
    windows = [((xv + vn >= 0) & (xv + vn <= 1)).astype(float) for vn in v]
    # ∂c/∂W = Σ_m α_m ∂c/∂B_m = (Σ_m α_m)·∂c/∂K per output channel (STE through the sign)
    np.testing.assert_allclose(gw, alpha.sum(0) * (approx.T @ upstream), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx, sum(b * w_ for b, w_ in zip(beta, windows)) * d_approx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gv, [np.sum(b * w_ * d_approx) for b, w_ in zip(beta, windows)], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gb, [np.sum(a * d_approx) for a in acts], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gbias, upstream.sum(0), rtol=1e-6)
    for g in (gx, gw, gv, gb):
        assert np.abs(g.numpy()).max() > 0
    assert 0 < np.mean(windows[0]) < 1 and 0 < np.mean(windows[1]) < 1  # both sides of the window tested


def test_one_weight_base_and_one_activation_base_is_a_plain_sign_scale_bnn(rng):
    # M = N = 1: sign(x) ⊛ α·sign(W − μ). For per-channel centered W this is XNOR-Net's
    # binary layer: larq's ste_sign inputs and magnitude_aware_sign (mean |W| · sign(W)) kernels.
    w = rng.normal(0, 1, (3, 3, 4, 6)).astype("float32")
    w -= w.mean(axis=(0, 1, 2), keepdims=True)
    x = rng.normal(0, 1, (2, 8, 8, 4)).astype("float32")
    abc = ABCConv2D(6, 3, weight_bases=1, activation_bases=1, padding="same", pad_values=1.0, use_bias=False)
    plain = lq.layers.QuantConv2D(6, 3, padding="same", pad_values=1.0, use_bias=False,
                                  input_quantizer="ste_sign", kernel_quantizer="magnitude_aware_sign")
    abc.build(x.shape)
    plain.build(x.shape)
    abc.kernel.assign(w)
    plain.kernel.assign(w)
    np.testing.assert_allclose(abc(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.margin(exact="layer types, configs and copied kernels; after one epoch the ABC shifts and scales differ from their initial values")
def test_abc_recipe_swaps_conv_and_dense_for_abc_layers_and_keeps_weights():
    recipe = recipes.get("abc", weight_bases=2, activation_bases=3)
    assert "abc" in recipes.available() and recipes.Recipe.from_json(recipe.to_json()) == recipe
    assert recipe.layer_type == "abc" and recipe.params["weight_bases"] == 2
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Conv2D(16, 3, padding="same", name="conv_same")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Conv2D(16, 3, name="conv_valid")(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Dense(32, name="hidden")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(4, name="classifier")(x))
    binarized, callbacks = tfbin.binarize(model, "abc", weight_bases=2, activation_bases=3)
    layers = {l.name: l for l in binarized.layers}
    assert type(layers["stem"]) is tf.keras.layers.Conv2D and type(layers["classifier"]) is tf.keras.layers.Dense
    assert isinstance(layers["conv_same"], ABCConv2D) and isinstance(layers["hidden"], ABCDense)
    assert layers["conv_same"].pad_values == 1.0 and layers["conv_valid"].pad_values == 0.0
    assert (layers["hidden"].weight_bases, layers["hidden"].activation_bases) == (2, 3)
    for name in ("conv_same", "conv_valid", "hidden"):
        np.testing.assert_array_equal(layers[name].kernel.numpy(), model.get_layer(name).kernel.numpy())
    assert [l.name for l in binarized_layers(binarized)] == ["conv_same", "conv_valid", "hidden"]
    assert callbacks == []
    binarized.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = layers["hidden"].shifts.numpy().copy(), layers["hidden"].scales.numpy().copy()
    data = np.random.default_rng(0).normal(0, 1, (16, 8, 8, 3)).astype("float32"), np.arange(16) % 4
    binarized.fit(*data, epochs=1, batch_size=8, verbose=0)
    assert not np.array_equal(before[0], layers["hidden"].shifts.numpy())
    assert not np.array_equal(before[1], layers["hidden"].scales.numpy())


def abc_model(seed=0):
    """Float stem, ABC convs with different (M, N), an ABC dense, float classifier."""
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((10, 10, 2))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = ABCConv2D(16, 3, weight_bases=3, activation_bases=2, padding="same", pad_values=1.0, use_bias=False, name="abc_a")(x)
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = ABCConv2D(16, 3, weight_bases=1, activation_bases=3, strides=2, name="abc_b")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Flatten()(x)
    x = ABCDense(12, weight_bases=2, activation_bases=2, name="abc_c")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(4, activation="softmax")(x))
    randomize_batch_norm(model, seed)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, (ABCConv2D, ABCDense)):
            layer.shifts.assign(layer.shifts.numpy() + rng.normal(0, 0.2, layer.shifts.shape))
            layer.scales.assign(rng.uniform(0.3, 1.2, layer.scales.shape))
            if layer.use_bias:
                layer.bias.assign(rng.normal(0, 0.5, layer.bias.shape))
    return model


def test_export_has_m_times_n_bconvs_per_abc_layer_and_parity():
    model = abc_model()
    x = np.random.default_rng(1).normal(0, 1, (300, 10, 10, 2)).astype("float32")
    report = export.convert(model, strict=True, sample_inputs=x, latency=False)
    counts = {r["layer"]: r["bconv_count"] for r in report.layers}
    assert counts == {"abc_a": 6, "abc_b": 3, "abc_c": 4}
    assert all(r["lce_op"] == "LceBconv2d" for r in report.layers) and report.all_binary
    assert export.op_histogram(report.flatbuffer)["LceBconv2d"] == 13  # counted in the flatbuffer itself
    assert export.op_histogram(report.flatbuffer)["CONV_2D"] == 1  # the float stem only
    assert report.parity["passed"] and report.parity["unexplained_mismatches"] == 0
    assert report.parity["tie_free_fraction"] > 0.5 and report.parity["argmax_agreement"] >= 0.99
    assert report.parity["max_abs_diff"] < 1e-4
    summary = tfbin.models.summary(model, print_fn=None)
    assert summary["binarized_layers"] == 3 and summary["lce_binary_layers"] == 3


def test_fmnist_small_with_the_abc_recipe_exports_all_binary(tmp_path):
    tf.keras.utils.set_random_seed(0)
    model, _ = tfbin.models.build("fmnist_small", "abc", weight_bases=2, activation_bases=2)
    randomize_batch_norm(model)
    x = np.random.default_rng(1).uniform(0, 1, (200, 28, 28, 1)).astype("float32")
    report = export.convert(model, tmp_path / "abc.tflite", strict=True, sample_inputs=x, latency=False)
    assert [r["bconv_count"] for r in report.layers] == [4] * 4
    assert report.op_histogram["LceBconv2d"] == 16 and report.parity["passed"]


@pytest.mark.parametrize("fmt", ["model.keras", "model.h5", "saved_model"])
def test_abc_model_round_trips(tmp_path, fmt):
    model = abc_model()
    x = np.random.default_rng(2).normal(0, 1, (8, 10, 10, 2)).astype("float32")
    expected = model.predict(x, verbose=0)
    path = str(tmp_path / fmt)
    model.save(path)
    loaded = tf.keras.models.load_model(path)  # no custom_objects: tfbin registered the layers
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-6)
    for name in ("abc_a", "abc_b", "abc_c"):
        a, b = model.get_layer(name), loaded.get_layer(name)
        assert type(b) is type(a) and b.get_config() == a.get_config()
        for wa, wb in zip(a.weights, b.weights):
            np.testing.assert_array_equal(wa.numpy(), wb.numpy())


def test_get_config_round_trips():
    layer = ABCConv2D(4, 3, weight_bases=4, activation_bases=2, threshold_spread=0.5, padding="same", pad_values=1.0)
    clone = ABCConv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert (clone.weight_bases, clone.activation_bases, clone.threshold_spread, clone.pad_values) == (4, 2, 0.5, 1.0)
    dense = ABCDense(3, weight_bases=2, activation_bases=5)
    assert ABCDense.from_config(dense.get_config()).get_config() == dense.get_config()
    with pytest.raises(ValueError, match=">= 1"):
        ABCDense(3, weight_bases=0)


def test_unknown_spatial_size_pads_like_the_static_one(rng):
    layer = ABCConv2D(3, 3, weight_bases=2, activation_bases=2, padding="same", pad_values=1.0, strides=2)
    x = rng.normal(0, 1, (2, 7, 9, 4)).astype("float32")
    static = layer(x).numpy()
    dynamic = tf.function(layer, input_signature=[tf.TensorSpec([None, None, None, 4])])(x).numpy()
    np.testing.assert_array_equal(dynamic, static)


@pytest.mark.margin(exact="saturation 1.0 of ABC layers, which are hard by construction; the contrastive loss's error message")
def test_monitor_and_contrastive_loss_with_abc_layers():
    model = abc_model()
    x = np.random.default_rng(0).normal(size=(32, 10, 10, 2)).astype("float32")
    monitor = tfbin.callbacks.BinarizationMonitor((x, np.arange(32) % 4), samples=16)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, np.arange(32) % 4, epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.saturation() == {"abc_a": 1.0, "abc_b": 1.0, "abc_c": 1.0, "all": 1.0}  # always hard
    with pytest.raises(ValueError, match="ABC-Net layers"):
        tfbin.losses.ContrastiveMI().attach(model)
