r"""What each tfbin quantizer *is*, once for the Keras 2 and the Keras 3 path.

One mixin per quantizer concept holds everything about it that does not depend on the framework:
its docstring (formula, arguments, defaults, references), `sharpness_defaults`, the handling of
its `__init__` arguments, `build` (with the framework's `constant_initializer`), `soft`, `hard`
and `get_config`. The math itself is `tfbin.formulas`'.

The public classes put a mixin before their framework's `SoftHardQuantizer`
(`tfbin.quantizers.EDESign(EDEForms, SoftHardQuantizer)`, the same in `tfbin.keras3`) and add
only framework glue: registration, `constant_initializer`, how the sharpness weight of a role is
returned by `sharpness(role)` (Keras 2: the variable, which callers may `.assign`; Keras 3: its
value) and the aggregation of DAB's split weights (`tfbin.frameworks` builds the classes of both
paths from one list, `QUANTIZERS`). The mixins read a sharpness value as a TensorFlow
tensor with `sharpness_value(role)`, which both paths need before it enters a `tf.custom_gradient`.

The lookups of named sharpness values over a list of quantizers (`sharpness_variables`,
`sharpness_of`, `set_sharpness`) are here too: `tfbin.sharpness` and `tfbin.keras3.sharpness`
differ only in how they find a model's quantizers.

This module imports TensorFlow and `tfbin.formulas`, nothing of larq, tf-keras or Keras.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfbin import formulas

__all__ = [
    "sharpness_names_in",
    "sharpness_variables",
    "sharpness_of",
    "set_sharpness",
    "SoftHardForms",
    "SelfBinarizingForms",
    "EDEForms",
    "LibraForms",
    "BoundedRectifierForms",
    "DistributionAwareForms",
]


class SoftHardForms:
    """A quantizer with a soft (training) and a hard (deployed) form, shaped by sharpness weights.

    Subclasses implement `soft(x)` and `hard(x)` and list the sharpness values they read in
    `sharpness_defaults` (`{role: initial value}`). Each role is a non-trainable float32 scalar
    weight, created in `build()` under a *name* the user may choose (`sharpness_names={role:
    name}`, default: the role); `tfbin.sharpness.set(model, name, value)` and
    `SharpeningScheduler` set every weight of that name in a model. Because they are weights, the
    values are saved with the model, restored by checkpoints and mirrored under distribution
    strategies. Read them in `soft`/`hard` with `self.sharpness_value(role)` (a tensor).

    Which form runs is decided when the model is traced: `hard_mode` is a trace-time flag that
    `tfbin.hard(model)` (Keras 2) or `tfbin.keras3.hard(model)` sets. `hard(x)` must be what the
    deployed model computes, written so that Larq Compute Engine fuses it: ±1 with
    `tfbin.formulas.sign` (larq's `lq.math.sign`), or ±scale per output channel for kernels.

    # Arguments
        sharpness_names: `{role: weight name}` for the roles to rename.
    """

    precision = 1
    sharpness_defaults: dict[str, float] = {}

    def __init__(self, sharpness_names: dict[str, str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.sharpness_names = formulas.sharpness_names(type(self).__name__, self.sharpness_defaults, sharpness_names)
        self.hard_mode = False  # trace-time switch, flipped by `hard(model)`
        self._sharpness_weights = {}

    def constant_initializer(self, value):
        """The framework's initializer of a weight to the constant `value` (framework glue)."""
        raise NotImplementedError(f"{type(self).__name__} must implement constant_initializer(value).")

    def build(self, input_shape):
        for role, initial in self.sharpness_defaults.items():
            self._sharpness_weights[role] = self.add_weight(
                name=self.sharpness_names[role],
                shape=(),
                dtype="float32",
                initializer=self.constant_initializer(initial),
                trainable=False,
            )
        super().build(input_shape)

    def sharpness_value(self, role: str) -> tf.Tensor:
        """The value of the sharpness weight that plays `role` (e.g. `"v"`, `"t"`), as a tensor."""
        return tf.convert_to_tensor(self._sharpness_weights[role])

    @property
    def sharpness_weights(self) -> dict:
        """`{name: weight}` of this quantizer's sharpness values (names, not roles)."""
        return {self.sharpness_names[r]: w for r, w in self._sharpness_weights.items()}

    def soft(self, x):
        raise NotImplementedError(f"{type(self).__name__} must implement soft(x).")

    def hard(self, x):
        raise NotImplementedError(f"{type(self).__name__} must implement hard(x).")

    def call(self, inputs):
        return self.hard(inputs) if self.hard_mode else self.soft(inputs)

    def get_config(self):
        config = super().get_config()
        renamed = {r: n for r, n in self.sharpness_names.items() if r != n}
        if renamed:
            config["sharpness_names"] = renamed
        return config


def _check_kernel_shape(owner: str, input_shape, what: str, instead: str):
    if len(input_shape) < 2:
        raise ValueError(
            f"{owner} is a kernel quantizer ({what}); it got a tensor of shape {input_shape}. {instead}"
        )


class SelfBinarizingForms(SoftHardForms):
    r"""Self-Binarizing Networks' smooth sign, sharpened during training.

    \[
    q_\text{soft}(x) = \tanh(v x) + h\,\bigl(\operatorname{sign}(x) - \tanh(v x)\bigr), \qquad
    q_\text{hard}(x) = \operatorname{sign}(x)
    \]

    The soft form is differentiated as it is (no straight-through estimator; the blend's step is
    a stop-gradient, so the gradient is `v·(1 − tanh²(v·x))` whatever `h` is); as the sharpness
    `v` grows (on a schedule) it approaches the hard sign, which evaluation and export use.
    Works for activations and for latent weights.

    With `normalize=True` (for kernels) `x` is first divided by the mean `|x|` of its output
    channel (the last axis; a constant, no gradient): `tanh(v·w/mean_o|w|)`. Latent weights
    (Glorot scale ≤ 0.08) and batch-normalized activations (scale ~1) then sit on the same
    scale, so one schedule of `v` sharpens both at the same pace. Without it a shared `v`
    leaves no time when both are learnable: by the end of a 1 → 1000 schedule 97 % of raw
    conv weights sit in tanh's flat tails. The hard form is unchanged (`sign(w/m) = sign(w)`).

    The hard-forward weight `h` ∈ [0, 1] (default 0, the paper's pure form) blends in the hard
    forward while keeping the soft gradient; the `self_binarizing` recipe's `finish` sets
    `h = 1` for the last part of training (a tfbin addition, see the recipe).

    # Arguments
        v: name of the sharpness weight (initial value 1.0).
        normalize: divide by the per-output-channel mean absolute value first (kernels; default False).
        h: name of the hard-forward weight (initial value 0.0).

    # References
        - Lahoud, Achanta, Márquez-Neila, Süsstrunk, [Self-Binarizing
          Networks](https://arxiv.org/abs/1902.00730), 2019
    """

    sharpness_defaults = dict(formulas.SELF_BINARIZING_SHARPNESS)

    def __init__(self, v: str = "v", normalize: bool = False, h: str = "h", **kwargs):
        kwargs.setdefault("sharpness_names", {"v": v, "h": h})
        super().__init__(**kwargs)
        self.normalize = bool(normalize)

    def soft(self, x):
        if self.normalize:
            x = formulas.channel_normalize(x)
        v, h = (self.sharpness_value(r) for r in ("v", "h"))
        return formulas.blended_tanh(x, v, h)  # sign(x/m) = sign(x): the blend's step is unchanged

    def hard(self, x):
        return formulas.sign(x)

    def get_config(self):
        config = super().get_config()
        if self.normalize:
            config["normalize"] = True
        return config


class EDEForms(SoftHardForms):
    r"""The sign with IR-Net's Error Decay Estimator (EDE) as its gradient.

    \[
    q(x) = \operatorname{sign}(x), \qquad
    \frac{\partial q}{\partial x} = k\, t\, \bigl(1 - \tanh^2(t x)\bigr)
    \]

    The forward is the sign in both forms; the backward is the derivative of `k·tanh(t·x)`.
    `t` grows log-linearly from `T_min` to `T_max` over training and `k = max(1/t, 1)`
    (`tfbin.schedules.ede`). `sign(0) = +1` (larq's convention; PyTorch's is 0).

    # Arguments
        t, k: names of the sharpness weights (initial values 0.1 and 10, IR-Net's `T_min` and `1/T_min`).

    # References
        - Qin, Gong, Liu, Bai, Song, Yu, Sun, [Forward and Backward Information Retention for
          Accurate Binary Neural Networks](https://arxiv.org/abs/1909.10788) (IR-Net), CVPR 2020
    """

    sharpness_defaults = dict(formulas.EDE_SHARPNESS)

    def __init__(self, t: str = "t", k: str = "k", **kwargs):
        kwargs.setdefault("sharpness_names", {"t": t, "k": k})
        super().__init__(**kwargs)

    def soft(self, x):
        return formulas.ede_sign(x, self.sharpness_value("t"), self.sharpness_value("k"))

    def hard(self, x):
        return formulas.sign(x)


class LibraForms(SoftHardForms):
    r"""IR-Net's Libra Parameter Binarization for kernels, with the EDE gradient.

    Per output channel `o` (the last kernel axis), over its `n` weights:

    \[
    \hat w = w - \operatorname{mean}_o(w), \quad
    w_\text{std} = \hat w / \operatorname{std}_o(\hat w), \quad
    s_o = 2^{\operatorname{round}(\log_2 \operatorname{mean}_o |w_\text{std}|)}, \quad
    q(w) = s_o \operatorname{sign}(w_\text{std})
    \]

    The balancing and standardization are differentiated through; `s_o` is a constant
    (stop-gradient); the sign has the EDE gradient (`EDESign`). `std` is the unbiased (n−1)
    estimate, as `torch.std` in the official code. The hard form is `s_o · sign(ŵ)`: every
    weight of channel `o` is ±`s_o`, which LCE folds into the binary conv's output multiplier.
    Kernel quantizer only.

    # Arguments
        t, k: names of the EDE sharpness weights (initial values 0.1 and 10).
        epsilon: floor of the standard deviation (default 1e-8).

    # References
        - Qin et al., [Forward and Backward Information Retention for Accurate Binary Neural
          Networks](https://arxiv.org/abs/1909.10788) (IR-Net), CVPR 2020 (official code
          `htqin/IR-Net`, `modules/ir_1w1a.py`)
    """

    sharpness_defaults = dict(formulas.EDE_SHARPNESS)

    def __init__(self, t: str = "t", k: str = "k", epsilon: float = 1e-8, **kwargs):
        kwargs.setdefault("sharpness_names", {"t": t, "k": k})
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        _check_kernel_shape("LibraSign", input_shape, "per output channel statistics",
                            "Use EDESign as the input quantizer.")
        super().build(input_shape)

    def soft(self, w):
        w_std, scale = formulas.libra_standardize(w, self.epsilon)
        return formulas.ede_sign(w_std, self.sharpness_value("t"), self.sharpness_value("k")) * scale

    def hard(self, w):
        return formulas.libra_hard(w, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


class BoundedRectifierForms(SoftHardForms):
    r"""Adjustable Bounded Rectifier (ABR): a learnable per-channel slope, sharpened on a schedule.

    \[
    q_\text{soft}(x) = \operatorname{clip}(v a x + c, 0, 1), \qquad
    q_\text{hard}(x) = \mathbb 1[v a x + c \ge 0.5] \in \{0, 1\}
    \]

    `a` (one per channel of the last axis) is trainable and kept ≥ `floor` (a constraint
    applied after each optimizer step); `tfbin.losses.SlopeGrowth` can push it up. `v` is a
    sharpness value that `SharpeningScheduler` grows on a schedule: the paper's "weight growing
    constraint" encourages binary units but its form is not published, and a loss on the
    slopes alone cannot make them grow within a short run (its push `λ/(n·a²)` per slope is
    below Adam's ε for thousands of slopes), while a BatchNorm scale before the unit could undo
    any slowly learned growth. A schedule multiplies every slope by the same factor whatever the
    optimizer does, so the unit becomes the step it is deployed as: at `v·a = 50` only inputs
    within 0.01 of the threshold are not yet 0 or 1. With `symmetric=True`: soft
    `clip(v a x, −1, 1)`, hard `sign(x)`.

    The hard-forward weight `h` blends the step into the forward while keeping the ramp's
    gradient: `q = ramp + h·stopgrad(step − ramp)`, the step's values with the ramp's gradient
    when `h = 1` (the `abr` recipe's `finish`, a tfbin addition).

    The {0, 1} hard form is not a ±1 binary activation, so LCE does not fuse it as it is; the
    Keras 2 exporter rewrites it exactly into ±1 activations `sign(x − θ)`,
    `θ = (0.5 − c)/(v a)`, with the offset folded into the next layer's bias. The symmetric form
    fuses directly. The paper's exact parametrisation is not published; this is a reading of its
    abstract and introduction.

    # Arguments
        initial_slope: initial value of `a` (default 1.0, ≥ `floor`).
        floor: the smallest slope allowed (default 0.01, > 0), so that the hard form stays a
            threshold at `x = (0.5 − c)/(v a)` with the same orientation.
        offset: `c` (default 0.5; ignored when `symmetric`).
        symmetric: ±1 output instead of {0, 1} (default False).
        v: name of the sharpness weight (initial value 1.0).
        h: name of the hard-forward weight (initial value 0.0).

    # References
        - Wu, Lin, Tang, [Adjustable Bounded Rectifiers: Towards Deep Binary
          Representations](https://arxiv.org/abs/1511.06201), 2015
    """

    sharpness_defaults = dict(formulas.BOUNDED_RECTIFIER_SHARPNESS)

    def __init__(self, initial_slope: float = 1.0, floor: float = 0.01, offset: float = 0.5,
                 symmetric: bool = False, v: str = "v", h: str = "h", **kwargs):
        if not floor > 0:
            raise ValueError(f"BoundedRectifier floor must be > 0, got {floor}.")
        if not initial_slope >= floor:
            raise ValueError(f"BoundedRectifier initial_slope ({initial_slope}) must be >= floor ({floor}).")
        kwargs.setdefault("sharpness_names", {"v": v, "h": h})
        super().__init__(**kwargs)
        self.initial_slope = float(initial_slope)
        self.floor = float(floor)
        self.offset = float(offset)
        self.symmetric = bool(symmetric)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("BoundedRectifier needs a known channel (last) dimension.")
        self.slope = self.add_weight(
            name="slope",
            shape=(channels,),
            initializer=self.constant_initializer(self.initial_slope),
            constraint=formulas.slope_floor(self.floor),
            trainable=True,
        )
        super().build(input_shape)

    def effective_slope(self):
        """`v·a` per channel: the slope the unit computes with."""
        return self.sharpness_value("v") * tf.convert_to_tensor(self.slope)

    def step_threshold(self):
        """`θ = (½ − offset)/(v·a)` per channel: the {0,1} hard form is the step `1[x ≥ θ]`
        (`v·a·x + offset ≥ ½`), what the exporters rewrite as `(sign(x − θ) + 1)/2`."""
        return (0.5 - self.offset) / self.effective_slope()

    def soft(self, x):
        return formulas.blended_ramp(x, self.effective_slope(), self.sharpness_value("h"), self.symmetric, self.offset)

    def hard(self, x):
        return formulas.bounded_rectifier_hard(x, self.effective_slope(), self.symmetric, self.offset)

    def get_config(self):
        return {
            **super().get_config(),
            "initial_slope": self.initial_slope,
            "floor": self.floor,
            "offset": self.offset,
            "symmetric": self.symmetric,
        }


class DistributionAwareForms(SoftHardForms):
    r"""Distribution-Aware Binarization (DAB) of kernels: two levels per output filter.

    Per output channel `o`, with the split of `tfbin.formulas.dab_split` (the least-squares
    optimal two-level quantizer: `K*` maximizes `S_K²/K + (S − S_K)²/(n − K)`, levels are the
    group means, rounded to 8 significant bits so that the deployed binary conv and the Keras
    model agree exactly):

    \[
    q(w) = \begin{cases} \alpha_o & w \ge \theta_o \\ -\beta_o & \text{otherwise} \end{cases}
    \;=\; \tfrac{\alpha_o+\beta_o}{2}\operatorname{sign}(w - \theta_o) + \tfrac{\alpha_o-\beta_o}{2}
    \]

    Gradient: the official code's rule (`updateDualGradWeight`), `∂q/∂w = |α_o|·1[|w|<1] + 1/K`
    in the top group and `|β_o|·1[|w|<1] + 1/(n−K)` in the rest. Its extra factor
    `(1 − 1/C_in)` belongs to the in-place mean-centring the official code does before
    binarizing, which is not this quantizer's job (the `dab` recipe offers it as a kernel
    constraint, `mean_center=True`); a constant per layer, which Adam's per-weight scaling
    cancels, so it is left out.

    Deviations of the official code, on purpose not copied: it takes α, β as mean **absolute**
    values of the groups (not the least-squares means; they differ when a group straddles 0)
    and its top group uses a strict `>` at the threshold (one element fewer than the criterion's
    `K`, an off-by-one).

    Two levels per channel are not ±scale, so LCE does not fuse this kernel as it is; the Keras 2
    exporter rewrites it exactly as `(α+β)/2 · bconv(x, sign(w − θ)) + (α−β)/2 · bconv(x, 1)`.
    Forward values are the same in the soft and hard forms. Kernel quantizer only.

    Cost: the exact split sorts every output channel's weights at every training step, as the
    official code does. On CPU that sort (TensorFlow's TopKV2 with k = n) dominates the
    quantizer's cost (`dab_split_ms`: docs/benchmarks.md#training-cost-per-step). With
    `refresh_every=N > 1` the soft (training) form sorts every N-th call only and keeps the
    threshold in between (in two weights, `split_threshold` and `split_calls`, kept with the
    model and identical on every replica); the levels are still the exact least-squares means of
    the current weights on each side of it (`dab_levels`, O(n)), so only the split point can lag
    by up to N − 1 steps. The hard form (evaluation, export) always computes the exact split.

    # Arguments
        refresh_every: training calls between two exact splits (default 1: every call, the paper's rule).

    # References
        - Prabhu, Batchu, Munagala, Gajawada, Namboodiri, [Distribution-Aware Binarization of
          Neural Networks for Sketch Recognition](https://arxiv.org/abs/1804.02941), WACV 2018
    """

    def __init__(self, refresh_every: int = 1, **kwargs):
        super().__init__(**kwargs)
        if int(refresh_every) != refresh_every or refresh_every < 1:
            raise ValueError(f"DistributionAwareSign refresh_every must be an integer >= 1, got {refresh_every!r}.")
        self.refresh_every = int(refresh_every)

    def add_split_weights(self, channels: int):
        """`(threshold, calls)`: the framework's weights that keep the split between refreshes
        (float32 `(channels,)` and int64 scalar, zeros, non-trainable, first replica's value)."""
        raise NotImplementedError(f"{type(self).__name__} must implement add_split_weights(channels).")

    def build(self, input_shape):
        _check_kernel_shape("DistributionAwareSign", input_shape, "per output filter split",
                            "Use a sign quantizer for activations.")
        if self.refresh_every > 1:
            self._threshold, self._calls = self.add_split_weights(input_shape[-1])
        super().build(input_shape)

    def split(self, w):
        """The split of the soft form: exact at every call, or refreshed every `refresh_every` calls."""
        if self.refresh_every == 1:
            return formulas.dab_split(w)
        return formulas.dab_refreshed_split(w, self._threshold, self._calls, self.refresh_every)

    def soft(self, w):
        return formulas.dab_soft(w, self.split(w))

    def hard(self, w):
        return formulas.dab_hard(w)

    def get_config(self):
        config = super().get_config()
        if self.refresh_every != 1:
            config["refresh_every"] = self.refresh_every
        return config


# Named sharpness values over the quantizers of a model, whichever framework found them.


def sharpness_names_in(found) -> list[str]:
    """The sharpness names used by the quantizers `found`, sorted."""
    return sorted({name for q in found for name in q.sharpness_weights})


def sharpness_variables(found, name: str, owner) -> list:
    """All sharpness weights called `name` among the quantizers `found` (those of the model
    `owner`); a KeyError naming the names there are (and the unbuilt quantizers) if none."""
    unbuilt = [q.name for q in found if not q.built]
    variables = [w for q in found for n, w in q.sharpness_weights.items() if n == name]
    if not variables:
        known = sharpness_names_in(found)
        hint = f" Quantizers not built yet (call the model once first): {unbuilt}." if unbuilt else ""
        raise KeyError(
            f"No sharpness value named {name!r} in {getattr(owner, 'name', owner)!r}; "
            f"it has {known or 'none'}.{hint}"
        )
    return variables


def sharpness_of(found, name: str, owner) -> float:
    """The value of sharpness `name` among the quantizers `found`; an error if its copies disagree."""
    values = {float(np.float32(v.numpy())) for v in sharpness_variables(found, name, owner)}
    if len(values) != 1:
        raise ValueError(f"Sharpness {name!r} has different values in {owner.name!r}: {sorted(values)}.")
    return values.pop()


def set_sharpness(found, name: str, value: float, owner) -> None:
    """Set every sharpness weight called `name` among the quantizers `found` to `value`."""
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"Sharpness {name!r} must be finite, got {value}.")
    for variable in sharpness_variables(found, name, owner):
        variable.assign(value)
