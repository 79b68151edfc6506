"""What tfbin's quantizers compute: the one copy of their math, shared by the Keras 2 and Keras 3 paths.

The Keras 2 quantizers (`tfbin.quantizers`, larq `Quantizer` subclasses) and the Keras 3 ones
(`tfbin.keras3`) are thin glue around these functions: sharpness weights, the soft/hard switch and
serialization differ between the two frameworks, the formulas do not.

The formulas are written with TensorFlow ops, because both paths hand them TensorFlow tensors
(Keras 3 on its TensorFlow backend, where `keras.ops.custom_gradient` *is* `tf.custom_gradient`),
so the same kernels run on both and the Keras 2 path keeps computing exactly what it did.

This module imports TensorFlow and nothing of larq, tf-keras or Keras: importing it never selects
a Keras for `tf.keras`.
"""
from __future__ import annotations

import math

import tensorflow as tf

__all__ = [
    "EDE_T_MIN",
    "EDE_T_MAX",
    "BLRNET_LOGIT_SCALE",
    "SELF_BINARIZING_SHARPNESS",
    "EDE_SHARPNESS",
    "BOUNDED_RECTIFIER_SHARPNESS",
    "sharpness_names",
    "channel_axes",
    "mean_centered_clip",
    "sign",
    "ste_sign",
    "ede_sign",
    "blended_tanh",
    "channel_normalize",
    "libra_standardize",
    "libra_hard",
    "blended_ramp",
    "slope_floor",
    "bounded_rectifier_hard",
    "dab_split",
    "dab_levels",
    "dab_refreshed_split",
    "dab_soft",
    "dab_hard",
]

# IR-Net's EDE range (the paper's T_min and T_max): the one place these defaults live.
EDE_T_MIN, EDE_T_MAX = 0.1, 10.0

# BLRNet's k of the kernel's θ/k parameterization (`tfbin.blrnet`'s docstring): chosen by measurement.
BLRNET_LOGIT_SCALE = 100.0

# Each quantizer's sharpness roles and their initial values (`{role: value}`).
SELF_BINARIZING_SHARPNESS = {"v": 1.0, "h": 0.0}
EDE_SHARPNESS = {"t": EDE_T_MIN, "k": 1.0 / EDE_T_MIN}
BOUNDED_RECTIFIER_SHARPNESS = {"v": 1.0, "h": 0.0}


def sharpness_names(owner: str, defaults: dict, names: dict | None) -> dict:
    """`{role: weight name}` for every role of `defaults`, from the user's `names` (roles not
    named keep their role as name); a clear error for an unknown role or a name that is not an
    identifier. `owner` is the quantizer's class name, for the message."""
    names = dict(names or {})
    unknown = set(names) - set(defaults)
    if unknown:
        raise ValueError(f"{owner} has no sharpness role(s) {sorted(unknown)}; its roles are {sorted(defaults)}.")
    for role, name in names.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"Sharpness name for role {role!r} must be an identifier, got {name!r}.")
    return {role: names.get(role, role) for role in defaults}


def channel_axes(x):
    """All axes but the last (output channels of a Keras kernel)."""
    return list(range(x.shape.rank - 1))


def mean_centered_clip(w, clip_value: float):
    """`clip(w − mean_{c_in}(w), −c, c)`: a kernel centred over its input channels (axis −2, for
    every output channel and kernel position), then clipped (DAB's official code's step)."""
    if w.shape.rank is not None and w.shape.rank < 2:
        raise ValueError(
            f"MeanCenteredClip centres a kernel over its input channels (axis -2); it got a tensor of "
            f"shape {w.shape}. Use it as a Conv/Dense kernel_constraint, not on a bias or a scale."
        )
    w = w - tf.reduce_mean(w, axis=-2, keepdims=True)
    return tf.clip_by_value(w, -clip_value, clip_value)


def sign(x):
    """`+1` for `x ≥ 0`, `−1` otherwise, as `tf.sign(tf.sign(x) + 0.1)`: larq's `lq.math.sign`,
    the form Larq Compute Engine fuses into binary ops. Its gradient is zero."""
    return tf.sign(tf.sign(x) + 0.1)


def ste_sign(x, clip_value: float | None = 1.0):
    """`sign(x)` forward, the straight-through estimator `1[|x| ≤ clip_value]` backward (no clip
    with `None`): larq's `ste_sign`, op for op."""

    @tf.custom_gradient
    def _call(x):
        def grad(dy):
            if clip_value is None:
                return dy
            return tf.where(tf.math.less_equal(tf.math.abs(x), clip_value), dy, tf.zeros_like(dy))

        return sign(x), grad

    return _call(x)


def ede_sign(x, t, k):
    """`sign(x)` forward, IR-Net's EDE gradient `k·t·(1 − tanh²(t·x))` backward."""

    @tf.custom_gradient
    def _call(x):
        def grad(dy):
            # TanhGrad(y, g) = g·(1 − y²) in one fused pass; this runs on every activation.
            return tf.raw_ops.TanhGrad(y=tf.tanh(t * x), dy=dy * (k * t))

        return sign(x), grad

    return _call(x)


def blended_tanh(x, v, h):
    """`tanh(v·x) + h·(sign(x) − tanh(v·x))` forward, `v·(1 − tanh²(v·x))` backward.

    One custom-gradient op instead of autodiff through the blend: the backward is the soft
    form's derivative whatever `h` is (the blend's hard part carries no gradient), one fused
    `TanhGrad` pass over the activations."""

    @tf.custom_gradient
    def _call(x):
        y = tf.tanh(v * x)

        def grad(dy):
            return tf.raw_ops.TanhGrad(y=y, dy=dy * v)

        return y + h * (sign(x) - y), grad

    return _call(x)


def channel_normalize(x):
    """`x / mean_o|x|` per output channel `o` (the last axis), the mean a constant (no gradient)."""
    return x / tf.stop_gradient(tf.reduce_mean(tf.abs(x), channel_axes(x), keepdims=True) + 1e-12)


def libra_standardize(w, epsilon: float):
    """IR-Net's Libra-PB balance and standardization of a kernel, per output channel `o`:
    `(w_std, s)` with `w_std = (w − mean_o w) / std_o` (unbiased std, floored at `epsilon`) and
    the power-of-two scale `s_o = 2^round(log2 mean_o |w_std|)` (a constant: stop-gradient)."""
    axes = channel_axes(w)
    n = tf.cast(tf.reduce_prod(tf.shape(w)[:-1]), w.dtype)
    w_hat = w - tf.reduce_mean(w, axes, keepdims=True)
    variance = tf.reduce_sum(tf.square(w_hat), axes, keepdims=True) / tf.maximum(n - 1.0, 1.0)
    # sqrt's gradient is infinite at 0: a constant channel (variance 0, or underflowing to 0)
    # would turn the whole kernel's gradient into NaN. Below epsilon² the floor holds.
    std = tf.sqrt(tf.maximum(variance, epsilon**2))
    w_std = w_hat / (std + epsilon)
    mean_abs = tf.reduce_mean(tf.abs(w_std), axes, keepdims=True)
    scale = tf.stop_gradient(tf.pow(2.0, tf.round(tf.math.log(mean_abs) / tf.math.log(2.0))))
    return w_std, scale


def libra_hard(w, epsilon: float):
    """Libra-PB's deployed kernel `s_o · sign(w_std)`: every weight of channel `o` is ±`s_o`."""
    w_std, scale = libra_standardize(w, epsilon)
    return sign(w_std) * scale


def blended_ramp(x, slope, h, symmetric: bool, offset: float):
    """The bounded rectifier's ramp blended with its step, as one custom-gradient op.

    Forward `r + h·(step − r)` with `r = clip(s·x + c, 0, 1)` and `step = 1[s·x + c ≥ 0.5]`
    (symmetric: `r = clip(s·x, −1, 1)`, `step = sign(x)`); backward the ramp's derivative,
    `∂/∂x = s·1[inside]` and `∂/∂s = Σ x·1[inside]` over all axes but the channel one."""

    @tf.custom_gradient
    def _call(x, slope):
        pre = slope * x if symmetric else slope * x + offset
        inside = tf.abs(pre) < 1.0 if symmetric else (pre > 0.0) & (pre < 1.0)

        def ramp():
            return tf.clip_by_value(pre, -1.0, 1.0) if symmetric else tf.clip_by_value(pre, 0.0, 1.0)

        def step():
            return sign(x) if symmetric else tf.where(pre >= 0.5, 1.0, 0.0)

        def blend():
            r = ramp()
            return r + h * (step() - r)

        def grad(dy):
            g = tf.where(inside, dy, tf.zeros_like(dy))
            return g * slope, tf.reduce_sum(g * x, channel_axes(x))

        # A schedule's h is 0 until its finishing phase and 1 in it: only the form in use is
        # computed (the blend of both costs five more elementwise passes over the activations).
        return tf.cond(h > 0, lambda: tf.cond(h < 1, blend, step), ramp), grad

    return _call(x, slope)


def slope_floor(floor: float):
    """The constraint `a ← max(a, floor)` that keeps the bounded rectifier's slopes positive."""
    return lambda a: tf.maximum(a, floor)


def bounded_rectifier_hard(x, slope, symmetric: bool, offset: float):
    """The bounded rectifier's deployed step: `1[s·x + c ≥ 0.5]` ∈ {0, 1} with scalar constants
    (a `tf.where` LCE reads), or `sign(x)` when symmetric (`s > 0`, so `sign(s·x) = sign(x)`)."""
    if symmetric:
        return sign(x)
    return tf.where(slope * x + offset >= 0.5, 1.0, 0.0)


def dab_split(w):
    r"""Per output channel, DAB's optimal two-level split of a kernel `w` (`[..., O]`).

    For the `n` weights of channel `o` sorted in descending order, with `S_K` the sum of the `K`
    largest and `S` the total, the split maximizes `S_K²/K + (S − S_K)²/(n − K)` over
    `K ∈ [1, n−1]` — equivalently minimizes the squared error of the two-level approximation
    whose levels are the group means. Returns `(threshold, alpha, beta, top_count)`, each of
    shape `[O]`: weights `>= threshold` form the top group (level `alpha`), the rest get `−beta`.
    """
    n = w.shape[:-1].num_elements()
    if n is None or n < 2:
        raise ValueError(
            f"DistributionAwareSign needs at least 2 weights per output channel, got kernel shape {w.shape}."
        )
    # float64: the criterion is flat near its maximum, and float32 prefix sums, whose rounding
    # depends on how the cumsum kernel splits its work, could pick a different K run to run.
    # Sorting is exact in any precision and is the costly part (TopKV2 on CPU): sort float32.
    ordered = tf.cast(tf.sort(tf.transpose(tf.reshape(w, [n, -1])), axis=-1, direction="DESCENDING"), tf.float64)
    prefix = tf.cumsum(ordered, axis=-1)[:, :-1]  # S_K for K = 1..n-1, ordered is [O, n]
    total = tf.reduce_sum(ordered, axis=-1, keepdims=True)
    counts = tf.range(1, n, dtype=tf.float64)
    criterion = tf.square(prefix) / counts + tf.square(total - prefix) / (n - counts)
    best = tf.argmax(criterion, axis=-1, output_type=tf.int32)  # K* - 1
    top_count = tf.cast(best + 1, tf.float64)
    s_k = tf.gather(prefix, best, batch_dims=1)
    threshold = tf.gather(ordered, best, batch_dims=1)
    alpha = s_k / top_count
    beta = -(tf.squeeze(total, -1) - s_k) / (n - top_count)
    alpha, beta = _round_levels(alpha, beta)
    threshold, alpha, beta, top_count = (tf.cast(t, w.dtype) for t in (threshold, alpha, beta, top_count))
    return threshold, alpha, beta, top_count


def _round_levels(alpha, beta):
    """Round both levels to 8 significant bits on a common grid, so that convolutions with them
    (sums of ±level) are exact in float32, as with IR-Net's power-of-two scales: TensorFlow's
    float conv and LCE's integer popcount then agree, instead of differing by rounding that
    flips signs downstream. A level moves by at most 2^-8 of the larger one."""
    largest = tf.maximum(tf.abs(alpha), tf.abs(beta))
    grid = tf.pow(tf.constant(2.0, tf.float64), tf.floor(tf.math.log(tf.maximum(largest, 1e-30)) / math.log(2.0)) - 7.0)
    return tf.round(alpha / grid) * grid, tf.round(beta / grid) * grid


def dab_levels(w, threshold):
    """The least-squares levels of a given split: `(alpha, beta, top_count)` per output channel,
    `alpha` the mean of the weights `>= threshold`, `−beta` the mean of the rest (O(n), no sort)."""
    n = w.shape[:-1].num_elements()
    flat = tf.cast(tf.reshape(w, [n, -1]), tf.float64)
    top = flat >= tf.cast(threshold, tf.float64)
    top_count = tf.reduce_sum(tf.cast(top, tf.float64), axis=0)
    top_sum = tf.reduce_sum(tf.where(top, flat, 0.0), axis=0)
    rest_sum = tf.reduce_sum(flat, axis=0) - top_sum
    # A channel whose weights all moved to one side keeps a split of at least one weight each.
    alpha = top_sum / tf.maximum(top_count, 1.0)
    beta = -rest_sum / tf.maximum(n - top_count, 1.0)
    alpha, beta = _round_levels(alpha, beta)
    return tuple(tf.cast(t, w.dtype) for t in (alpha, beta, top_count))


def dab_refreshed_split(w, threshold, calls, every: int):
    """DAB's split recomputed exactly every `every`-th call only: `threshold` and `calls` are the
    quantizer's state variables (`[O]` float, scalar int64). On the other calls the stored
    threshold is kept and the levels are the exact group means around it (`dab_levels`)."""

    def exact():
        value = dab_split(w)[0]
        threshold.assign(value)
        return value

    current = tf.cond(tf.equal(calls % every, 0), exact, lambda: tf.identity(threshold))
    calls.assign_add(1)
    return (current, *dab_levels(w, current))


def dab_soft(w, split):
    """DAB's training form: the two levels forward (`alpha` where `w ≥ threshold`, else `−beta`,
    from `split = (threshold, alpha, beta, top_count)`), the official code's gradient backward:
    `|α|·1[|w|<1] + 1/K` in the top group and `|β|·1[|w|<1] + 1/(n−K)` in the rest."""
    threshold, alpha, beta, top_count = (tf.stop_gradient(t) for t in split)
    n = w.shape[:-1].num_elements()
    top_count = tf.clip_by_value(top_count, 1.0, n - 1.0)

    @tf.custom_gradient
    def _call(w):
        top = w >= threshold

        def grad(dy):
            inside = tf.cast(tf.abs(w) < 1.0, w.dtype)
            top_scale = tf.abs(alpha) * inside + 1.0 / top_count
            rest_scale = tf.abs(beta) * inside + 1.0 / (n - top_count)
            return dy * tf.where(top, top_scale, rest_scale)

        return tf.where(top, alpha, -beta), grad

    return _call(w)


def dab_hard(w):
    """DAB's deployed kernel `(α+β)/2 · sign(w − θ) + (α−β)/2` with the exact split."""
    threshold, alpha, beta, _ = dab_split(w)
    return (alpha + beta) / 2.0 * sign(w - threshold) + (alpha - beta) / 2.0
