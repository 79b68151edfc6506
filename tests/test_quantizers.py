"""Quantizer values and gradients against their formulas."""
import itertools

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfbin import quantizers as Q
from tfbin import sharpness
from gradients import value_and_grad


def np_sign(x):
    return np.where(x >= 0, 1.0, -1.0)


def test_self_binarizing_soft_is_tanh_and_gradient_is_analytic(rng):
    q = Q.SelfBinarizingSign()
    x = rng.normal(size=(64, 5)).astype("float32")
    q(x)  # build
    sharpness.set(q, "v", 3.0)
    y, g = value_and_grad(q, x)
    np.testing.assert_allclose(y, np.tanh(3 * x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g, 3 * (1 - np.tanh(3 * x) ** 2), rtol=1e-4, atol=1e-5)


def test_hard_sign_maps_zero_to_plus_one():
    q = Q.SelfBinarizingSign()
    q.hard_mode = True
    y = q(tf.constant([-2.0, -1e-7, 0.0, 1e-7, 3.0])).numpy()
    np.testing.assert_array_equal(y, [-1, -1, 1, 1, 1])


def test_ede_forward_is_sign_and_gradient_is_ede(rng):
    q = Q.EDESign()
    x = rng.normal(size=(200,)).astype("float32")
    q(x)
    sharpness.set(q, "t", 0.7)
    sharpness.set(q, "k", 2.5)
    y, g = value_and_grad(q, x)
    np.testing.assert_array_equal(y, np_sign(x))
    np.testing.assert_allclose(g, 2.5 * 0.7 * (1 - np.tanh(0.7 * x) ** 2), rtol=1e-5)


def libra_reference(w):
    axes = tuple(range(w.ndim - 1))
    w_hat = w - w.mean(axes, keepdims=True)
    w_std = w_hat / w_hat.std(axes, ddof=1, keepdims=True)
    scale = 2.0 ** np.round(np.log2(np.abs(w_std).mean(axes, keepdims=True)))
    return np_sign(w_std) * scale, scale


@pytest.mark.parametrize("shape", [(3, 3, 4, 8), (20, 6)])
def test_libra_forward_matches_reference_and_is_pm_power_of_two_per_channel(rng, shape):
    w = (rng.normal(size=shape) * 0.1 + 0.03).astype("float32")
    q = Q.LibraSign()
    y = q(w).numpy()
    expected, scale = libra_reference(w.astype("float64"))
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    flat = y.reshape(-1, shape[-1])
    for o in range(shape[-1]):
        levels = np.unique(np.abs(flat[:, o]))
        assert len(levels) == 1
        assert np.log2(levels[0]) == np.round(np.log2(levels[0]))  # a power of two
    q.hard_mode = True
    np.testing.assert_array_equal(q(w).numpy(), y)


def test_libra_gradient_is_ede_through_the_standardization(rng):
    """The custom gradient must equal autodiff of s·k·tanh(t·standardize(w)) (s constant)."""
    w = tf.constant(rng.normal(size=(3, 3, 2, 4)).astype("float32"))
    q = Q.LibraSign()
    q(w)
    t, k = 0.8, 1.5
    sharpness.set(q, "t", t)
    sharpness.set(q, "k", k)
    upstream = tf.constant(rng.normal(size=w.shape).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(w)
        y = tf.reduce_sum(q(w) * upstream)
    grad = tape.gradient(y, w).numpy()

    axes = [0, 1, 2]
    with tf.GradientTape() as tape:
        tape.watch(w)
        w_hat = w - tf.reduce_mean(w, axes, keepdims=True)
        std = tf.sqrt(tf.reduce_sum(w_hat**2, axes, keepdims=True) / (18 - 1))
        w_std = w_hat / std
        s = tf.stop_gradient(2.0 ** tf.round(tf.math.log(tf.reduce_mean(tf.abs(w_std), axes, keepdims=True)) / np.log(2.0)))
        surrogate = tf.reduce_sum(s * k * tf.tanh(t * w_std) * upstream)
    expected = tape.gradient(surrogate, w).numpy()
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("value", [0.0, 6.9e-23, 0.3])
def test_libra_gradient_is_finite_on_constant_channels(value):
    # A constant channel has variance 0 (or one that underflows to 0): sqrt's infinite gradient
    # there once turned the whole kernel's gradient into NaN (found by hypothesis).
    w = tf.Variable(np.full((3, 2, 4), value, np.float32))
    q = Q.LibraSign()
    q.build(w.shape)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(q(w))
    assert np.isfinite(tape.gradient(loss, w).numpy()).all()


def test_libra_rejects_activations():
    with pytest.raises(ValueError, match="kernel quantizer"):
        Q.LibraSign()(tf.zeros([5]))


def test_bounded_rectifier_values_gradients_and_hard_form(rng):
    q = Q.BoundedRectifier(initial_slope=2.0)
    x = rng.normal(size=(50, 3)).astype("float32")
    q(x)
    q.slope.assign([0.5, 2.0, 4.0])
    a = np.array([0.5, 2.0, 4.0], "float32")
    xt = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(xt)
        y = q(xt)
    inside = ((a * x + 0.5) > 0) & ((a * x + 0.5) < 1)
    np.testing.assert_allclose(y.numpy(), np.clip(a * x + 0.5, 0, 1), rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(y, xt).numpy(), a * inside, rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(y, q.slope).numpy(), (x * inside).sum(0), rtol=1e-4)
    q.hard_mode = True
    hard = q(x).numpy()
    np.testing.assert_array_equal(hard, (a * x + 0.5 >= 0.5).astype("float32"))
    assert set(np.unique(hard)) <= {0.0, 1.0}


def test_bounded_rectifier_symmetric_and_floor():
    q = Q.BoundedRectifier(initial_slope=1.0, floor=0.25, symmetric=True)
    x = tf.constant([[-3.0, -0.5, 0.0, 0.5, 3.0]])
    np.testing.assert_allclose(q(tf.transpose(x)).numpy().ravel(), [-1, -0.5, 0, 0.5, 1])
    q.slope.assign(q.slope.constraint(tf.constant([-7.0])))
    assert q.slope.numpy()[0] == pytest.approx(0.25)
    q.hard_mode = True
    np.testing.assert_array_equal(q(tf.transpose(x)).numpy().ravel(), [-1, -1, 1, 1, 1])
    with pytest.raises(ValueError, match="floor"):
        Q.BoundedRectifier(floor=0.0)
    with pytest.raises(ValueError, match="initial_slope"):
        Q.BoundedRectifier(initial_slope=0.001, floor=0.01)


def brute_force_split(column):
    """K maximizing S_K^2/K + (S-S_K)^2/(n-K) by trying every K; levels are group means."""
    ordered = np.sort(column)[::-1]
    n = len(column)
    scores = [ordered[:k].sum() ** 2 / k + ordered[k:].sum() ** 2 / (n - k) for k in range(1, n)]
    k = int(np.argmax(scores)) + 1
    return k, ordered[:k].mean(), ordered[k:].mean()


@pytest.mark.parametrize("seed", range(5))
def test_dab_split_equals_brute_force_and_is_least_squares_optimal(seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(3, 3, 4, 6)).astype("float64") * rng.uniform(0.1, 2) + rng.normal() * 0.3
    y = Q.DistributionAwareSign(dtype="float64")(tf.constant(w)).numpy()
    assert y.dtype == np.float64
    cols, ycols = w.reshape(-1, 6), y.reshape(-1, 6)
    for o in range(6):
        k, top_mean, rest_mean = brute_force_split(cols[:, o])
        top = cols[:, o] >= np.sort(cols[:, o])[::-1][k - 1]
        assert top.sum() == k
        # Group means, rounded to 8 significant bits of the larger level.
        grid = 2.0 ** (np.floor(np.log2(max(abs(top_mean), abs(rest_mean)))) - 7)
        np.testing.assert_allclose(ycols[top, o], np.round(top_mean / grid) * grid, rtol=1e-12)
        np.testing.assert_allclose(ycols[~top, o], np.round(rest_mean / grid) * grid, rtol=1e-12)
        # No other split of the sorted values has a smaller squared error (up to the rounding).
        ordered = np.sort(cols[:, o])
        errors = [
            ((ordered[:j] - ordered[:j].mean()) ** 2).sum() + ((ordered[j:] - ordered[j:].mean()) ** 2).sum()
            for j in range(1, len(ordered))
        ]
        rounding = len(cols) * grid**2
        assert ((cols[:, o] - ycols[:, o]) ** 2).sum() <= min(errors) + rounding


def test_dab_gradient_follows_the_official_rule(rng):
    w = (rng.normal(size=(3, 3, 2, 3)) * 0.8).astype("float32")
    q = Q.DistributionAwareSign()
    y, g = value_and_grad(q, w)
    cols, ycols, gcols = w.reshape(-1, 3), y.reshape(-1, 3), g.reshape(-1, 3)
    n = cols.shape[0]
    for o in range(3):
        k, top_mean, rest_mean = brute_force_split(cols[:, o].astype("float64"))
        top = cols[:, o] >= np.sort(cols[:, o])[::-1][k - 1]
        alpha, beta = ycols[top, o][0], -ycols[~top, o][0]  # the (rounded) levels in use
        inside = np.abs(cols[:, o]) < 1
        expected = np.where(top, abs(alpha) * inside + 1 / k, abs(beta) * inside + 1 / (n - k))
        np.testing.assert_allclose(gcols[:, o], expected, rtol=1e-5)


def test_dab_hard_form_equals_soft_forward(rng):
    w = rng.normal(size=(3, 3, 8, 16)).astype("float32")
    q = Q.DistributionAwareSign()
    soft = q(w).numpy()
    q.hard_mode = True
    np.testing.assert_allclose(q(w).numpy(), soft, rtol=1e-5, atol=1e-6)


def test_large_sharpness_soft_approaches_hard(rng):
    x = rng.normal(size=(1000, 4)).astype("float32")
    x = x[np.abs(x).min(1) > 1e-2]
    for quantizer, set_sharp in [
        (Q.SelfBinarizingSign(), lambda q: sharpness.set(q, "v", 1e4)),
        (Q.BoundedRectifier(), lambda q: q.slope.assign(np.full(4, 1e4, "float32"))),
        (Q.BoundedRectifier(symmetric=True), lambda q: q.slope.assign(np.full(4, 1e4, "float32"))),
    ]:
        quantizer(x)
        set_sharp(quantizer)
        soft = quantizer(x).numpy()
        quantizer.hard_mode = True
        hard = quantizer(x).numpy()
        np.testing.assert_allclose(soft, hard, atol=1e-6)


ALL = [
    (Q.SelfBinarizingSign, "self_binarizing_sign"),
    (Q.EDESign, "ede_sign"),
    (Q.LibraSign, "libra_sign"),
    (Q.BoundedRectifier, "bounded_rectifier"),
    (Q.DistributionAwareSign, "dab_sign"),
]


@pytest.mark.parametrize("cls,alias", ALL)
def test_alias_config_round_trip_and_precision(cls, alias):
    q = lq.quantizers.get(alias)
    assert type(q) is cls and q.precision == 1
    config = tf.keras.utils.serialize_keras_object(q)
    clone = tf.keras.utils.deserialize_keras_object(config)
    assert type(clone) is cls and clone.get_config() == q.get_config()


def test_custom_sharpness_names_round_trip():
    q = Q.EDESign(t="t_act", k="k_act")
    q(tf.zeros([2, 2]))
    assert set(q.sharpness_weights) == {"t_act", "k_act"}
    clone = Q.EDESign.from_config(q.get_config())
    assert clone.sharpness_names == {"t": "t_act", "k": "k_act"}
    with pytest.raises(ValueError, match="no sharpness role"):
        Q.SelfBinarizingSign(sharpness_names={"w": "w"})


@pytest.mark.parametrize(
    "iq,kq", list(itertools.product(["self_binarizing_sign", "ede_sign", "bounded_rectifier"], ["self_binarizing_sign", "libra_sign", "dab_sign", "ede_sign"]))
)
def test_every_combination_works_in_larq_layers(iq, kq):
    model = tf.keras.Sequential(
        [
            tf.keras.Input((6, 6, 3)),
            lq.layers.QuantConv2D(4, 3, padding="same", pad_values=1.0, input_quantizer=iq, kernel_quantizer=kq),
            tf.keras.layers.Flatten(),
            lq.layers.QuantDense(2, input_quantizer=iq, kernel_quantizer=kq),
        ]
    )
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 3)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)


@settings(max_examples=25, deadline=None)
@given(
    w=hnp.arrays(np.float32, (3, 2, 4), elements=st.floats(-10, 10, width=32)),
)
def test_kernel_hard_forms_have_two_values_per_channel(w):
    for cls in (Q.LibraSign, Q.DistributionAwareSign, Q.SelfBinarizingSign, Q.EDESign):
        q = cls()
        q.hard_mode = True
        y = q(w).numpy().reshape(-1, 4)
        assert np.isfinite(y).all()
        for o in range(4):
            assert len(np.unique(y[:, o])) <= 2


@settings(max_examples=30, deadline=None)
@given(
    x=hnp.arrays(np.float32, (3, 2, 4), elements=st.floats(-1e4, 1e4, width=32)),
    sharpness=st.floats(1e-3, 1e4),
)
@example(x=np.zeros((3, 2, 4), np.float32), sharpness=1.0)  # constant channels: zero std
@example(x=np.full((3, 2, 4), 1e4, np.float32), sharpness=1e4)
def test_soft_forms_and_gradients_are_finite_and_hard_forms_take_two_values(x, sharpness):
    """Any finite input, any sharpness in the valid range (kernels with constant channels included)."""
    activation = [Q.SelfBinarizingSign(), Q.EDESign(), Q.BoundedRectifier(), Q.BoundedRectifier(symmetric=True)]
    for q in [*activation, Q.LibraSign(), Q.DistributionAwareSign()]:
        q.build(x.shape)
        for weight in q.sharpness_weights.values():
            weight.assign(sharpness)
        value = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(value)
            soft = q(value)
            loss = tf.reduce_sum(soft * tf.constant(np.linspace(-1, 1, soft.shape.num_elements()).reshape(soft.shape), tf.float32))
        grad = tape.gradient(loss, value)
        name = type(q).__name__
        assert np.isfinite(soft.numpy()).all(), name
        assert grad is not None and np.isfinite(grad.numpy()).all(), name
        q.hard_mode = True
        hard = q(value).numpy()
        if q in activation:  # ±1, or {0, 1} for the Heaviside form
            allowed = {0.0, 1.0} if isinstance(q, Q.BoundedRectifier) and not q.symmetric else {-1.0, 1.0}
            assert set(np.unique(hard)) <= allowed, name
        else:  # kernels: two values per output channel
            for o in range(hard.shape[-1]):
                assert len(np.unique(hard[..., o])) <= 2, name


def test_bounded_rectifier_sharpness_multiplies_the_slope(rng):
    # soft clip(v·a·x + c, 0, 1), hard 1[v·a·x + c >= 0.5]; d/da = v·x inside the ramp.
    q = Q.BoundedRectifier(offset=0.3)
    x = rng.normal(size=(200, 3)).astype("float32")
    q(x)
    a, v = np.array([0.5, 2.0, 4.0], "float32"), 3.0
    q.slope.assign(a)
    sharpness.set(q, "v", v)
    xt = tf.constant(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(xt)
        y = q(xt)
    pre = v * a * x + 0.3
    inside = (pre > 0) & (pre < 1)
    np.testing.assert_allclose(y.numpy(), np.clip(pre, 0, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(y, xt).numpy(), v * a * inside, rtol=1e-5)
    np.testing.assert_allclose(tape.gradient(y, q.slope).numpy(), (v * x * inside).sum(0), rtol=1e-4)
    q.hard_mode = True
    np.testing.assert_array_equal(q(x).numpy(), (pre >= 0.5).astype("float32"))


def test_bounded_rectifier_export_threshold_includes_the_sharpness(rng):
    # The exporter's ±1 rewrite thresholds at θ = (0.5 − c)/(v·a): exact for v ≠ 1 and c ≠ 0.5.
    import larq as lq
    import tfbin
    from tfbin.export.rewrite import export_model

    quantizer = Q.BoundedRectifier(offset=0.2)
    model = tf.keras.Sequential([
        tf.keras.Input((5, 5, 3)),
        lq.layers.QuantConv2D(4, 3, padding="valid", input_quantizer=quantizer, kernel_quantizer="ste_sign", name="binary"),
    ])
    quantizer.slope.assign(rng.uniform(0.3, 3, 3).astype("float32"))
    sharpness.set(model, "v", 7.0)
    exported, mapping, refused = export_model(model)
    assert not refused
    x = rng.normal(size=(32, 5, 5, 3)).astype("float32")
    with tfbin.hard(model):
        expected = model.predict(x, verbose=0)
        got = exported.predict(x, verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max())


def test_self_binarizing_normalize_divides_by_the_channel_mean_magnitude(rng):
    # tanh(v·w / mean_o|w|), the scale a constant (no gradient through it); hard form sign(w).
    q = Q.SelfBinarizingSign("v_kernel", normalize=True)
    w = (rng.normal(size=(3, 3, 4, 5)) * np.array([0.01, 0.05, 0.1, 1.0, 3.0])).astype("float32")
    q(w)
    sharpness.set(q, "v_kernel", 2.0)
    m = np.abs(w).reshape(-1, 5).mean(0)
    y, g = value_and_grad(q, w)
    np.testing.assert_allclose(y, np.tanh(2 * w / m), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g, 2 / m * (1 - np.tanh(2 * w / m) ** 2), rtol=1e-3, atol=1e-3)  # tanh² rounding in the tails
    # Every channel is on the same scale whatever its magnitude: the same fraction saturates.
    saturated = (np.abs(y) > 0.99).reshape(-1, 5).mean(0)
    assert saturated.max() - saturated.min() < 0.3
    q.hard_mode = True
    np.testing.assert_array_equal(q(w).numpy(), np_sign(w))
    assert Q.SelfBinarizingSign.from_config(q.get_config()).normalize


def test_dab_levels_are_the_group_means_of_a_given_split(rng):
    w = rng.normal(size=(3, 3, 4, 6)).astype("float32")
    threshold, alpha, beta, top_count = (t.numpy() for t in Q.dab_split(tf.constant(w)))
    a2, b2, k2 = (t.numpy() for t in Q.dab_levels(tf.constant(w), threshold))
    np.testing.assert_array_equal(a2, alpha)  # the same split gives the same (rounded) levels
    np.testing.assert_array_equal(b2, beta)
    np.testing.assert_array_equal(k2, top_count)
    shifted = threshold + 0.3  # any split: the levels are the means of each side (to 2^-8 of the larger)
    a3, b3, k3 = (t.numpy() for t in Q.dab_levels(tf.constant(w), shifted))
    flat = w.reshape(-1, 6)
    for o in range(6):
        top = flat[:, o] >= shifted[o]
        assert k3[o] == top.sum()
        grid = max(abs(a3[o]), abs(b3[o])) * 2**-8 * 1.001
        np.testing.assert_allclose(a3[o], flat[top, o].mean(), rtol=0, atol=grid)
        np.testing.assert_allclose(-b3[o], flat[~top, o].mean(), rtol=0, atol=grid)


def test_dab_refresh_every_sorts_only_every_nth_call_and_keeps_the_hard_form_exact(rng):
    q = Q.DistributionAwareSign(refresh_every=3)
    w = tf.Variable(rng.normal(size=(3, 3, 2, 4)).astype("float32"))
    q(w)
    first = q._threshold.numpy().copy()
    np.testing.assert_array_equal(first, Q.dab_split(w)[0].numpy())  # call 0: exact
    w.assign_add(0.5 * tf.ones_like(w))  # every weight moves up: the exact threshold moves
    y = q(w).numpy()  # call 1: cached threshold, fresh levels
    np.testing.assert_array_equal(q._threshold.numpy(), first)
    alpha, beta, _ = (t.numpy() for t in Q.dab_levels(w, first))
    np.testing.assert_array_equal(y, np.where(w.numpy() >= first, alpha, -beta))
    q(w)
    q(w)  # call 3: refreshed
    np.testing.assert_array_equal(q._threshold.numpy(), Q.dab_split(w)[0].numpy())
    q.hard_mode = True
    threshold, alpha, beta, _ = (t.numpy() for t in Q.dab_split(w))
    np.testing.assert_allclose(q(w).numpy(), np.where(w.numpy() >= threshold, alpha, -beta), rtol=1e-6)
    config = q.get_config()
    assert config["refresh_every"] == 3 and Q.DistributionAwareSign.from_config(config).refresh_every == 3
    with pytest.raises(ValueError, match="refresh_every"):
        Q.DistributionAwareSign(refresh_every=0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Q.SelfBinarizingSign(),
        lambda: Q.SelfBinarizingSign(normalize=True),
        lambda: Q.BoundedRectifier(offset=0.3),
        lambda: Q.BoundedRectifier(symmetric=True),
    ],
    ids=["sbn", "sbn_normalized", "abr", "abr_symmetric"],
)
def test_hard_forward_blend_keeps_the_soft_gradient(rng, make):
    # q = soft + h·stopgrad(hard − soft): at h = 1 the forward is exactly the hard form, at any h
    # the gradient (input and slope) is the soft form's, h = 0.25 blends the values linearly.
    x = tf.constant(rng.normal(size=(40, 3, 4)).astype("float32"))
    q = make()
    q(x)
    sharpness.set(q, "v", 2.5)
    if isinstance(q, Q.BoundedRectifier):
        q.slope.assign([0.5, 1.0, 2.0, 4.0])
    upstream = tf.constant(rng.normal(size=(40, 3, 4)).astype("float32"))

    def forward_and_gradients(h):
        sharpness.set(q, "h", h)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = q(x)
            loss = tf.reduce_sum(y * upstream)
        return y.numpy(), [g.numpy() for g in tape.gradient(loss, [x, *q.trainable_weights])]

    soft, soft_grads = forward_and_gradients(0.0)
    blended, blended_grads = forward_and_gradients(0.25)
    hard_forward, hard_grads = forward_and_gradients(1.0)
    q.hard_mode = True
    np.testing.assert_array_equal(hard_forward, q(x).numpy())
    np.testing.assert_allclose(blended, soft + 0.25 * (hard_forward - soft), rtol=1e-6, atol=1e-6)
    for g0, g1, g2 in zip(soft_grads, blended_grads, hard_grads):
        assert np.abs(g0).sum() > 0
        np.testing.assert_array_equal(g0, g1)
        np.testing.assert_array_equal(g0, g2)
