"""The built-in recipes, as configs: what each method sets, without Keras, larq or tf-keras.

Each function here takes a recipe's parameters and returns the config of the recipe they make
(the arguments of `tfbin.recipes.Recipe`): its quantizers and kernel constraint as serialized
identifiers (`{"class_name": ..., "config": ...}`), its sharpness schedules (`tfbin.schedules`),
its auxiliary losses as configs, its layer family. The Keras 2 path makes a `tfbin.recipes.Recipe`
of a config (larq's and tfbin's Keras 2 classes, `tfbin.recipes.get`); the Keras 3 path makes the
Keras 3 twins of the same identifiers (`tfbin.keras3.binarize`). One definition per method, so
the two paths cannot drift, and `tfbin.keras3` binarizes without larq installed.

```python
tfbin.builtin_recipes.make("irnet", epochs=20)["input_quantizer"]   # {'class_name': 'tfbin>EDESign', 'config': {}}
```
"""
from __future__ import annotations

import inspect
import math
from typing import Callable

import tfbin.schedules as schedules_lib  # not `from tfbin import`: in a Keras 3 process that loads tfbin's Keras 2 API
from tfbin.formulas import BLRNET_LOGIT_SCALE

__all__ = ["LARQ_BASELINES", "SHORT_RUN_T_MIN", "SHORT_RUN_T_MAX", "Range", "Choice", "built_in", "available", "searched", "function", "make", "call", "unknown_recipe",
           "quantizer", "constraint"]

# larq's own methods, with larq's quantizers: the baselines a method is compared with ("larq's
# best" is the best of these). `ste` is the one every ratio is measured against.
LARQ_BASELINES = ("ste", "approx_sign", "swish_sign", "bireal")


def quantizer(class_name: str, **config) -> dict:
    """The identifier of a quantizer: larq's class name (`"SteSign"`) or tfbin's registered name
    (`"tfbin>EDESign"`) with its constructor arguments; each path makes its own class of it."""
    return {"class_name": class_name, "config": config}


constraint = quantizer  # a kernel constraint's identifier has the same form (`"WeightClip"`, `"tfbin>MeanCenteredClip"`)


_loss = quantizer  # and an auxiliary loss's (`"tfbin>ContrastiveMI"`)


def _config(name, input_quantizer, kernel_quantizer, kernel_constraint=None, schedules=None, update_freq="epoch",
            keep_full_precision=("first", "last"), losses=None, params=None, layer_type=None, layer_config=None) -> dict:
    """A recipe config: the arguments of `tfbin.recipes.Recipe`, by name."""
    config = dict(name=name, input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer, kernel_constraint=kernel_constraint,
                  schedules=dict(schedules or {}), update_freq=update_freq, keep_full_precision=list(keep_full_precision),
                  losses=list(losses or []), params=dict(params or {}))
    if layer_type is not None:
        config.update(layer_type=layer_type, layer_config=dict(layer_config or {}))
    return config


class Range:
    """A searched interval of a recipe parameter: uniform in `[low, high]`, or log-uniform with
    `log=True`. `default` stands in for a parameter whose factory default is None."""

    def __init__(self, low: float, high: float, log: bool = False, default: float | None = None):
        low, high = float(low), float(high)
        if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
            raise ValueError(f"A range needs finite min < max, got ({low}, {high}).")
        if log and low <= 0:
            raise ValueError(f"A log range needs min > 0, got {low}; give a positive min or log=False.")
        self.low, self.high, self.log, self.default = low, high, bool(log), default

    def __repr__(self):
        return f"Range({self.low:g}, {self.high:g}{', log=True' if self.log else ''})"

    def __eq__(self, other):
        return isinstance(other, Range) and (self.low, self.high, self.log, self.default) == (other.low, other.high, other.log, other.default)


class Choice:
    """A searched set of values of a recipe parameter."""

    def __init__(self, *values):
        if not values:
            raise ValueError("A choice needs at least one value.")
        self.values = tuple(values)

    def __repr__(self):
        return f"Choice{self.values!r}"

    def __eq__(self, other):
        return isinstance(other, Choice) and self.values == other.values


_BUILT_IN: dict[str, tuple[Callable[..., dict], dict]] = {}


def built_in(name: str, search: dict | None = None):
    """Record `f(**params) -> recipe config` as the built-in recipe `name`, with the `Range`s and
    `Choice`s `tfbin.tuning` searches for its parameters (`tfbin.recipes.register` checks them)."""

    def decorator(config_fn):
        _BUILT_IN[name] = (config_fn, dict(search or {}))
        return config_fn

    return decorator


def available() -> list[str]:
    """Names of the built-in recipes."""
    return sorted(_BUILT_IN)


def searched(name: str) -> dict:
    """The `search` a built-in recipe was recorded with."""
    return dict(_BUILT_IN[name][1])


def function(name: str) -> Callable[..., dict]:
    """The config function of a built-in recipe."""
    return _BUILT_IN[name][0]


def unknown_recipe(name, names) -> ValueError:
    """The error for a recipe name that is not among `names`."""
    if name == "pbgnet":
        return ValueError(
            "'pbgnet' is a trainer, not a recipe: PBGNet fixes its architecture and objective (the PAC-Bayes "
            "bound needs the layer structure, the training-set size and the prior) instead of binarizing a "
            "given model; use tfbin.pbgnet.PBGNet or tfbin.pbgnet.train."
        )
    return ValueError(f"Unknown recipe {name!r}; the recipes are {sorted(names)}.")


def call(name: str, factory: Callable, overrides: dict):
    """`factory(**overrides)`, where `epochs` is dropped for a factory without schedules (the
    length of training, which they ignore) and an unknown parameter is refused by name."""
    accepted = inspect.signature(factory).parameters
    overrides = dict(overrides)
    if "epochs" not in accepted:
        overrides.pop("epochs", None)
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise ValueError(f"Recipe {name!r} has no parameter(s) {unknown}; it takes {sorted(accepted)}.")
    return factory(**overrides)


def make(name: str, **overrides) -> dict:
    """The config of the built-in recipe `name` with `overrides` (its parameters; `epochs` for
    every recipe)."""
    if name not in _BUILT_IN:
        raise unknown_recipe(name, _BUILT_IN)
    return call(name, function(name), overrides)


def _need_epochs(name, epochs):
    if epochs is None:
        raise ValueError(
            f"Recipe {name!r} sharpens on a schedule whose length must be known: pass epochs=N "
            "(the number of epochs the schedules span, normally fit's epochs)."
        )
    return epochs


@built_in("ste")
def ste(clip_value: float = 1.0, keep_full_precision=("first", "last")) -> dict:
    r"""larq's baseline: `SteSign` for activations and weights, `WeightClip` on latent weights.

    \[
    q(x) = \operatorname{sign}(x), \qquad
    \frac{\partial q}{\partial x} = \mathbb 1\bigl[|x| \le c\bigr]
    \]

    for activations and kernels (+1 at 0), with the latent weights clipped to [−c, c] after
    every step, `c = clip_value`. One of `LARQ_BASELINES`: the recipe every other is compared
    with.

    # Arguments
        clip_value: `c`, where the straight-through gradient stops and the weights are clipped
            (larq's default 1).
        keep_full_precision: the layers that stay float (`Recipe`).

    # References
        - [Binarized Neural Networks: Training Deep Neural Networks with Weights and
          Activations Constrained to +1 or -1](https://arxiv.org/abs/1602.02830)
          (Courbariaux, Hubara et al., 2016)
    """
    return _config(
        "ste",
        quantizer("SteSign", clip_value=clip_value),
        quantizer("SteSign", clip_value=clip_value),
        constraint("WeightClip", clip_value=clip_value),
        keep_full_precision=keep_full_precision,
        params=dict(locals()),
    )


@built_in("approx_sign")
def approx_sign(keep_full_precision=("first", "last")) -> dict:
    r"""larq's Bi-Real Net activation baseline: `ApproxSign` activations, `SteSign` kernels
    with `WeightClip(1)`.

    Forward, activations and weights: `q(x) = sign(x)` (+1 at 0). Backward, activations: the
    derivative of Bi-Real Net's piecewise polynomial approximation of the sign,
    \[\frac{\partial q(x)}{\partial x} = \begin{cases}
      2 - 2\left|x\right| & \left|x\right| \leq 1 \\\
      0 & \left|x\right| > 1
    \end{cases}\]
    weights: the straight-through estimator clipped at 1, latent weights clipped to [-1, 1].
    One of `LARQ_BASELINES`; `bireal` adds Bi-Real Net's magnitude-aware kernels.

    # Arguments
        keep_full_precision: the layers that stay float (`Recipe`).

    # References
        - [Bi-Real Net: Enhancing the Performance of 1-bit CNNs With Improved
          Representational Capability and Advanced Training
          Algorithm](https://arxiv.org/abs/1808.00278) (Liu et al., ECCV 2018)
    """
    return _config(
        "approx_sign",
        quantizer("ApproxSign"),
        quantizer("SteSign"),
        constraint("WeightClip", clip_value=1.0),
        keep_full_precision=keep_full_precision,
        params=dict(locals()),
    )


@built_in("swish_sign")
def swish_sign(beta: float = 5.0, keep_full_precision=("first", "last")) -> dict:
    r"""larq's BNN+ baseline: `SwishSign` activations, `SteSign` kernels with `WeightClip(1)`.

    Forward, activations and weights: `q(x) = sign(x)` (+1 at 0). Backward, activations: the
    derivative of the SignSwish `2·σ(βx)·(1 + βx·(1 − σ(βx))) − 1`,
    \[\frac{\partial q_{\beta}(x)}{\partial x} = \frac{\beta\left\{2-\beta x \tanh
      \left(\frac{\beta x}{2}\right)\right\}}{1+\cosh (\beta x)}\]
    weights: the straight-through estimator clipped at 1, latent weights clipped to [-1, 1]
    (BNN+'s regularizers and its trainable β are not part of larq's quantizer, nor of this
    recipe). One of `LARQ_BASELINES`.

    # Arguments
        beta: the SignSwish's sharpness (larq's default 5); larger values approximate the
            sign's derivative more closely.
        keep_full_precision: the layers that stay float (`Recipe`).

    # References
        - [BNN+: Improved Binary Network Training](https://arxiv.org/abs/1812.11800)
          (Darabi et al., 2018)
    """
    return _config(
        "swish_sign",
        quantizer("SwishSign", beta=beta),
        quantizer("SteSign"),
        constraint("WeightClip", clip_value=1.0),
        keep_full_precision=keep_full_precision,
        params=dict(locals()),
    )


@built_in("bireal")
def bireal(keep_full_precision=("first", "last")) -> dict:
    r"""larq's Bi-Real Net: `ApproxSign` activations, `MagnitudeAwareSign` kernels with
    `WeightClip(1)`, the quantizers of larq-zoo's `BiRealNet` (`input_quantizer="approx_sign"`,
    `kernel_quantizer="magnitude_aware_sign"`, `kernel_constraint="weight_clip"`).

    Activations as `approx_sign`. Kernels: `q(W)_o = mean(|W_o|)·sign(W_o)` per output
    channel `o`, the scale with a stopped gradient, `sign`'s gradient the straight-through
    estimator clipped at 1. The scale folds into LCE's output multiplier: every binarized layer
    still exports as one `LceBconv2d`. Bi-Real Net's architecture (a real-valued shortcut
    around every binary conv: `tfbin.models.build("birealnet")`) and its two-step training
    (a float net with clipped activations first) are not part of the recipe. One of
    `LARQ_BASELINES`.

    # Arguments
        keep_full_precision: the layers that stay float (`Recipe`).

    # References
        - [Bi-Real Net: Enhancing the Performance of 1-bit CNNs With Improved
          Representational Capability and Advanced Training
          Algorithm](https://arxiv.org/abs/1808.00278) (Liu et al., ECCV 2018)
    """
    return _config(
        "bireal",
        quantizer("ApproxSign"),
        quantizer("MagnitudeAwareSign"),
        constraint("WeightClip", clip_value=1.0),
        keep_full_precision=keep_full_precision,
        params=dict(locals()),
    )


def _finishing(epochs, finish):
    """`h`: 0, then 1 (hard forward, soft gradient) for the last `finish` fraction of `epochs`."""
    if not 0 <= finish < 1:
        raise ValueError(f"finish is a fraction of training: it must lie in [0, 1), got {finish}.")
    start = (1.0 - finish) * epochs
    return schedules_lib.Step(0.0, 1.0, every=start, epochs=start)


def _sharpening(start, end, epochs, sharpen, warmup=0.0):
    """Held at `start` for the first `warmup` fraction of `epochs`, geometric from `start` to
    `end` over the next `sharpen` fraction, then held at `end`: the net trains its last part in
    (nearly) the form it is deployed in."""
    if not 0 < sharpen <= 1 or not 0 <= warmup < 1 or warmup + sharpen > 1 + 1e-9:
        raise ValueError(
            f"warmup ({warmup}) and sharpen ({sharpen}) are fractions of training: warmup in [0, 1), "
            "sharpen in (0, 1], and together at most 1."
        )
    schedule = schedules_lib.Exponential(start, end, sharpen * epochs)
    return schedules_lib.Delayed(schedule, warmup * epochs) if warmup else schedule


_SHAPE = {  # every point valid: warmup + sharpen <= 1
    "sharpen": Range(0.25, 0.75),
    "warmup": Range(0.0, 0.25),
    "finish": Range(0.0, 0.8),
}


@built_in("self_binarizing", search={
    "v_end": Range(1.0, 100.0, log=True), "v_kernel_end": Range(1.0, 100.0, log=True), **_SHAPE,
})
def self_binarizing(
    epochs=None,
    v_start: float = 1.0,
    v_end: float = 3.0,
    sharpen: float = 0.2965,
    warmup: float = 0.23,
    finish: float = 0.4564,
    v_kernel_end: float | None = 3.0,
    update_freq: str = "batch",
    keep_full_precision=("first", "last"),
) -> dict:
    r"""Self-Binarizing Networks: `tanh` units sharpened into signs, activations and weights.

    \[
    q_\text{act}(x) = \tanh(v\,x), \qquad
    q_\text{kernel}(w) = \tanh\!\big(v_\text{kernel}\, w / \operatorname{mean}_o|w|\big)
    \]

    (`tfbin.quantizers.SelfBinarizingSign`; the kernel's scale is per output channel `o`, so
    one pace fits both); deployed as `sign`. Each sharpness is held at `v_start` for the first
    `warmup` fraction of `epochs`, grown geometrically to its end value over the next `sharpen`
    fraction, then held, updated every batch. The last `finish` fraction of training runs the
    hard (sign) forward with the soft gradient.

    The paper's schedule is not published (re-implementations grow one `v` from 1 to 1000). The
    schedule's shape (`warmup`, `sharpen`, `finish`) comes from tfbin's schedule search and the
    end values from the validation split: see docs/benchmarks.md#self_binarizing.

    # Arguments
        epochs: the number of epochs the schedules span (required).
        v_start: the sharpness of both units at the start.
        v_end: the activations' final sharpness.
        sharpen, warmup, finish: fractions of `epochs` (`warmup + sharpen <= 1`).
        v_kernel_end: the kernels' final sharpness (None: `v_end`).
        update_freq: `"batch"` or `"epoch"`.
        keep_full_precision: the layers that stay float (`Recipe`).

    # References
        - [Self-Binarizing Networks](https://arxiv.org/abs/1902.00730) (Lahoud et al., 2019)
    """
    params = dict(locals())
    _need_epochs("self_binarizing", epochs)
    schedule = _sharpening(v_start, v_end, epochs, sharpen, warmup)
    kernel_schedule = schedule if v_kernel_end is None else _sharpening(v_start, v_kernel_end, epochs, sharpen, warmup)
    schedules = {"v": schedule, "v_kernel": kernel_schedule}
    if finish:
        schedules["h"] = _finishing(epochs, finish)
    return _config(
        "self_binarizing",
        quantizer("tfbin>SelfBinarizingSign"),
        quantizer("tfbin>SelfBinarizingSign", v="v_kernel", normalize=True),
        None,
        schedules,
        update_freq=update_freq,
        keep_full_precision=keep_full_precision,
        params=params,
    )


# IR-Net's EDE range for short runs (a few epochs), shared by `irnet` and `irnet_cmim`: chosen on
# validation splits for both (docs/benchmarks.md, "How the defaults were chosen"); the paper's is
# `schedules.EDE_T_MIN, schedules.EDE_T_MAX`.
SHORT_RUN_T_MIN, SHORT_RUN_T_MAX = 1.0, 3.16


@built_in("irnet", search={
    "t_min": Range(0.01, 1.0, log=True), "t_max": Range(1.0, 100.0, log=True), "update_freq": Choice("epoch", "batch"),
})
def irnet(
    epochs=None,
    t_min: float = SHORT_RUN_T_MIN,
    t_max: float = SHORT_RUN_T_MAX,
    update_freq: str = "epoch",
    keep_full_precision=("first", "last"),
) -> dict:
    r"""IR-Net: `EDESign` activations, `LibraSign` kernels, EDE's sharpness on a schedule.

    \[
    q(x) = \operatorname{sign}(x), \qquad
    \frac{\partial q}{\partial x} = k\, t\, \bigl(1 - \tanh^2(t x)\bigr), \qquad
    t_e = t_\text{min} \Big(\frac{t_\text{max}}{t_\text{min}}\Big)^{e/\text{epochs}}, \quad
    k = \max(1/t, 1)
    \]

    for activations and for the balanced, standardized kernels of Libra-PB
    (`tfbin.quantizers.EDESign`, `LibraSign`), `t` updated per epoch as the official code.

    The paper's schedule is `T_min = 0.1`, `T_max = 10` (`irnet(epochs, t_min=0.1, t_max=10)`);
    the defaults `t_min = 1`, `t_max = 3.16` were chosen for short runs on the validation split:
    see docs/benchmarks.md#irnet (which also has the searched schedule,
    `bench/results/searched/irnet.json`).

    # Arguments
        epochs: the number of epochs the schedule spans (required).
        t_min, t_max: EDE's `t` at the start and at the end.
        update_freq: `"epoch"` (the official code) or `"batch"`.
        keep_full_precision: the layers that stay float (`Recipe`).

    # References
        - [Forward and Backward Information Retention for Accurate Binary Neural
          Networks](https://arxiv.org/abs/1909.10788) (Qin et al., CVPR 2020)
    """
    _need_epochs("irnet", epochs)
    return _config(
        "irnet",
        quantizer("tfbin>EDESign"),
        quantizer("tfbin>LibraSign"),
        None,
        schedules_lib.ede(t_min, t_max, epochs),
        update_freq=update_freq,
        keep_full_precision=keep_full_precision,
        params=dict(locals()),
    )


@built_in("irnet_cmim", search={
    "t_min": Range(0.01, 1.0, log=True), "t_max": Range(1.0, 100.0, log=True), "cmim_weight": Range(0.01, 1.0, log=True),
    "temperature": Range(0.05, 0.5, log=True), "bank_size": Choice(0, 1024, 4096), "update_freq": Choice("epoch", "batch"),
})
def irnet_cmim(
    epochs=None,
    t_min: float = SHORT_RUN_T_MIN,
    t_max: float = SHORT_RUN_T_MAX,
    cmim_weight: float = 0.1,
    temperature: float = 0.1,
    projection_dim: int = 128,
    bank_size: int = 1024,
    exclude_same_label: bool = True,
    update_freq: str = "epoch",
    keep_full_precision=("first", "last"),
) -> dict:
    r"""IR-Net with CMIM's contrastive loss between latent and binary activations.

    `irnet`'s quantizers and EDE schedule, plus `tfbin.losses.ContrastiveMI` (InfoNCE between
    the latent and the binary activations of the last three binarized layers, weight λ =
    `cmim_weight`), added to the task loss: CMIM's own setting, with a memory bank of negatives
    and same-class samples left out of the negatives, as CMIM's code. `binarize` returns the
    training model (its `.inner` deploys).

    `temperature`, `projection_dim` and `exclude_same_label` are CMIM's code's; its code keeps
    4,096 negatives. The EDE schedule (`irnet`'s short-run default; the paper's is `t_min=0.1,
    t_max=10`) and `bank_size` were chosen on the validation split: see
    docs/benchmarks.md#irnet_cmim.

    # Arguments
        epochs: the number of epochs the schedule spans (required).
        t_min, t_max: EDE's `t` at the start and at the end (`irnet`).
        cmim_weight: λ, the loss's weight.
        temperature: InfoNCE's τ.
        projection_dim: the size of the contrastive space.
        bank_size: negatives kept from earlier batches per view (0: in-batch only).
        exclude_same_label: leave samples of the anchor's class out of its negatives.
        update_freq: `"epoch"` or `"batch"` for EDE's schedule.
        keep_full_precision: the layers that stay float (`Recipe`).

    # References
        - [Network Binarization via Contrastive Learning](https://arxiv.org/abs/2207.02970)
          (Shang et al., ECCV 2022)
        - [Forward and Backward Information Retention for Accurate Binary Neural
          Networks](https://arxiv.org/abs/1909.10788) (Qin et al., CVPR 2020)
    """
    params = dict(locals())
    _need_epochs("irnet_cmim", epochs)
    config = irnet(epochs, t_min, t_max, update_freq, keep_full_precision)
    cmim = _loss("tfbin>ContrastiveMI", weight=cmim_weight, temperature=temperature, projection_dim=projection_dim, bank_size=bank_size,
                 exclude_same_label=exclude_same_label)
    return dict(config, name="irnet_cmim", params=params, losses=[cmim])


@built_in("abr", search={"v_end": Range(1.0, 100.0, log=True), "slope_growth": Choice(0.0, 1e-4, 1e-3, 1e-2), **_SHAPE})
def abr(
    epochs=None,
    v_start: float = 1.0,
    v_end: float = 2.0,
    sharpen: float = 0.75,
    warmup: float = 0.0,
    finish: float = 0.75,
    binary_weights: bool = True,
    initial_slope: float = 1.0,
    floor: float = 0.01,
    symmetric: bool = True,
    slope_growth: float = 0.0,
    update_freq: str = "batch",
    keep_full_precision=("first", "last"),
) -> dict:
    r"""Adjustable Bounded Rectifiers for activations, sharpened into a step.

    \[
    q_\text{soft}(x) = \operatorname{clip}(v\,a\,x, -1, 1), \qquad
    q_\text{hard}(x) = \operatorname{sign}(x)
    \]

    (`symmetric=True`, the default, which LCE fuses as it is); `symmetric=False` is the paper's
    {0, 1} unit `clip(v·a·x + ½, 0, 1)` with the step `1[v·a·x + ½ ≥ ½]`, run binary in LCE through
    the exporter's exact rewrite (`tfbin.quantizers.BoundedRectifier`). `a` are learnable
    per-channel slopes (≥ `floor`; pushed up by `SlopeGrowth(slope_growth)` when
    `slope_growth > 0`), `v` a sharpness grown geometrically from `v_start` to `v_end` over the
    first `sharpen` fraction of `epochs` (after `warmup`), then held. The last `finish` fraction
    of training runs the hard forward (the step it is deployed as) with the ramp's gradient,
    which passes only where `|x| < 1/(v·a)`.

    `binary_weights=True` (default) is the fully binary net: `SteSign` kernels with
    `WeightClip(1)`, every binarized layer an LCE binary conv. `binary_weights=False` is the
    paper's setting (binary representations, float weights): the layers keep float kernels, so
    they are not binarized layers and LCE runs them as float convolutions.

    The paper's "weight growing constraint" is not published; the defaults were chosen on the
    validation split: see docs/benchmarks.md#abr.

    # Arguments
        epochs: the number of epochs the schedules span (required).
        v_start, v_end: the sharpness `v` at the start and after sharpening.
        sharpen, warmup, finish: fractions of `epochs` (`warmup + sharpen <= 1`, `finish < 1`).
        binary_weights: binary (`SteSign`) or float kernels.
        initial_slope, floor: the slopes' initial value and lower bound.
        symmetric: ±1 units (True) or the paper's {0, 1} units.
        slope_growth: `SlopeGrowth`'s weight λ (0: no slope-growth loss).
        update_freq: `"batch"` or `"epoch"`.
        keep_full_precision: the layers that stay float (`Recipe`).

    # References
        - [Adjustable Bounded Rectifiers: Towards Deep Binary
          Representations](https://arxiv.org/abs/1511.06201) (Wu, Lin, Tang, 2015)
    """
    _need_epochs("abr", epochs)
    return _config(
        "abr",
        quantizer("tfbin>BoundedRectifier", initial_slope=initial_slope, floor=floor, symmetric=symmetric),
        quantizer("SteSign") if binary_weights else None,
        constraint("WeightClip", clip_value=1.0) if binary_weights else None,
        {"v": _sharpening(v_start, v_end, epochs, sharpen, warmup), **({"h": _finishing(epochs, finish)} if finish else {})},
        update_freq=update_freq,
        keep_full_precision=keep_full_precision,
        losses=[_loss("tfbin>SlopeGrowth", weight=slope_growth)] if slope_growth > 0 else [],
        params=dict(locals()),
    )


@built_in("dab", search={"refresh_every": Choice(1, 4, 16, 64)})
def dab(refresh_every: int = 16, mean_center: bool = False, keep_full_precision=("first", "last")) -> dict:
    r"""Distribution-Aware Binarization: two scales per filter, sign activations.

    Kernels: per output channel `o`, `q(w) = α_o` where `w ≥ θ_o`, else `−β_o`, the least-squares
    two-level split (`tfbin.quantizers.DistributionAwareSign`); activations: larq's `SteSign`
    (a clipped straight-through estimator); latent weights clipped to [−1, 1], as the official
    code.

    `refresh_every`: training steps between two exact (sorted) splits; 1 is the paper's rule (a
    sort per step). Evaluation and export always use the exact split. `mean_center=True`: the
    latent kernels are also centred over their input channels after every step
    (`MeanCenteredClip`), as the official code does to every binarized conv (here the binarized
    Dense layers too, which the official code does not binarize). Both defaults were chosen on
    the validation split: see docs/benchmarks.md#dab.

    # Arguments
        refresh_every: training steps between two exact splits.
        mean_center: `MeanCenteredClip(1)` instead of `WeightClip(1)`.
        keep_full_precision: the layers that stay float (`Recipe`).

    # References
        - [Distribution-Aware Binarization of Neural Networks for Sketch
          Recognition](https://arxiv.org/abs/1804.02941) (Prabhu et al., WACV 2018)
    """
    return _config(
        "dab",
        quantizer("SteSign"),
        quantizer("tfbin>DistributionAwareSign", refresh_every=refresh_every),
        constraint("tfbin>MeanCenteredClip", clip_value=1.0) if mean_center else constraint("WeightClip", clip_value=1.0),
        keep_full_precision=keep_full_precision,
        params=dict(locals()),
    )


@built_in("abc")
def abc(weight_bases: int = 3, activation_bases: int = 3, threshold_spread: float = 1.0, keep_full_precision=("first", "last")) -> dict:
    """ABC-Net: several binary bases per layer, `Σ_m Σ_n α_m β_n conv(B_m, A_n)`.

    Every binarized Conv2D/Dense becomes an `ABCConv2D`/`ABCDense` with `weight_bases` (M)
    binary weight bases and `activation_bases` (N) binary activation bases; exported as M·N
    LCE binary convolutions per layer. No kernel constraint (the bases follow the latent
    weights' mean and spread). See `tfbin.layers`.

    # Arguments
        weight_bases: M.
        activation_bases: N.
        threshold_spread: `s`; the activation bases' initial thresholds on the input, evenly in
            [−s, s].
        keep_full_precision: the layers that stay float (`Recipe`).

    # References
        - [Towards Accurate Binary Convolutional Neural
          Network](https://arxiv.org/abs/1711.11294) (Lin, Zhao, Pan, NeurIPS 2017)
    """
    return _config(
        "abc",
        None,
        None,
        keep_full_precision=keep_full_precision,
        params=dict(locals()),
        layer_type="abc",
        layer_config={"weight_bases": weight_bases, "activation_bases": activation_bases, "threshold_spread": threshold_spread},
    )


@built_in("blrnet", search={
    "straight_through": Choice(True, False), "tau_end": Range(0.02, 1.0, log=True), "sharpen": Range(0.25, 0.75),
    "warmup": Range(0.0, 0.25), "logit_scale": Range(10.0, 1000.0, log=True),
})
def blrnet(
    epochs=None,
    tau_start: float = 1.0,
    tau_end: float = 1.0,
    sharpen: float = 0.75,
    warmup: float = 0.0,
    straight_through: bool = True,
    logit_scale: float = BLRNET_LOGIT_SCALE,
    update_freq: str = "batch",
    keep_full_precision=("first", "last"),
) -> dict:
    r"""BLRNet / PBNet: a distribution over binary weights instead of latent float weights.

    Every binarized Conv2D/Dense becomes a `BLRConv2D`/`BLRDense` with logits θ,
    `P(w = +1) = σ(2θ)` (initialized from the float kernel by the paper's PBNet-S transfer),
    trained on the propagated mean and variance of the pre-activations,

    \[
    \mu_a = \sum_d \tanh(\theta_d)\, h_d, \qquad \sigma_a^2 = \sum_d \bigl(1 - \tanh^2\theta_d\bigr)\, h_d^2,
    \]

    with relaxed binary activations `tanh(x/τ)` of the sampled pre-activation. The temperature
    `τ` falls geometrically from `tau_start` to `tau_end` over the first `sharpen` fraction of
    `epochs` (after `warmup`), then holds, updated every batch. `straight_through=True` runs the
    forward on a hard sample of the activation with the relaxed sample's gradient. Deployed as
    the most probable binary weights `sign(θ)` with sign activations: every binarized layer an
    LCE binary conv; recalibrate BN first (`tfbin.recalibrate`), as the paper does.
    `tfbin.blrnet.ensemble_predict` evaluates the paper's ensembles of sampled nets. See
    `tfbin.blrnet`.

    The defaults are the paper's PBNet-S (`straight_through=True`, static τ = 1), chosen over an
    annealed τ on the validation split, and `logit_scale` on a sweep: see
    docs/benchmarks.md#blrnet.

    # Arguments
        epochs: the number of epochs the schedule spans (required).
        tau_start, tau_end: the temperature τ at the start and after sharpening.
        sharpen, warmup: fractions of `epochs` (`warmup + sharpen <= 1`).
        straight_through: hard forward, relaxed gradient (PBNet-S).
        logit_scale: k; the layers train θ/k, a k-fold step size for the logits
            (`tfbin.blrnet.BLRConv2D`).
        update_freq: `"batch"` or `"epoch"`.
        keep_full_precision: the layers that stay float (`Recipe`).

    # References
        - [Probabilistic Binary Neural Networks](https://arxiv.org/abs/1809.03368)
          (Peters & Welling, 2018)
    """
    params = dict(locals())
    _need_epochs("blrnet", epochs)
    return _config(
        "blrnet",
        None,
        None,
        schedules={"tau": _sharpening(tau_start, tau_end, epochs, sharpen, warmup)},
        update_freq=update_freq,
        keep_full_precision=keep_full_precision,
        params=params,
        layer_type="blrnet",
        layer_config={"straight_through": bool(straight_through), "logit_scale": float(logit_scale)},
    )
