"""BLRNet (tfbin.blrnet, Peters & Welling arXiv:1809.03368): the propagated moments against
Monte-Carlo sampling of the binary weights, the reparameterized sample, the relaxed sign and its
limit, stochastic batch norm, gradients to the logits, the hard form, the recipe, export with
every binarized layer an LceBconv2d, serialization and the sampled-net ensemble.

Statistical tolerances: a Monte-Carlo estimate is compared through its z-score (difference over
its standard error, estimated from the same samples); every |z| must stay below Z_MAX = 5. With a
few hundred compared units the largest |z| of a correct implementation is about 3-3.5; a
formula wrong by a few percent gives |z| in the tens at these sample sizes. Draws are seeded.
"""
import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import norm

import tfbin
from tfbin import export, recipes
from tfbin.blrnet import (
    LOGIT_SCALE,
    BLRConv2D,
    BLRDense,
    LogitUniform,
    RelaxedSign,
    WeightMode,
    blr_layers,
    ensemble_predict,
    stochastic_batch_norm,
)
from tfbin.introspect import binarized_layers
from tfbin.testing import randomize_batch_norm

Z_MAX = 5.0


def z_mean(samples, expected):
    """z-scores of the sample mean (axis 0) against `expected`."""
    se = samples.std(0, ddof=1) / np.sqrt(len(samples))
    return (samples.mean(0) - expected) / se


def z_var(samples, expected):
    """z-scores of the sample variance (axis 0) against `expected`; SE² = (m4 − s⁴)/n."""
    centered = samples - samples.mean(0)
    s2 = (centered**2).mean(0)
    m4 = (centered**4).mean(0)
    return (s2 - expected) / np.sqrt((m4 - s2**2) / len(samples))


def draw_weights(theta, n, rng):
    """n kernels with entries ±1, P(+1) = σ(2θ)."""
    p = 1.0 / (1.0 + np.exp(-2.0 * theta.astype(np.float64)))
    return np.where(rng.random((n,) + theta.shape) < p, 1.0, -1.0)


def patches(x, kh, kw):
    """Valid 3x3-style patches of one NHWC image: [positions, kh·kw·C] (HWC order as Keras kernels)."""
    _, h, w, c = x.shape
    return np.stack([x[0, i : i + kh, j : j + kw, :].reshape(-1) for i in range(h - kh + 1) for j in range(w - kw + 1)])


@pytest.mark.parametrize("inputs", ["binary", "real"])
def test_dense_moments_match_monte_carlo_of_the_binary_weights(rng, inputs):
    layer = BLRDense(24, binary_inputs=inputs == "binary", use_bias=False)
    layer.build((None, 40))
    theta = rng.normal(0, 1.2, (40, 24)).astype("float32")
    layer.assign_logits(theta)
    h = np.where(rng.random((3, 40)) < 0.5, -1.0, 1.0) if inputs == "binary" else rng.normal(0, 1.5, (3, 40))
    mean, var = (t.numpy() for t in layer.moments(tf.constant(h, tf.float32)))
    # exact formulas: μ = Σ tanh(θ)·h, σ² = Σ (1 − tanh²θ)·h² (= Σ (1 − tanh²θ) for ±1 inputs)
    np.testing.assert_allclose(mean, h @ np.tanh(theta), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(var, (h**2) @ (1 - np.tanh(theta) ** 2), rtol=1e-5, atol=1e-5)
    if inputs == "binary":
        np.testing.assert_allclose(var, np.broadcast_to((1 - np.tanh(theta) ** 2).sum(0), var.shape), rtol=1e-5)
    w = draw_weights(theta, 20000, rng)  # [n, 40, 24]
    sampled = np.einsum("bi,nio->nbo", h, w)  # [n, 3, 24]
    assert np.abs(z_mean(sampled, mean)).max() < Z_MAX
    assert np.abs(z_var(sampled, var)).max() < Z_MAX


def test_conv_moments_match_monte_carlo_with_binary_padding(rng):
    layer = BLRConv2D(4, 3, padding="same", pad_values=1.0, use_bias=False)
    x = rng.normal(0, 1, (1, 5, 5, 3)).astype("float32")
    layer.build(x.shape)
    theta = rng.normal(0, 1.0, (3, 3, 3, 4)).astype("float32")
    layer.assign_logits(theta)
    h = np.where(x >= 0, 1.0, -1.0)  # a binary input
    mean, var = (t.numpy()[0] for t in layer.moments(tf.constant(h, tf.float32)))  # [5, 5, 4]
    padded = np.pad(h, [(0, 0), (1, 1), (1, 1), (0, 0)], constant_values=1.0)  # pad_values=1: +1 borders
    cols = patches(padded, 3, 3)  # [25, 27]
    w = draw_weights(theta.reshape(27, 4), 8000, rng)
    sampled = np.einsum("pk,nko->npo", cols, w).reshape(8000, 5, 5, 4)
    assert np.abs(z_mean(sampled, mean)).max() < Z_MAX
    assert np.abs(z_var(sampled, var)).max() < Z_MAX
    # binary inputs, padded with +1: every position has the same variance Σ(1 − tanh²θ)
    np.testing.assert_allclose(var, np.broadcast_to((1 - np.tanh(theta) ** 2).sum((0, 1, 2)), var.shape), rtol=1e-5)


def test_training_output_is_the_reparameterized_gaussian_and_its_sign_is_bernoulli_phi(rng):
    layer = BLRDense(16, use_bias=False)
    layer.build((None, 64))
    layer.assign_logits(rng.normal(0, 0.8, (64, 16)).astype("float32"))
    layer(tf.zeros((1, 64)))  # builds the input quantizer (and its temperature)
    tfbin.sharpness.set(layer, "tau", 1e-6)  # the input quantizer's relaxation at its limit: sign
    x = rng.normal(0, 1, (1, 64)).astype("float32")
    h = np.where(x >= 0, 1.0, -1.0)
    mean, var = (t.numpy()[0] for t in layer.moments(tf.constant(h, tf.float32)))
    samples = layer(np.repeat(x, 20000, 0), training=True).numpy()
    assert np.abs(z_mean(samples, mean)).max() < Z_MAX
    assert np.abs(z_var(samples, var)).max() < Z_MAX
    # sign(a) of a ~ N(μ, σ²) is +1 with probability Φ(μ/σ): the paper's binary activation (Eq. 6)
    p = norm.cdf(mean / np.sqrt(var))
    frequency = (samples >= 0).mean(0)
    assert np.abs((frequency - p) / np.sqrt(p * (1 - p) / len(samples) + 1e-12)).max() < Z_MAX
    np.testing.assert_allclose(layer(x).numpy()[0], mean, rtol=1e-5, atol=1e-5)  # not training: the mean


def test_keras_batch_norm_on_the_sample_is_the_papers_stochastic_batch_norm(rng):
    # BN's batch statistics of reparameterized samples estimate the paper's E[m], E[v] (Eqs. 9-10);
    # the normalized sample is then N(μ̂, σ̂²) of Eq. 11.
    m_count, channels = 20000, 3
    mu = rng.normal(0.5, 2.0, (m_count, channels))
    sigma = rng.uniform(0.2, 3.0, (m_count, channels))
    gamma, beta = np.array([0.7, 1.3, 2.0]), np.array([0.1, -0.4, 0.0])
    mean_bn, var_bn, mu_hat, var_hat = (t.numpy() for t in stochastic_batch_norm(mu, sigma**2, [0], gamma, beta, epsilon=1e-3))
    np.testing.assert_allclose(mean_bn, mu.mean(0), rtol=1e-5)
    np.testing.assert_allclose(var_bn, (np.sum(sigma**2, 0) + np.sum((mu - mu.mean(0)) ** 2, 0)) / (m_count - 1), rtol=1e-5)
    bn = tf.keras.layers.BatchNormalization(epsilon=1e-3)
    bn.build((None, channels))
    bn.gamma.assign(gamma)
    bn.beta.assign(beta)
    sample = (mu + sigma * rng.normal(size=mu.shape)).astype("float32")
    out = bn(sample, training=True).numpy()
    standardized = (out - mu_hat) / np.sqrt(var_hat)  # N(0, 1) if BN on samples = stochastic BN
    assert np.abs(standardized.mean(0)).max() < Z_MAX / np.sqrt(m_count)
    assert np.abs(standardized.var(0) - 1.0).max() < Z_MAX * np.sqrt(2.0 / m_count)
    with pytest.raises(ValueError, match="at least 2"):
        stochastic_batch_norm(np.zeros((1, 3)), np.ones((1, 3)), [0])


def test_relaxed_sign_tends_to_sign_as_the_temperature_falls(rng):
    x = tf.constant(rng.normal(0, 1, 4000).astype("float32"))
    sign = np.where(x.numpy() >= 0, 1.0, -1.0)
    q = RelaxedSign()
    q.build(x.shape)
    away = np.abs(x.numpy()) > 1e-2
    gaps = []
    for tau in (1.0, 0.1, 0.01, 1e-3, 1e-5):
        q.sharpness("tau").assign(tau)
        soft = q(x).numpy()
        np.testing.assert_allclose(soft, np.tanh(x.numpy() / tau), rtol=1e-5, atol=1e-6)
        gaps.append(np.abs(soft - sign)[away].max())
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] == 0.0  # monotone, and exactly sign away from 0
    q.hard_mode = True
    np.testing.assert_array_equal(q(x).numpy(), sign)
    np.testing.assert_array_equal(q(tf.constant([0.0])).numpy(), [1.0])  # sign(0) = +1 (larq, LCE)


def test_straight_through_sample_is_sign_forward_and_the_relaxation_backward(rng):
    q = RelaxedSign(straight_through=True)
    x = tf.constant(rng.normal(0, 1, 200).astype("float32"))
    q.build(x.shape)
    q.sharpness("tau").assign(0.5)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = q(x)
    np.testing.assert_array_equal(y.numpy(), np.where(x.numpy() >= 0, 1.0, -1.0))
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), (1 - np.tanh(x.numpy() / 0.5) ** 2) / 0.5, rtol=1e-5, atol=1e-5)


def test_gradients_reach_the_logits(rng):
    layer = BLRDense(5, use_bias=False)
    layer.build((None, 7))
    theta = rng.normal(0, 1, (7, 5)).astype("float32")
    layer.assign_logits(theta)
    layer(tf.zeros((1, 7)))
    tfbin.sharpness.set(layer, "tau", 0.5)
    x = tf.constant(rng.normal(0, 1, (6, 7)).astype("float32"))
    upstream = rng.normal(0, 1, (6, 5)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) * upstream)  # the mean path: μ = tanh(x/τ) · tanh(θ)
    grad = tape.gradient(loss, layer.logit_variable).numpy()
    h = np.tanh(x.numpy() / 0.5)
    # the variable is θ/k: its gradient is k times the gradient in θ
    np.testing.assert_allclose(grad, layer.logit_scale * (h.T @ upstream) * (1 - np.tanh(theta) ** 2), rtol=1e-4, atol=1e-5)
    with tf.GradientTape() as tape:  # the sampled path: through μ and σ
        loss = tf.reduce_sum(tf.square(layer(x, training=True)))
    grad = tape.gradient(loss, layer.logit_variable).numpy()
    assert np.isfinite(grad).all() and np.abs(grad).min() > 0


@pytest.mark.parametrize("cls", ["conv", "dense"])
def test_hard_form_is_the_plain_larq_layer_with_the_most_probable_weights(rng, cls):
    if cls == "conv":
        blr = BLRConv2D(6, 3, padding="same", pad_values=1.0, strides=2)
        plain = lq.layers.QuantConv2D(6, 3, padding="same", pad_values=1.0, strides=2, input_quantizer="ste_sign", kernel_quantizer="ste_sign")
        x = rng.normal(0, 1, (2, 9, 9, 4)).astype("float32")
    else:
        blr, plain = BLRDense(6), lq.layers.QuantDense(6, input_quantizer="ste_sign", kernel_quantizer="ste_sign")
        x = rng.normal(0, 1, (3, 10)).astype("float32")
    model = tf.keras.Sequential([tf.keras.Input(x.shape[1:]), blr])
    plain.build(x.shape)
    blr.bias.assign(rng.normal(0, 1, blr.bias.shape))
    plain.kernel.assign(np.sign(blr.logits.numpy()))
    plain.bias.assign(blr.bias.numpy())
    assert binarized_layers(model) == [blr]
    with tfbin.hard(model):
        np.testing.assert_array_equal(model(x).numpy(), plain(x).numpy())
        np.testing.assert_array_equal(model(x, training=True).numpy(), plain(x).numpy())  # no noise when deployed
    assert not np.array_equal(model(x).numpy(), plain(x).numpy())  # the soft form differs


def test_logit_uniform_and_the_float_transfer(rng):
    theta = LogitUniform(0.9, seed=3)((4000,)).numpy()
    means = np.tanh(theta)
    assert np.abs(means).max() <= 0.9 + 1e-6 and abs(means.mean()) < 0.05 and abs(np.abs(means).mean() - 0.45) < 0.02
    layer = BLRDense(8)
    layer.build((None, 12))
    w = rng.normal(0, 0.05, (12, 8)).astype("float32")
    layer.logit_variable.assign(w)  # a float kernel as binarize copies it
    layer.from_float_kernel()
    np.testing.assert_allclose(np.tanh(layer.logits.numpy()), np.clip(w / w.std(), -0.9, 0.9), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        LogitUniform(1.0)
    np.testing.assert_allclose(LogitUniform(0.9, seed=3, logit_scale=10.0)((4000,)).numpy(), theta / 10.0, rtol=1e-6)
    assert layer.logit_scale == LOGIT_SCALE  # the default k: the variable holds θ/k
    np.testing.assert_allclose(layer.logit_variable.numpy() * LOGIT_SCALE, layer.logits.numpy(), rtol=1e-6)


def test_logit_scale_is_a_step_size_for_the_logits(rng):
    """One Adam step moves θ by ≈ k·lr: the same layer at k = 1 and k = 10 from the same θ."""
    theta = rng.normal(0, 1, (6, 4)).astype("float32")
    x = tf.constant(rng.normal(0, 1, (8, 6)).astype("float32"))
    steps = []
    for k in (1.0, 10.0):
        layer = BLRDense(4, use_bias=False, logit_scale=k)
        layer.build((None, 6))
        layer.assign_logits(theta)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x))
        tf.keras.optimizers.Adam(1e-3).apply_gradients([(tape.gradient(loss, layer.logit_variable), layer.logit_variable)])
        steps.append(np.abs(layer.logits.numpy() - theta))
    # Adam's first step is lr·sign(g) per entry (up to ε): 1e-3 in θ at k = 1, 1e-2 at k = 10
    np.testing.assert_allclose(steps[0], 1e-3, rtol=1e-2)
    np.testing.assert_allclose(steps[1], 1e-2, rtol=1e-2)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="must be a RelaxedSign"):
        BLRDense(3, input_quantizer="ste_sign")
    with pytest.raises(ValueError, match="must be a WeightMode"):
        BLRConv2D(3, 3, kernel_quantizer="ste_sign")
    with pytest.raises(ValueError, match="contradicts the kernel quantizer"):
        BLRConv2D(3, 3, logit_scale=10.0, kernel_quantizer=WeightMode(1.0))
    with pytest.raises(ValueError, match="logit_scale must be > 0"):
        BLRDense(3, logit_scale=0.0)


def test_a_config_saved_before_logit_scale_reads_its_kernel_as_the_logits():
    config = BLRDense(3).get_config()
    assert config["logit_scale"] == LOGIT_SCALE
    del config["logit_scale"], config["kernel_quantizer"]["config"]["logit_scale"]
    old = BLRDense.from_config(config)
    assert old.logit_scale == 1.0 and old.kernel_quantizer.logit_scale == 1.0
    with pytest.raises(ValueError, match="no input_quantizer"):
        BLRDense(3, binary_inputs=False, input_quantizer=RelaxedSign())
    with pytest.raises(ValueError, match="contradict"):
        BLRDense(3, straight_through=True, input_quantizer=RelaxedSign())
    with pytest.raises(ValueError, match="groups=1"):
        BLRConv2D(4, 3, groups=2)
    with pytest.raises(ValueError, match="flatten first"):
        BLRDense(3)(tf.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        ensemble_predict(tf.keras.Sequential([tf.keras.Input((3,)), BLRDense(2)]), np.zeros((1, 3)), samples=0)
    with pytest.raises(ValueError, match="no BLRNet layers"):
        ensemble_predict(tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)]), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="must be > 0"):
        recipes.get("blrnet", epochs=2, tau_end=0.0)


def test_get_config_round_trips():
    conv = BLRConv2D(4, 3, padding="same", pad_values=1.0, straight_through=True, temperature="tau_a")
    clone = BLRConv2D.from_config(conv.get_config())
    assert clone.get_config() == conv.get_config()
    assert clone.input_quantizer.straight_through and clone.input_quantizer.sharpness_names == {"tau": "tau_a"}
    real = BLRDense(3, binary_inputs=False)
    assert real.input_quantizer is None and BLRDense.from_config(real.get_config()).get_config() == real.get_config()
    q = RelaxedSign("t2", straight_through=True)
    assert RelaxedSign.from_config(q.get_config()).get_config() == q.get_config()
    assert LogitUniform.from_config(LogitUniform(0.5, seed=1).get_config()).get_config() == {"limit": 0.5, "seed": 1, "logit_scale": 1.0}
    assert isinstance(tf.keras.layers.deserialize(tf.keras.layers.serialize(conv)), BLRConv2D)


def test_real_input_layer_is_not_a_binary_layer_and_deploys_sign_weights(rng):
    # The paper's first layer: real inputs, binary weights. LCE runs it as a float conv (real inputs).
    layer = BLRDense(4, binary_inputs=False, use_bias=False)
    model = tf.keras.Sequential([tf.keras.Input((6,)), layer])
    assert binarized_layers(model) == []
    x = rng.normal(0, 1, (2, 6)).astype("float32")
    with tfbin.hard(model):
        np.testing.assert_allclose(model(x).numpy(), x @ np.sign(layer.logits.numpy()), rtol=1e-5, atol=1e-5)


def _blrnet_float_model():
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Conv2D(16, 3, padding="same", name="conv")(x)
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(32, name="hidden")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(4, name="classifier")(x))


def _blrnet_run(seed):
    """A float model binarized with `blrnet` (tau 1 -> 0.2), trained 4 epochs on a learnable
    4-class problem (seed: data, initial weights): (float model, model, history, logits before)."""
    tf.keras.utils.set_random_seed(seed)
    float_model = _blrnet_float_model()
    model, callbacks = tfbin.binarize(float_model, "blrnet", epochs=4, tau_end=0.2)
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(256, 8, 8, 3)).astype("float32")
    ys = (xs[:, :4].mean((1, 2, 3)) > 0).astype("int64") + 2 * (xs[..., 0].mean((1, 2)) > 0)
    model.compile(tf.keras.optimizers.Adam(1e-2), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = {name: model.get_layer(name).logits.numpy().copy() for name in ("conv", "hidden")}
    history = model.fit(xs, ys, epochs=4, batch_size=32, verbose=0, callbacks=callbacks)
    return float_model, model, history, before, (xs, ys)


def blrnet_loss_ratio(seed=0):
    """Last over first epoch's training loss of `_blrnet_run`."""
    loss = _blrnet_run(seed)[2].history["loss"]
    return {"blrnet_loss_ratio": loss[-1] / loss[0]}


@pytest.mark.margin("blrnet_loss_ratio")
def test_blrnet_recipe_builds_trains_and_anneals_the_temperature():
    recipe = recipes.get("blrnet", epochs=4, tau_end=0.2)
    assert recipes.Recipe.from_json(recipe.to_json()) == recipe
    assert recipe.schedules["tau"](0) == pytest.approx(1.0) and recipe.schedules["tau"](3) == pytest.approx(0.2)
    assert recipe.schedules["tau"](1.5) < recipe.schedules["tau"](1.0)  # falls: a temperature
    float_model, model, history, before, (xs, ys) = _blrnet_run(seed=0)
    assert [type(l) for l in blr_layers(model)] == [BLRConv2D, BLRDense]
    assert model.get_layer("conv").pad_values == 1.0 and isinstance(model.get_layer("conv").kernel_quantizer, WeightMode)
    for name in ("conv", "hidden"):  # the PBNet-S transfer of the float kernel
        w = float_model.get_layer(name).kernel.numpy()
        np.testing.assert_allclose(np.tanh(before[name]), np.clip(w / w.std(), -0.9, 0.9), rtol=1e-4, atol=1e-5)
    loss = history.history["loss"]
    # Bound 0.8; the measured spread (seeds 0-2 x oneDNN 0/1) is in bench/results/test_margins.json.
    assert loss[-1] < 0.8 * loss[0], loss
    assert history.history["tau"][-1] == pytest.approx(recipe.schedules["tau"](3 + 7 / 8), rel=1e-5)
    assert not np.array_equal(before["hidden"], model.get_layer("hidden").logits.numpy())
    tfbin.recalibrate(model, xs, steps=2)
    with tfbin.hard(model):
        hard_loss = model.evaluate(xs, ys, verbose=0)
    assert np.isfinite(hard_loss)


@pytest.mark.slow  # ~12 s here, mostly the two conversions; tests/test_export.py's per-recipe test covers blrnet in quick runs
def test_fmnist_small_with_the_blrnet_recipe_exports_every_binary_layer_as_bconv(tmp_path):
    tf.keras.utils.set_random_seed(0)
    model, _ = tfbin.models.build("fmnist_small", "blrnet", epochs=1)
    randomize_batch_norm(model)
    x = np.random.default_rng(1).uniform(0, 1, (300, 28, 28, 1)).astype("float32")
    report = export.convert(model, tmp_path / "blrnet.tflite", strict=True, sample_inputs=x, latency=False)
    assert [r["lce_op"] for r in report.layers] == ["LceBconv2d"] * 4
    assert report.op_histogram["LceBconv2d"] == 4 and report.op_histogram["CONV_2D"] == 1  # the float stem
    assert export.op_histogram(report.flatbuffer)["LceBconv2d"] == 4  # counted in the flatbuffer itself
    parity = report.parity
    assert parity["passed"] and parity["unexplained_mismatches"] == 0 and parity["tie_free_agreement"] == 1.0
    assert parity["tie_free_fraction"] >= 0.4 and parity["argmax_agreement"] >= 0.99
    summary = tfbin.models.summary(model, print_fn=None)
    assert summary["binarized_layers"] == 4 and summary["lce_binary_layers"] == 4


def blr_model(seed=0):
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((8, 8, 2))
    x = tf.keras.layers.Conv2D(6, 3, padding="same")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = BLRConv2D(8, 3, padding="same", pad_values=1.0, temperature="tau", name="blr_a")(x)
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Flatten()(x)
    x = BLRDense(12, straight_through=True, name="blr_b")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax")(x))
    randomize_batch_norm(model, seed)
    return model


@pytest.mark.parametrize("fmt", ["model.keras", "model.h5", "saved_model"])
def test_blrnet_model_round_trips(tmp_path, fmt):
    model = blr_model()
    tfbin.sharpness.set(model, "tau", 0.37)
    x = np.random.default_rng(2).normal(0, 1, (8, 8, 8, 2)).astype("float32")
    soft = model.predict(x, verbose=0)
    with tfbin.hard(model):
        hard = model.predict(x, verbose=0)
    path = str(tmp_path / fmt)
    model.save(path)
    loaded = tf.keras.models.load_model(path)  # no custom_objects: tfbin registered them
    assert tfbin.sharpness.get(loaded, "tau") == pytest.approx(0.37)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), soft, atol=1e-6)
    with tfbin.hard(loaded):
        np.testing.assert_allclose(loaded.predict(x, verbose=0), hard, atol=1e-6)
    for name in ("blr_a", "blr_b"):
        a, b = model.get_layer(name), loaded.get_layer(name)
        assert type(b) is type(a) and b.get_config() == a.get_config()
        np.testing.assert_array_equal(a.logits.numpy(), b.logits.numpy())


def test_ensemble_of_sampled_nets(rng):
    model = blr_model()
    x = rng.normal(0, 1, (16, 8, 8, 2)).astype("float32")
    logits = [l.logits.numpy().copy() for l in blr_layers(model)]
    norms = [l.get_weights() for l in model.layers if isinstance(l, tf.keras.layers.BatchNormalization)]
    with tfbin.hard(model):
        map_prediction = model.predict(x, verbose=0)
    ensemble = ensemble_predict(model, x, samples=3, seed=1)
    assert ensemble.shape == map_prediction.shape
    np.testing.assert_allclose(ensemble.sum(1), 1.0, rtol=1e-5)  # an average of softmax outputs
    assert not np.allclose(ensemble, map_prediction)  # uncertain weights: the sampled nets differ from the MAP net
    np.testing.assert_array_equal(ensemble, ensemble_predict(model, x, samples=3, seed=1))  # seeded
    ensemble_predict(model, x, samples=2, recalibration_data=x, recalibration_steps=1)
    for layer, theta in zip(blr_layers(model), logits):  # restored
        np.testing.assert_array_equal(layer.logits.numpy(), theta)
    for weights, saved in zip([l.get_weights() for l in model.layers if isinstance(l, tf.keras.layers.BatchNormalization)], norms):
        for a, b in zip(weights, saved):
            np.testing.assert_array_equal(a, b)
    # near-certain weights: every sample is the MAP net
    for layer in blr_layers(model):
        layer.assign_logits(20.0 * np.sign(layer.logits.numpy()))
    with tfbin.hard(model):
        map_prediction = model.predict(x, verbose=0)
    np.testing.assert_allclose(ensemble_predict(model, x, samples=2), map_prediction, rtol=1e-6, atol=1e-7)
