"""The Keras 3 path (`tfbin.keras3`): quantizers against their formulas and against the Keras 2
path, larq's layers ported by changing the import, and the LCE export.

Keras 3 (`import keras`) and tf-keras (`tf.keras`, selected by conftest's `import tfbin`) live
in one process side by side, so the tests run here; what must hold in a process without Keras 2
runs in a subprocess.
"""
import os
import subprocess
import sys
import textwrap
import warnings

import keras
import larq as lq
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf

import tfbin.keras3 as k3
from tfbin import mode
from tfbin import quantizers as Q2
from tfbin import sharpness
from tfbin.export import parity
from tfbin.keras3.quant_layers import export_form


def value_and_grad(quantizer, x, sources=()):
    """`quantizer(x)` and the gradients of `sum(y · upstream)` w.r.t. x and `sources`."""
    x = tf.convert_to_tensor(x, tf.float32)
    upstream = tf.constant(np.random.default_rng(7).normal(size=x.shape).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = quantizer(x)
        loss = tf.reduce_sum(y * upstream)
    grads = tape.gradient(loss, [x, *sources])
    return y.numpy(), upstream.numpy(), [None if g is None else g.numpy() for g in grads]


def set_sharpness(quantizer, **values):
    for name, value in values.items():
        quantizer.sharpness_weights[name].assign(value)


def np_sign(x):
    return np.where(x >= 0, 1.0, -1.0).astype("float32")


def test_ste_sign_is_larqs(rng):
    x = np.concatenate([[-1.5, -1.0, 0.0, 1.0, 1.0001], rng.normal(size=50)]).astype("float32")
    y, up, (g,) = value_and_grad(k3.SteSign(), x)
    np.testing.assert_array_equal(y, np_sign(x))
    np.testing.assert_array_equal(g, up * (np.abs(x) <= 1.0))
    y2, _, (g2,) = value_and_grad(lq.quantizers.SteSign(), x)  # larq's, on the same inputs
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(g, g2)


# larq's other baselines' quantizers: (Keras 3 twin, larq's, the input, the gradient's formula in
# NumPy `(x, upstream) -> dq/dx · upstream`). Inputs hold exact zeros (sign(0) = +1) and the
# gradients' edges (|x| = 1, just past it); MagnitudeAwareSign's kernels unequal channel scales.
def _inputs(rng):
    return np.concatenate([[0.0, -0.0, 0.0, -1.0, 1.0, -1.0001, 1.0001, 0.5, -0.25, 3.0],
                           rng.normal(size=90)]).astype("float32")


def _kernel(rng, shape):
    w = rng.normal(size=shape) * rng.uniform(0.05, 1.0, shape[-1])  # a scale per output channel
    w.reshape(-1, shape[-1])[:3] = 0.0  # exact zeros
    return w.astype("float32")


def _swish_grad(beta):
    def grad(x, up):
        bx = beta * x.astype("float64")
        return up * beta * (2 - bx * np.tanh(bx / 2)) / (1 + np.cosh(bx))
    return grad


def _magnitude_aware(clip_value):
    def forward(w):
        return np.abs(w.astype("float64")).reshape(-1, w.shape[-1]).mean(0) * np_sign(w)

    def grad(w, up):  # the scale is a constant (stop_gradient), sign's gradient the clipped STE
        clipped = np.ones_like(w, bool) if clip_value is None else np.abs(w) <= clip_value
        return up * np.abs(w.astype("float64")).reshape(-1, w.shape[-1]).mean(0) * clipped
    return forward, grad


LARQ_TWINS = {
    "approx_sign": (lambda: k3.binary_quantizers.ApproxSign(), lambda: lq.quantizers.ApproxSign(), _inputs,
                    np_sign, lambda x, up: up * np.where(np.abs(x) <= 1, 2 - 2 * np.abs(x.astype("float64")), 0.0)),
    "swish_sign": (lambda: k3.binary_quantizers.SwishSign(), lambda: lq.quantizers.SwishSign(), _inputs,
                   np_sign, _swish_grad(5.0)),
    "swish_sign_beta_2": (lambda: k3.binary_quantizers.SwishSign(beta=2.0), lambda: lq.quantizers.SwishSign(beta=2.0),
                          _inputs, np_sign, _swish_grad(2.0)),
    "magnitude_aware_sign": (lambda: k3.binary_quantizers.MagnitudeAwareSign(), lambda: lq.quantizers.MagnitudeAwareSign(),
                             lambda rng: _kernel(rng, (3, 3, 4, 6)) * 1.5, *_magnitude_aware(1.0)),
    "magnitude_aware_sign_dense_clip_half": (
        lambda: k3.binary_quantizers.MagnitudeAwareSign(clip_value=0.5),
        lambda: lq.quantizers.MagnitudeAwareSign(clip_value=0.5), lambda rng: _kernel(rng, (20, 7)), *_magnitude_aware(0.5)),
    "magnitude_aware_sign_no_clip": (
        lambda: k3.binary_quantizers.MagnitudeAwareSign(clip_value=None),
        lambda: lq.quantizers.MagnitudeAwareSign(clip_value=None), lambda rng: _kernel(rng, (2, 2, 3, 5)) * 2,
        *_magnitude_aware(None)),
}


@pytest.mark.parametrize("name", sorted(LARQ_TWINS))
def test_the_keras3_twins_of_larqs_quantizers_are_larqs_and_their_formulas(rng, name):
    make3, make_larq, inputs, forward, gradient = LARQ_TWINS[name]
    x = inputs(rng)
    y, up, (g,) = value_and_grad(make3(), x)
    y2, up2, (g2,) = value_and_grad(make_larq(), x)  # larq's, on the same inputs and upstream gradient
    np.testing.assert_array_equal(up, up2)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(g, g2)
    np.testing.assert_allclose(y, forward(x), rtol=1e-6)
    np.testing.assert_allclose(g, gradient(x, up), rtol=1e-5, atol=1e-6)
    assert make3().precision == 1 and np.all(y != 0)  # a binary quantizer: sign(0) = +1, no zero out


def test_the_larq_twins_configs_round_trip_and_larqs_configs_make_them():
    twins = {"approx_sign": ({}, k3.binary_quantizers.ApproxSign), "swish_sign": ({"beta": 2.5}, k3.binary_quantizers.SwishSign),
             "magnitude_aware_sign": ({"clip_value": 0.5}, k3.binary_quantizers.MagnitudeAwareSign)}
    for alias, (args, cls) in twins.items():
        assert k3.binary_quantizers.ALIASES[alias] is cls and alias in k3.binary_quantizers.LARQ_TWINS
        assert k3.binary_quantizers.class_of(cls.__name__) is cls and k3.binary_quantizers.class_of(f"tfbin>{cls.__name__}") is cls
        q = cls(**args, name="q")
        config = q.get_config()
        assert {k: config[k] for k in args} == args and set(config) == {"name", "trainable", "dtype", *args}
        assert cls.from_config(config).get_config() == config
        again = k3.binary_quantizers.get(k3.binary_quantizers.serialize(q))
        assert type(again) is cls and again.get_config() == config
        # larq's config (what a recipe carries) makes the twin, with larq's arguments.
        larq_config = tf.keras.utils.serialize_keras_object(getattr(lq.quantizers, cls.__name__)(**args))
        twin = k3.binary_quantizers.get(larq_config)
        assert type(twin) is cls and {k: twin.get_config()[k] for k in args} == args
        assert type(k3.binary_quantizers.get(alias)) is cls
    assert k3.QuantConv2D(4, 3, input_quantizer="approx_sign", kernel_quantizer="magnitude_aware_sign").kernel_quantizer.clip_value == 1.0


def small_float_cnn(width=16, classes=4, head_activation="softmax"):
    """A float conv net: a stem, two convs and a hidden Dense (binarized by the recipes), a head.
    `width` 32 fills one bitpacked word per pixel (LCE writes such a bconv's output bitpacked)."""
    L = keras.layers
    return keras.Sequential([
        keras.Input((12, 12, 3)),
        L.Conv2D(8, 3, padding="same", name="c1"), L.BatchNormalization(name="bn1"), L.ReLU(name="r1"),
        L.Conv2D(width, 3, padding="same", name="c2"), L.BatchNormalization(name="bn2"), L.ReLU(name="r2"),
        L.MaxPooling2D(name="p"),
        L.Conv2D(width, 3, padding="same", name="c3"), L.BatchNormalization(name="bn3"), L.ReLU(name="r3"),
        L.GlobalAveragePooling2D(name="g"),
        L.Dense(width, name="h"), L.BatchNormalization(name="bnh"), L.ReLU(name="rh"),
        L.Dense(classes, activation=head_activation, name="out"),
    ])


LARQ_BASELINE_QUANTIZERS = {  # recipe (overrides): input quantizer, kernel quantizer and its config
    "approx_sign": ({}, "ApproxSign", "SteSign", {"clip_value": 1.0}),
    "swish_sign": ({"beta": 3.0}, "SwishSign", "SteSign", {"clip_value": 1.0}),
    "bireal": ({}, "ApproxSign", "MagnitudeAwareSign", {"clip_value": 1.0}),
}


@pytest.mark.margin(exact="the quantizer classes and configs binarize chose; one step changed the kernels, kept clipped")
@pytest.mark.parametrize("recipe", sorted(LARQ_BASELINE_QUANTIZERS))
def test_larqs_baselines_binarize_a_keras3_net_that_trains(recipe):
    overrides, inputs, kernels, kernel_config = LARQ_BASELINE_QUANTIZERS[recipe]
    keras.utils.set_random_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # binarize's notes on removed ReLUs and inserted BatchNorms
        model, callbacks = k3.binarize(small_float_cnn(), recipe, epochs=1, **overrides)
    binarized = k3.binarized_layers(model)
    assert [l.name for l in binarized] == ["c2", "c3", "h"]  # the stem and the head stay float
    for layer in binarized:
        assert (type(layer.input_quantizer).__name__, type(layer.kernel_quantizer).__name__) == (inputs, kernels)
        assert type(layer.kernel_constraint).__name__ == "WeightClip" and layer.kernel_constraint.clip_value == 1.0
        assert {k: layer.kernel_quantizer.get_config()[k] for k in kernel_config} == kernel_config
    if "beta" in overrides:
        assert all(layer.input_quantizer.beta == overrides["beta"] for layer in binarized)
    assert callbacks == []  # larq's baselines have no schedules
    rng = np.random.default_rng(0)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    before = [layer.kernel.numpy().copy() for layer in binarized]
    history = model.fit(rng.uniform(size=(8, 12, 12, 3)), rng.integers(0, 4, 8), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert all(not np.array_equal(b, layer.kernel.numpy()) for b, layer in zip(before, binarized))  # one step trained them
    assert all(np.abs(layer.kernel.numpy()).max() <= 1.0 for layer in binarized)  # WeightClip(1)


@pytest.mark.parametrize("h", [0.0, 0.3])
def test_self_binarizing_soft_hard_and_gradient(rng, h):
    x = rng.normal(size=(64, 5)).astype("float32")
    q = k3.SelfBinarizingSign()
    q(x)
    set_sharpness(q, v=3.0, h=h)
    y, up, (g,) = value_and_grad(q, x)
    soft = np.tanh(3 * x)
    np.testing.assert_allclose(y, soft + h * (np_sign(x) - soft), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g, up * 3 * (1 - soft**2), rtol=1e-4, atol=1e-5)  # whatever h is
    q.hard_mode = True
    np.testing.assert_array_equal(q(tf.constant([-2.0, -1e-7, 0.0, 1e-7, 3.0])).numpy(), [-1, -1, 1, 1, 1])


def test_self_binarizing_normalize_divides_by_the_channel_mean(rng):
    w = (rng.normal(size=(3, 3, 4, 6)) * 0.05).astype("float32")
    q = k3.SelfBinarizingSign(normalize=True)
    q(w)
    set_sharpness(q, v=2.0)
    mean = np.abs(w).mean((0, 1, 2), keepdims=True)
    np.testing.assert_allclose(q(w).numpy(), np.tanh(2.0 * w / (mean + 1e-12)), rtol=1e-5, atol=1e-6)


def test_ede_forward_is_sign_and_gradient_is_ede(rng):
    x = rng.normal(size=(200,)).astype("float32")
    q = k3.EDESign()
    q(x)
    set_sharpness(q, t=0.7, k=2.5)
    y, up, (g,) = value_and_grad(q, x)
    np.testing.assert_array_equal(y, np_sign(x))
    np.testing.assert_allclose(g, up * 2.5 * 0.7 * (1 - np.tanh(0.7 * x) ** 2), rtol=1e-5, atol=1e-7)


def test_libra_values_and_gradient(rng):
    w = (rng.normal(size=(3, 3, 2, 4)) * 0.1 + 0.03).astype("float32")
    q = k3.LibraSign()
    q(w)
    set_sharpness(q, t=0.8, k=1.5)
    axes = (0, 1, 2)
    w_hat = w.astype("float64") - w.mean(axes, keepdims=True)
    w_std = w_hat / w_hat.std(axes, ddof=1, keepdims=True)
    scale = 2.0 ** np.round(np.log2(np.abs(w_std).mean(axes, keepdims=True)))
    y, up, (g,) = value_and_grad(q, w)
    np.testing.assert_allclose(y, np_sign(w_std) * scale, rtol=1e-6)
    q.hard_mode = True
    np.testing.assert_array_equal(q(w).numpy(), y)
    # The gradient is autodiff of s·k·tanh(t·standardize(w)), s a constant.
    wt = tf.constant(w)
    with tf.GradientTape() as tape:
        tape.watch(wt)
        centred = wt - tf.reduce_mean(wt, axes, keepdims=True)
        standardized = centred / tf.sqrt(tf.reduce_sum(centred**2, axes, keepdims=True) / (18 - 1))
        surrogate = tf.reduce_sum(scale.astype("float32") * 1.5 * tf.tanh(0.8 * standardized) * up)
    np.testing.assert_allclose(g, tape.gradient(surrogate, wt).numpy(), rtol=1e-3, atol=1e-5)
    with pytest.raises(ValueError, match="kernel quantizer"):
        k3.LibraSign()(tf.zeros([5]))


@pytest.mark.parametrize("symmetric", [False, True])
def test_bounded_rectifier_values_gradients_and_hard_form(rng, symmetric):
    x = rng.normal(size=(50, 3)).astype("float32")
    q = k3.BoundedRectifier(symmetric=symmetric)
    q(x)
    q.slope.assign([0.5, 2.0, 4.0])
    set_sharpness(q, v=1.5)
    s = 1.5 * np.array([0.5, 2.0, 4.0], "float32")
    pre = s * x if symmetric else s * x + 0.5
    inside = (np.abs(pre) < 1) if symmetric else (pre > 0) & (pre < 1)
    y, up, (gx, gslope) = value_and_grad(q, x, [q.slope])
    np.testing.assert_allclose(y, np.clip(pre, -1 if symmetric else 0, 1), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gx, up * s * inside, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gslope, 1.5 * (up * x * inside).sum(0), rtol=1e-4, atol=1e-6)
    q.hard_mode = True
    step = np_sign(x) if symmetric else (pre >= 0.5).astype("float32")
    np.testing.assert_array_equal(q(x).numpy(), step)
    q.slope.assign(q.slope.constraint(tf.constant([-7.0, 0.5, 1.0])))
    np.testing.assert_allclose(q.slope.numpy(), [0.01, 0.5, 1.0])


def dab_reference(w):
    """DAB's levels per output channel by trying every split (float64), rounded to 8 significant bits."""
    cols = w.reshape(-1, w.shape[-1]).astype("float64")
    n = cols.shape[0]
    q, grad_scale = np.empty_like(cols), np.empty_like(cols)
    for o in range(cols.shape[1]):
        ordered = np.sort(cols[:, o])[::-1]
        scores = [ordered[:k].sum() ** 2 / k + ordered[k:].sum() ** 2 / (n - k) for k in range(1, n)]
        k = int(np.argmax(scores)) + 1
        alpha, beta = ordered[:k].mean(), -ordered[k:].mean()
        grid = 2.0 ** (np.floor(np.log2(max(abs(alpha), abs(beta)))) - 7)
        alpha, beta = np.round(alpha / grid) * grid, np.round(beta / grid) * grid
        top = cols[:, o] >= ordered[k - 1]
        inside = np.abs(cols[:, o]) < 1
        q[:, o] = np.where(top, alpha, -beta)
        grad_scale[:, o] = np.where(top, abs(alpha) * inside + 1 / k, abs(beta) * inside + 1 / (n - k))
    return q.reshape(w.shape), grad_scale.reshape(w.shape)


def test_dab_levels_and_gradient_follow_the_formula(rng):
    w = (rng.normal(size=(3, 3, 2, 4)) * 0.8 + 0.1).astype("float32")
    expected, grad_scale = dab_reference(w)
    q = k3.DistributionAwareSign()
    y, up, (g,) = value_and_grad(q, w)
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    np.testing.assert_allclose(g, up * grad_scale, rtol=1e-5, atol=1e-7)
    q.hard_mode = True
    np.testing.assert_allclose(q(w).numpy(), expected, rtol=1e-6)


# The same quantizer in both paths: (Keras 2 maker, Keras 3 maker, input kind, sharpness values).
PAIRS = {
    "self_binarizing": (Q2.SelfBinarizingSign, k3.SelfBinarizingSign, "x", {"v": 2.5, "h": 0.4}),
    "self_binarizing_normalized": (lambda: Q2.SelfBinarizingSign(normalize=True),
                                   lambda: k3.SelfBinarizingSign(normalize=True), "w", {"v": 3.0}),
    "ede": (Q2.EDESign, k3.EDESign, "x", {"t": 0.7, "k": 1.5}),
    "libra": (Q2.LibraSign, k3.LibraSign, "w", {"t": 0.7, "k": 1.5}),
    "bounded_rectifier": (lambda: Q2.BoundedRectifier(initial_slope=1.3),
                          lambda: k3.BoundedRectifier(initial_slope=1.3), "x", {"v": 2.0, "h": 0.5}),
    "bounded_rectifier_finish": (lambda: Q2.BoundedRectifier(initial_slope=1.3),
                                 lambda: k3.BoundedRectifier(initial_slope=1.3), "x", {"v": 2.0, "h": 1.0}),
    "bounded_rectifier_symmetric": (lambda: Q2.BoundedRectifier(symmetric=True),
                                    lambda: k3.BoundedRectifier(symmetric=True), "x", {"v": 2.0}),
    "dab": (Q2.DistributionAwareSign, k3.DistributionAwareSign, "w", {}),
    "dab_refresh": (lambda: Q2.DistributionAwareSign(refresh_every=2),
                    lambda: k3.DistributionAwareSign(refresh_every=2), "w", {}),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_keras2_and_keras3_quantizers_compute_the_same_numbers(rng, name):
    make2, make3, kind, values = PAIRS[name]
    x = (rng.normal(size=(4, 5, 5, 6)) if kind == "x" else rng.normal(size=(3, 3, 6, 8)) * 0.1).astype("float32")
    q2, q3 = make2(), make3()
    q2(x), q3(x)
    for n, v in values.items():
        sharpness.set(q2, n, v)
        set_sharpness(q3, **{n: v})
    assert [w.name.split(":")[0].split("/")[-1] for w in q2.weights] == [w.name for w in q3.weights]
    for hard in (False, True, False):  # the second soft call: DAB's stored split is used
        q2.hard_mode = q3.hard_mode = hard
        y2, _, g2 = value_and_grad(q2, x, q2.trainable_weights)
        y3, _, g3 = value_and_grad(q3, x, q3.trainable_weights)
        np.testing.assert_array_equal(y3, y2)
        for a, b in zip(g3, g2):
            np.testing.assert_array_equal(a, b)


def test_aliases_configs_and_sharpness_names_match_the_keras2_path():
    keras2 = {getattr(Q2, n).alias: getattr(Q2, n).__name__ for n in Q2.__all__ if hasattr(getattr(Q2, n), "alias")}
    # tfbin's own quantizers; larq's (LARQ_TWINS) are twins of lq.quantizers, tested above.
    keras3 = {alias: cls.__name__ for alias, cls in k3.binary_quantizers.ALIASES.items() if alias not in k3.binary_quantizers.LARQ_TWINS}
    assert keras3 == keras2
    for alias, cls in k3.binary_quantizers.ALIASES.items():
        assert type(k3.binary_quantizers.get(alias)) is cls
    assert isinstance(k3.QuantDense(3, kernel_constraint="weight_clip").kernel_constraint, k3.WeightClip)
    q = k3.EDESign(t="t_input", name="q")
    assert q.sharpness_names == {"t": "t_input", "k": "k"}
    q.build((2,))
    assert sorted(q.sharpness_weights) == ["k", "t_input"] and not q.trainable_weights
    again = k3.binary_quantizers.get(k3.binary_quantizers.serialize(q))
    assert type(again) is k3.EDESign and again.get_config() == q.get_config()
    abr = k3.BoundedRectifier(initial_slope=2.0, floor=0.5, offset=0.25, symmetric=True)
    assert k3.BoundedRectifier.from_config(abr.get_config()).get_config() == abr.get_config()
    with pytest.raises(ValueError, match="no sharpness role"):
        k3.EDESign(sharpness_names={"v": "v"})
    with pytest.raises(ValueError, match="Unknown quantizer"):
        k3.QuantDense(3, input_quantizer="sign")


@pytest.mark.parametrize("padding, pad_values, strides", [("same", 1.0, 1), ("same", 1.0, 2), ("same", 0.0, 1), ("valid", 0.0, 2)])
def test_quant_conv2d_ports_larqs_by_changing_the_import(rng, padding, pad_values, strides):
    args = dict(filters=6, kernel_size=3, strides=strides, padding=padding, pad_values=pad_values,
                input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip")
    larq_layer, keras3_layer = lq.layers.QuantConv2D(**args), k3.QuantConv2D(**args)
    x = rng.normal(size=(2, 8, 8, 4)).astype("float32")  # even: stride 2 pads asymmetrically
    larq_layer(x), keras3_layer(x)
    for variable in keras3_layer.weights:  # the same weights in both
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
        getattr(larq_layer, variable.name).assign(variable.numpy())
    np.testing.assert_array_equal(keras3_layer(x).numpy(), larq_layer(x).numpy())


def test_quant_dense_ports_larqs_by_changing_the_import(rng):
    args = dict(units=5, input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip")
    larq_layer, keras3_layer = lq.layers.QuantDense(**args), k3.QuantDense(**args)
    x = rng.normal(size=(3, 8)).astype("float32")
    larq_layer(x), keras3_layer(x)
    for variable in keras3_layer.weights:
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
        getattr(larq_layer, variable.name).assign(variable.numpy())
    np.testing.assert_array_equal(keras3_layer(x).numpy(), larq_layer(x).numpy())
    assert keras3_layer.kernel_constraint(tf.constant([-3.0, 0.5, 2.0])).numpy().tolist() == [-1.0, 0.5, 1.0]


def test_hard_switches_every_quantizer_and_a_saved_model_keeps_its_sharpness(rng, tmp_path):
    model = keras.Sequential([
        keras.Input((6, 6, 2)),
        k3.QuantConv2D(4, 3, input_quantizer=k3.EDESign(t="t_in"), kernel_quantizer="libra_sign"),
        keras.layers.Flatten(),
        k3.QuantDense(3, input_quantizer=k3.SelfBinarizingSign(), kernel_quantizer="dab_sign"),
    ])
    assert [type(q).__name__ for q in k3.quantizers(model)] == ["EDESign", "LibraSign", "SelfBinarizingSign", "DistributionAwareSign"]
    set_sharpness(model.layers[0].input_quantizer, t_in=0.3)
    set_sharpness(model.layers[2].input_quantizer, v=4.0)
    x = rng.normal(size=(2, 6, 6, 2)).astype("float32")
    soft = model.predict(x, verbose=0)
    with k3.hard(model):
        assert all(q.hard_mode for q in k3.quantizers(model))
        hard = model.predict(x, verbose=0)
    assert not any(q.hard_mode for q in k3.quantizers(model))
    assert not np.array_equal(soft, hard)  # the Dense input is tanh(4x) soft, sign(x) hard
    np.testing.assert_array_equal(model.predict(x, verbose=0), soft)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), soft)
    assert float(loaded.layers[0].input_quantizer.sharpness_weights["t_in"].numpy()) == pytest.approx(0.3)


def binary_net():
    """Two binary convs (ste_sign inputs and kernels, BatchNorm after each) and a binary Dense."""
    binary = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        k3.QuantConv2D(16, 3, padding="same", pad_values=1.0, **binary),
        keras.layers.BatchNormalization(),
        k3.QuantConv2D(16, 3, padding="same", pad_values=1.0, strides=2, **binary),
        keras.layers.BatchNormalization(),
        keras.layers.Flatten(),
        k3.QuantDense(10, **binary),
    ])


def test_a_keras3_binary_net_becomes_lce_binary_convs_and_agrees_with_keras(rng):
    model = binary_net()
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(1.0, 2.0, c) * rng.choice([-1, 1], c))
            layer.beta.assign(np.zeros(c))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c))
            # Conv sums of ±1 are integers; a half-integer mean keeps every BN output (the next
            # sign's input) at least 0.5·|γ|/√(var + ε) > 0.35 away from 0, so Keras and LCE
            # take the same signs whatever the summation order.
            layer.moving_mean.assign(rng.integers(-3, 3, c) + 0.5)
    x = rng.normal(size=(32, 8, 8, 3)).astype("float32")
    x = np.sign(x) * (0.25 + np.abs(x))  # inputs away from the first sign's threshold too
    sign_inputs = keras.Model(model.inputs[0], [model.layers[1].output, model.layers[3].output])(x)
    assert min(float(np.abs(t).min()) for t in sign_inputs) > 0.3  # the test's premise: no ties

    flatbuffer = k3.convert(model)
    ops = k3.op_histogram(flatbuffer)
    # Both convs and the Dense (a 1×1 binary conv, as on the Keras 2 path) are binary ops.
    assert len(k3.binarized_layers(model)) == 3 and ops["LceBconv2d"] == 3, ops
    assert "CONV_2D" not in ops and "FULLY_CONNECTED" not in ops, ops

    interpreter = lce.testing.Interpreter(flatbuffer, num_threads=1)
    tflite = np.asarray(interpreter.predict(x))
    keras_out = model.predict(x, verbose=0)
    np.testing.assert_allclose(tflite.reshape(keras_out.shape), keras_out, atol=1e-4)
    found = k3.verify(model, flatbuffer, x)
    assert found["samples"] == 32 and found["tie_free_fraction"] == 1.0 and found["passed"], found
    assert found["tie_free_agreement"] == 1.0 and found["argmax_agreement"] == 1.0 and found["max_abs_diff"] < 1e-4


def randomize_batch_norms(model, rng):
    """Random BatchNorm statistics and scales (some negative), so that signs see varied inputs."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 2.0, c) * rng.choice([-1, 1], c))
            layer.beta.assign(rng.normal(0.0, 0.5, c))
            layer.moving_mean.assign(rng.normal(0.0, 2.0, c))
            layer.moving_variance.assign(rng.uniform(0.5, 4.0, c))


def mixed_binary_net():
    """A float stem, binarized convs with soft→hard input quantizers and two binarized Dense layers."""
    conv = dict(padding="same", pad_values=1.0, use_bias=False)
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(8, 3, padding="same"),
        keras.layers.BatchNormalization(),
        k3.QuantConv2D(16, 3, input_quantizer=k3.EDESign(), kernel_quantizer="libra_sign", **conv),
        keras.layers.BatchNormalization(),
        keras.layers.MaxPooling2D(2),
        k3.QuantConv2D(16, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign", **conv),
        keras.layers.BatchNormalization(),
        keras.layers.Flatten(),
        k3.QuantDense(32, input_quantizer="ede_sign", kernel_quantizer="ste_sign", use_bias=False),
        keras.layers.BatchNormalization(),
        k3.QuantDense(10, input_quantizer="ste_sign", kernel_quantizer="ste_sign", activation="softmax"),
    ])


def test_every_binarized_conv_and_dense_is_an_lce_binary_op_with_tie_aware_parity(rng):
    model = mixed_binary_net()
    randomize_batch_norms(model, rng)
    model.layers[-1].bias.assign(rng.normal(size=10).astype("float32"))
    x = rng.uniform(size=(200, 8, 8, 3)).astype("float32")
    flatbuffer = k3.convert(model)
    ops = k3.op_histogram(flatbuffer)
    assert ops["LceBconv2d"] == len(k3.binarized_layers(model)) == 4, ops
    assert ops["CONV_2D"] == 1 and "FULLY_CONNECTED" not in ops, ops  # the float stem only
    assert all(layer.export_form is None for layer in model.layers if hasattr(layer, "export_form"))
    for kernel in ("default", "indirect_bgemm"):
        found = k3.verify(model, flatbuffer, x, kernel=kernel)
        assert found["passed"] and found["unexplained_mismatches"] == 0 and found["tie_free_agreement"] == 1.0, found
        assert found["tie_free_fraction"] >= 0.5 and found["lce_kernel"] == kernel, found


def test_verify_finds_a_flatbuffer_that_is_not_the_model(rng):
    model = mixed_binary_net()
    randomize_batch_norms(model, rng)
    x = rng.uniform(size=(64, 8, 8, 3)).astype("float32")
    flatbuffer = k3.convert(model)
    dense = model.layers[-1]
    dense.kernel.assign(-dense.kernel)  # the Keras model is no longer what was converted
    found = k3.verify(model, flatbuffer, x)
    assert not found["passed"] and found["unexplained_mismatches"] > 0 and found["tie_free_samples"] > 0, found


@pytest.mark.parametrize("shape", [(5, 24), (2, 3, 24)])
def test_the_lce_form_of_a_binarized_dense_is_a_bit_identical_1x1_conv(rng, shape):
    layer = k3.QuantDense(7, input_quantizer="ste_sign", kernel_quantizer="ste_sign")
    x = rng.normal(size=shape).astype("float32")
    layer.build(shape)
    layer.bias.assign(rng.normal(size=7).astype("float32"))
    trained = layer(x).numpy()
    with export_form([layer], "lce"):
        as_conv = layer(x).numpy()
    with export_form([layer], "float"):
        as_float = layer(x).numpy()
    np.testing.assert_array_equal(as_conv, trained)
    np.testing.assert_allclose(as_float, x @ layer.kernel.numpy() + layer.bias.numpy(), rtol=1e-5, atol=1e-5)
    assert layer.export_form is None
    np.testing.assert_array_equal(layer(x).numpy(), trained)


def larq_twin(model3):
    """The Keras 2 (tf-keras + larq) net of `mixed_binary_net` with its weights."""
    conv = dict(padding="same", pad_values=1.0, use_bias=False)
    model2 = tf.keras.Sequential([
        tf.keras.Input((8, 8, 3)),
        tf.keras.layers.Conv2D(8, 3, padding="same"),
        tf.keras.layers.BatchNormalization(),
        lq.layers.QuantConv2D(16, 3, input_quantizer=Q2.EDESign(), kernel_quantizer=Q2.LibraSign(), **conv),
        tf.keras.layers.BatchNormalization(),
        tf.keras.layers.MaxPooling2D(2),
        lq.layers.QuantConv2D(16, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign", **conv),
        tf.keras.layers.BatchNormalization(),
        tf.keras.layers.Flatten(),
        lq.layers.QuantDense(32, input_quantizer=Q2.EDESign(), kernel_quantizer="ste_sign", use_bias=False),
        tf.keras.layers.BatchNormalization(),
        lq.layers.QuantDense(10, input_quantizer="ste_sign", kernel_quantizer="ste_sign", activation="softmax"),
    ])
    for layer2, layer3 in zip(model2.layers, model3.layers):
        if isinstance(layer3, keras.layers.BatchNormalization):
            layer2.set_weights(layer3.get_weights())
        for name in ("kernel", "bias"):  # not the quantizers' sharpness weights: both have their defaults
            if getattr(layer3, name, None) is not None:
                getattr(layer2, name).assign(getattr(layer3, name).numpy())
    return model2


def test_keras3_margins_are_the_keras2_rule_on_the_twin_net(rng):
    model3 = mixed_binary_net()
    randomize_batch_norms(model3, rng)
    model2 = larq_twin(model3)
    x = rng.uniform(size=(100, 8, 8, 3)).astype("float32")
    with k3.hard(model3):
        found3 = k3.margins(model3, x, batch_size=32)
        out3 = np.asarray(model3(x, training=False))
    with mode.hard(model2):
        found2 = parity.margins(model2, x, batch_size=32)
        out2 = np.asarray(model2(x, training=False))
    np.testing.assert_allclose(out3, out2, rtol=1e-5, atol=1e-6)  # the premise: the same net
    np.testing.assert_allclose(found3, found2, rtol=1e-5, atol=1.0)  # float stems: a rounding unit apart at most
    assert np.array_equal(found3 > parity.TIE_ULPS, found2 > parity.TIE_ULPS)
    assert 0 < np.mean(found3 > parity.TIE_ULPS) < 1  # both kinds of samples


def test_the_size_figures_of_a_keras3_export(rng):
    model = mixed_binary_net()
    binary = k3.convert(model)
    floating = k3.float_flatbuffer(model)
    ops = k3.op_histogram(floating)
    assert not any(name.startswith("Lce") for name in ops) and ops["FULLY_CONNECTED"] == 2 and ops["CONV_2D"] == 3, ops
    binarized = {id(layer.kernel) for layer in k3.binarized_layers(model)}
    kernels = sum(int(np.prod(w.shape)) for w in model.trainable_weights if id(w) in binarized)
    others = sum(int(np.prod(w.shape)) for w in model.trainable_weights if id(w) not in binarized)
    assert kernels == 3 * 3 * 8 * 16 + 3 * 3 * 16 * 16 + 4 * 4 * 16 * 32 + 32 * 10
    assert k3.one_bit_limit_bytes(model) == int(np.ceil((kernels + 32 * others) / 8))
    assert len(floating) > 4 * kernels and len(floating) > 3 * len(binary) and len(binary) > k3.one_bit_limit_bytes(model)


def test_every_hard_form_is_fused_by_lce():
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        k3.QuantConv2D(16, 3, input_quantizer="ede_sign", kernel_quantizer="libra_sign", padding="same", pad_values=1.0),
        keras.layers.BatchNormalization(),
        k3.QuantConv2D(8, 3, input_quantizer=k3.BoundedRectifier(symmetric=True),
                       kernel_quantizer=k3.SelfBinarizingSign(normalize=True)),
    ])
    ops = k3.op_histogram(k3.convert(model))
    assert ops["LceBconv2d"] == 2 and "CONV_2D" not in ops, ops


def run_without_keras2(code):
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300)


def test_keras3_path_works_where_tensorflow_came_with_keras3_and_loads_no_keras2():
    result = run_without_keras2("""
        import sys
        import tensorflow as tf, keras
        assert tf.keras.Model.__module__.startswith("keras."), tf.keras.Model.__module__
        import tfbin.keras3 as k3
        model = keras.Sequential([keras.Input((4, 4, 2)), k3.QuantConv2D(8, 3, input_quantizer="ede_sign", kernel_quantizer="ste_sign")])
        print(dict(k3.op_histogram(k3.convert(model))))
        float_model = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(8, 3), keras.layers.Conv2D(8, 3), keras.layers.Flatten(), keras.layers.Dense(2)])
        binarized, callbacks = k3.binarize(float_model, "self_binarizing", epochs=3)  # the recipes need no Keras 2
        assert [type(c).__name__ for c in callbacks] == ["SharpeningScheduler"], callbacks
        print(sorted(m for m in ("larq", "tf_keras", "larq_zoo") if m in sys.modules))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    histogram, keras2 = result.stdout.strip().splitlines()[-2:]
    assert "'LceBconv2d': 1" in histogram and keras2 == "[]"


def test_importing_keras3_first_leaves_keras3_in_tf_keras():
    result = run_without_keras2("""
        import os, sys
        import tfbin.keras3
        import tensorflow as tf
        print(tf.keras.Model.__module__, os.environ.get("TF_USE_LEGACY_KERAS"), "larq" in sys.modules)
        import tfbin
        tfbin.binarize
    """)
    assert result.stdout.split() == ["keras.src.models.model", "None", "False"], result.stderr[-3000:]
    assert "ImportError: TensorFlow was imported with Keras 3 before tfbin" in result.stderr
