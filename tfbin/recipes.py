"""Recipes: complete, serializable binarization methods.

A `Recipe` names everything a method needs: the input and kernel quantizers of every binarized
layer, the kernel constraint, the schedules of its sharpness values (and how often they update),
and which layers stay full precision. `tfbin.binarize` and `tfbin.models.build` apply one to a
model; `recipe.callbacks()` gives what `model.fit` needs.

```python
recipe = tfbin.recipes.get("irnet", epochs=20, t_min=0.01)
tfbin.recipes.available()   # ['abc', 'abr', 'approx_sign', 'bireal', 'blrnet', 'dab', 'irnet', 'irnet_cmim', 'self_binarizing', 'ste', 'swish_sign']
```

`LARQ_BASELINES` names larq's own methods (`ste`, `approx_sign`, `swish_sign`, `bireal`): larq's
quantizers as larq and larq-zoo use them, the arms every method is compared with ("larq's best").

`tfbin.recipes.load(path_or_name, epochs=N)` also reads a recipe JSON file (`Recipe.to_json`,
e.g. `tfbin tune`'s `best_recipe.json`) and makes its schedules span N epochs. A recipe does not
set the optimizer: `tfbin.regimen` does.

Users register their own factory with `@tfbin.recipes.register("name")`; `search={...}` declares
the ranges `tfbin.tuning` searches for its parameters (`Range`, `Choice`).
"""
from __future__ import annotations

import inspect
import json
import math
from typing import Callable

import larq as lq
import tensorflow as tf

from tfbin import families
from tfbin import schedules as schedules_lib
from tfbin.blrnet_layers import LOGIT_SCALE
from tfbin.callbacks import SharpeningScheduler, check_update_freq
from tfbin.constraints import MeanCenteredClip
from tfbin.losses import ContrastiveMI, SlopeGrowth
from tfbin import quantizers as tfbin_quantizers
from tfbin.quantizers import BoundedRectifier, DistributionAwareSign, EDESign, LibraSign, SelfBinarizingSign
# The optimizer's settings live in tfbin.regimen; these names stay here for code written before.
from tfbin.regimen import LR_DECAYS, learning_rate  # noqa: F401

__all__ = ["Recipe", "Range", "Choice", "register", "get", "load", "rebuild", "available", "search_ranges", "learning_rate", "LR_DECAYS", "LARQ_BASELINES"]

# larq's own methods, with larq's quantizers: the baselines a method is compared with ("larq's
# best" is the best of these). `ste` is the one every ratio is measured against.
LARQ_BASELINES = ("ste", "approx_sign", "swish_sign", "bireal")

def _serialize(obj):
    if obj is None or isinstance(obj, str):
        return obj
    return tf.keras.utils.serialize_keras_object(obj)


class Recipe:
    """A complete binarization method.

    # Arguments
        name: the recipe's name (snake_case).
        input_quantizer, kernel_quantizer: larq quantizer identifiers (alias, config dict or
            instance); every binarized layer gets a fresh instance of each. A None kernel
            quantizer keeps float weights (binary activations only: not LCE binary layers).
        kernel_constraint: larq/Keras constraint identifier (e.g. `"weight_clip"`) or None.
        schedules: `{sharpness name: schedule}` driven by `SharpeningScheduler`.
        update_freq: `"epoch"` or `"batch"` for the schedules.
        keep_full_precision: layers that stay float: `"first"`, `"last"` (the first and last
            conv/dense layer of a float model) and/or layer names.
        losses: auxiliary losses with `attach(model) -> model`, applied by `binarize`:
            `tfbin.losses.SlopeGrowth` adds itself inside the model; `ContrastiveMI` returns a
            `tfbin.TrainingModel` around it (its `.inner` is the model to deploy).
        params: the factory arguments the recipe was made with (kept for reporting and tuning).
        layer_type, layer_config: the name of a layer family registered in `tfbin.families`
            (e.g. `"abc"`, `"blrnet"`) whose layers replace each binarized Conv2D/Dense instead
            of larq's QuantConv2D/QuantDense, with these extra constructor arguments. Needed by
            methods whose layer is not "one quantizer on the input, one on the kernel" (ABC-Net
            sums M·N binary convolutions); the quantizers are then None (the layer binarizes itself).
    """

    def __init__(
        self,
        name: str,
        input_quantizer,
        kernel_quantizer,
        kernel_constraint=None,
        schedules: dict | None = None,
        update_freq: str = "epoch",
        keep_full_precision=("first", "last"),
        losses: list | None = None,
        params: dict | None = None,
        layer_type: str | None = None,
        layer_config: dict | None = None,
    ):
        self.name = name
        self.layer_type = layer_type
        self.layer_config = json.loads(json.dumps(layer_config or {}))
        if layer_type is not None:
            if layer_type not in families.names():
                raise ValueError(f"Recipe {name!r}: unknown layer_type {layer_type!r}; the layer types are {families.names()}.")
            if input_quantizer is not None or kernel_quantizer is not None:
                raise ValueError(f"Recipe {name!r}: a layer_type binarizes by itself; its quantizers must be None.")
        self.input_quantizer = _serialize(input_quantizer)
        self.kernel_quantizer = _serialize(kernel_quantizer)
        self.kernel_constraint = _serialize(kernel_constraint)
        self.schedules = {k: schedules_lib.get(v) for k, v in (schedules or {}).items()}
        self.update_freq = check_update_freq(update_freq)
        self.keep_full_precision = tuple(keep_full_precision)
        self.losses = [tf.keras.utils.deserialize_keras_object(l) if isinstance(l, dict) else l for l in (losses or [])]
        self.params = json.loads(json.dumps(params or {}))  # JSON-normal, so configs round-trip
        for role, identifier in (("input", self.input_quantizer), ("kernel", self.kernel_quantizer)):
            if layer_type is not None:
                break
            if role == "kernel" and identifier is None:
                continue  # binary activations, float weights (e.g. ABR's paper setting)
            quantizer = self._make(identifier)
            if getattr(quantizer, "precision", None) != 1:
                raise ValueError(
                    f"Recipe {name!r}: the {role} quantizer {identifier!r} is not a 1-bit quantizer "
                    f"(precision {getattr(quantizer, 'precision', None)})."
                )
            if role == "input" and isinstance(quantizer, (LibraSign, DistributionAwareSign)):
                raise ValueError(
                    f"Recipe {name!r}: {type(quantizer).__name__} is a kernel-only quantizer "
                    "(per output channel statistics); use it as kernel_quantizer."
                )

    @staticmethod
    def _make(identifier):
        try:
            quantizer = lq.quantizers.get(identifier)
        except ValueError as err:
            if not isinstance(identifier, str):
                raise
            tfbin_aliases = sorted(getattr(tfbin_quantizers, n).alias for n in tfbin_quantizers.__all__ if hasattr(getattr(tfbin_quantizers, n), "alias"))
            raise ValueError(
                f"Unknown quantizer {identifier!r}; tfbin's are {tfbin_aliases}, larq's include "
                "['ste_sign', 'approx_sign', 'swish_sign', 'magnitude_aware_sign', 'dorefa_quantizer']."
            ) from err
        if quantizer is None:
            raise ValueError(f"Unknown quantizer {identifier!r}.")
        return quantizer

    def make_input_quantizer(self):
        """A new input quantizer for one layer (None for a `layer_type` recipe)."""
        return None if self.input_quantizer is None else self._make(self.input_quantizer)

    def make_kernel_quantizer(self):
        """A new kernel quantizer for one layer (None: the layer keeps float weights)."""
        return None if self.kernel_quantizer is None else self._make(self.kernel_quantizer)

    def make_kernel_constraint(self):
        return tf.keras.constraints.get(self.kernel_constraint) if self.kernel_constraint else None

    def callbacks(self) -> list[tf.keras.callbacks.Callback]:
        """The callbacks `model.fit` needs for this recipe (its sharpening schedules)."""
        return [SharpeningScheduler(self.schedules, update_freq=self.update_freq)] if self.schedules else []

    def get_config(self) -> dict:
        config = {
            "name": self.name,
            "input_quantizer": self.input_quantizer,
            "kernel_quantizer": self.kernel_quantizer,
            "kernel_constraint": self.kernel_constraint,
            "schedules": {k: tf.keras.utils.serialize_keras_object(v) for k, v in self.schedules.items()},
            "update_freq": self.update_freq,
            "keep_full_precision": list(self.keep_full_precision),
            "losses": [tf.keras.utils.serialize_keras_object(l) for l in self.losses],
            "params": self.params,
        }
        if self.layer_type is not None:
            config.update(layer_type=self.layer_type, layer_config=self.layer_config)
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Recipe":
        return cls(**config)

    def to_json(self) -> str:
        return json.dumps(self.get_config(), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> "Recipe":
        return cls.from_config(json.loads(text))

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Recipe({self.name!r}{', ' if params else ''}{params})"

    def __eq__(self, other):
        return isinstance(other, Recipe) and self.get_config() == other.get_config()


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


_FACTORIES: dict[str, Callable[..., Recipe]] = {}
_SEARCH: dict[str, dict] = {}


def register(name: str, search: dict | None = None):
    """Register a recipe factory `f(**params) -> Recipe` under `name`; `search` maps some of its
    parameters to the `Range`/`Choice` that `tfbin.tuning.SearchSpace(name)` searches."""

    def decorator(factory):
        if not name.isidentifier() or name != name.lower():
            raise ValueError(f"Recipe names are snake_case identifiers, got {name!r}.")
        accepted = inspect.signature(factory).parameters
        unknown = sorted(set(search or {}) - set(accepted))
        if unknown:
            raise ValueError(f"Recipe {name!r}: search names parameter(s) {unknown} that the factory does not take.")
        for key, spec in (search or {}).items():
            default = accepted[key].default
            if isinstance(spec, Choice):
                if default not in spec.values:
                    raise ValueError(f"Recipe {name!r}: the default {key}={default!r} is not among its searched choices {list(spec.values)}.")
            elif isinstance(spec, Range):
                default = spec.default if default is None else default
                if not isinstance(default, (int, float)) or not spec.low <= default <= spec.high:
                    raise ValueError(
                        f"Recipe {name!r}: the default {key}={default!r} is not inside its searched {spec!r} "
                        "(give Range(..., default=) for a factory default of None)."
                    )
            else:
                raise ValueError(f"Recipe {name!r}: search[{key!r}] must be a tfbin.recipes.Range or Choice, got {spec!r}.")
        _FACTORIES[name] = factory
        _SEARCH[name] = dict(search or {})
        return factory

    return decorator


def search_ranges(name: str) -> dict:
    """`{parameter: (Range or Choice, default)}`: what `tfbin.tuning` searches for recipe `name`,
    with the factory's default (the value the search tries first)."""
    if name not in _FACTORIES:
        raise ValueError(f"Unknown recipe {name!r}; the recipes are {available()}.")
    parameters = inspect.signature(_FACTORIES[name]).parameters
    ranges = {}
    for key, spec in _SEARCH[name].items():
        default = parameters[key].default
        if default is None and isinstance(spec, Range):
            default = spec.default
        ranges[key] = (spec, default)
    return ranges


def available() -> list[str]:
    """Names of the registered recipes."""
    return sorted(_FACTORIES)


def get(identifier="irnet", **overrides) -> Recipe:
    """A recipe from a name (with factory overrides), a config dict or a `Recipe`.

    Every name accepts `epochs` (the length of its schedules); recipes without schedules ignore it.
    """
    if isinstance(identifier, Recipe):
        if overrides:
            raise ValueError("Overrides apply to recipe names; a Recipe object is already complete.")
        return identifier
    if isinstance(identifier, dict):
        return Recipe.from_config(identifier)
    if identifier == "pbgnet" and identifier not in _FACTORIES:
        raise ValueError(
            "'pbgnet' is a trainer, not a recipe: PBGNet fixes its architecture and objective (the PAC-Bayes "
            "bound needs the layer structure, the training-set size and the prior) instead of binarizing a "
            "given model; use tfbin.pbgnet.PBGNet or tfbin.pbgnet.train."
        )
    if identifier not in _FACTORIES:
        raise ValueError(f"Unknown recipe {identifier!r}; the recipes are {available()}.")
    factory = _FACTORIES[identifier]
    accepted = inspect.signature(factory).parameters
    if "epochs" not in accepted:
        overrides.pop("epochs", None)  # the length of training; recipes without schedules ignore it
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise ValueError(f"Recipe {identifier!r} has no parameter(s) {unknown}; it takes {sorted(accepted)}.")
    return factory(**overrides)


def rebuild(recipe: Recipe, **overrides) -> Recipe:
    """`recipe` made again by its registered factory from its `params`, with `overrides`:
    `rebuild(recipe, epochs=10)` stretches a searched recipe's schedules to a longer run.
    `params["training"]` (what a search chose for the optimizer) is carried over."""
    if recipe.name not in _FACTORIES:
        raise ValueError(f"Recipe {recipe.name!r} has no registered factory to rebuild it with; the recipes are {available()}.")
    params = dict(recipe.params)
    training = params.pop("training", None)
    rebuilt = get(recipe.name, **{**params, **overrides})
    if training is not None:
        rebuilt.params["training"] = training
    return rebuilt


def load(recipe, epochs: int | None = None) -> Recipe:
    """A recipe for a run of `epochs` epochs from a name (`get(name, epochs=epochs)`), a `Recipe`
    or config dict (used as it is), or the path of a recipe JSON file (`Recipe.to_json`, e.g.
    `tfbin tune`'s `best_recipe.json`).

    A file is used as written when its schedules span `epochs` (or `epochs` is None, or the file
    has no `params["epochs"]`); otherwise its factory makes it again from its params for `epochs`
    (`rebuild`, keeping `params["training"]`). That is refused, with the reason, for a file that
    differs from what its factory makes of its params (edited by hand): rebuilding would drop
    the edit.
    """
    if not (isinstance(recipe, str) and recipe.endswith(".json")):
        return get(recipe, epochs=epochs) if isinstance(recipe, str) else get(recipe)
    written = _read(recipe)
    spans = written.params.get("epochs")
    if epochs is None or spans is None or spans == epochs:
        return written
    return _stretched(written, recipe, spans, epochs)


def _read(path: str) -> Recipe:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as err:
        raise ValueError(f"--recipe {path}: cannot read the recipe file ({err.strerror}).") from None
    try:
        return Recipe.from_json(text)
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"--recipe {path}: not a tfbin recipe JSON file (e.g. tfbin tune's best_recipe.json): {err}") from None


def _stretched(written: Recipe, path: str, spans: int, epochs: int) -> Recipe:
    """`written` (read from `path`, its schedules spanning `spans` epochs) made again for `epochs`."""
    try:
        as_made = rebuild(written, epochs=spans)
    except ValueError as err:
        raise ValueError(f"--recipe {path}: its schedules span {spans} epochs and it cannot be rebuilt for {epochs} ({err}); pass --epochs {spans}.") from None
    if _comparable(as_made.get_config()) != _comparable(written.get_config()):
        raise ValueError(
            f"--recipe {path}: the file differs from what its factory makes of its params (edited by hand?), so it "
            f"cannot be rebuilt for {epochs} epochs; edit its params instead, or pass --epochs {spans}."
        )
    return rebuild(written, epochs=epochs)


def _comparable(config):
    """A recipe config without the instance names Keras gives its quantizers (`ede_sign_1`),
    which differ between two makings of the same recipe."""
    if isinstance(config, (list, tuple)):
        return [_comparable(v) for v in config]
    if not isinstance(config, dict):
        return config
    plain = {k: _comparable(v) for k, v in config.items()}
    if "class_name" in config and isinstance(plain.get("config"), dict):
        plain["config"].pop("name", None)
    return plain


def _need_epochs(name, epochs):
    if epochs is None:
        raise ValueError(
            f"Recipe {name!r} sharpens on a schedule whose length must be known: pass epochs=N "
            "(the number of epochs the schedules span, normally fit's epochs)."
        )
    return epochs


@register("ste")
def ste(clip_value: float = 1.0, keep_full_precision=("first", "last")) -> Recipe:
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
    return Recipe(
        "ste",
        lq.quantizers.SteSign(clip_value=clip_value),
        lq.quantizers.SteSign(clip_value=clip_value),
        lq.constraints.WeightClip(clip_value),
        keep_full_precision=keep_full_precision,
        params=dict(locals()),
    )


@register("approx_sign")
def approx_sign(keep_full_precision=("first", "last")) -> Recipe:
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
    return Recipe(
        "approx_sign",
        lq.quantizers.ApproxSign(),
        lq.quantizers.SteSign(),
        lq.constraints.WeightClip(1.0),
        keep_full_precision=keep_full_precision,
        params=dict(locals()),
    )


@register("swish_sign")
def swish_sign(beta: float = 5.0, keep_full_precision=("first", "last")) -> Recipe:
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
    return Recipe(
        "swish_sign",
        lq.quantizers.SwishSign(beta=beta),
        lq.quantizers.SteSign(),
        lq.constraints.WeightClip(1.0),
        keep_full_precision=keep_full_precision,
        params=dict(locals()),
    )


@register("bireal")
def bireal(keep_full_precision=("first", "last")) -> Recipe:
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
    return Recipe(
        "bireal",
        lq.quantizers.ApproxSign(),
        lq.quantizers.MagnitudeAwareSign(),
        lq.constraints.WeightClip(1.0),
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


@register("self_binarizing", search={
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
) -> Recipe:
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
    return Recipe(
        "self_binarizing",
        SelfBinarizingSign(),
        SelfBinarizingSign("v_kernel", normalize=True),
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


@register("irnet", search={
    "t_min": Range(0.01, 1.0, log=True), "t_max": Range(1.0, 100.0, log=True), "update_freq": Choice("epoch", "batch"),
})
def irnet(
    epochs=None,
    t_min: float = SHORT_RUN_T_MIN,
    t_max: float = SHORT_RUN_T_MAX,
    update_freq: str = "epoch",
    keep_full_precision=("first", "last"),
) -> Recipe:
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
    return Recipe(
        "irnet",
        EDESign(),
        LibraSign(),
        None,
        schedules_lib.ede(t_min, t_max, epochs),
        update_freq=update_freq,
        keep_full_precision=keep_full_precision,
        params=dict(locals()),
    )


@register("irnet_cmim", search={
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
) -> Recipe:
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
    config = irnet(epochs, t_min, t_max, update_freq, keep_full_precision).get_config()
    config.update(name="irnet_cmim", params=params, losses=[ContrastiveMI(cmim_weight, temperature, projection_dim, bank_size, exclude_same_label=exclude_same_label)])
    return Recipe.from_config(config)


@register("abr", search={"v_end": Range(1.0, 100.0, log=True), "slope_growth": Choice(0.0, 1e-4, 1e-3, 1e-2), **_SHAPE})
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
) -> Recipe:
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
    return Recipe(
        "abr",
        BoundedRectifier(initial_slope=initial_slope, floor=floor, symmetric=symmetric),
        lq.quantizers.SteSign() if binary_weights else None,
        lq.constraints.WeightClip(1.0) if binary_weights else None,
        {"v": _sharpening(v_start, v_end, epochs, sharpen, warmup), **({"h": _finishing(epochs, finish)} if finish else {})},
        update_freq=update_freq,
        keep_full_precision=keep_full_precision,
        losses=[SlopeGrowth(slope_growth)] if slope_growth > 0 else [],
        params=dict(locals()),
    )


@register("dab", search={"refresh_every": Choice(1, 4, 16, 64)})
def dab(refresh_every: int = 16, mean_center: bool = False, keep_full_precision=("first", "last")) -> Recipe:
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
    return Recipe(
        "dab",
        lq.quantizers.SteSign(),
        DistributionAwareSign(refresh_every=refresh_every),
        MeanCenteredClip(1.0) if mean_center else lq.constraints.WeightClip(1.0),
        keep_full_precision=keep_full_precision,
        params=dict(locals()),
    )


@register("abc")
def abc(weight_bases: int = 3, activation_bases: int = 3, threshold_spread: float = 1.0, keep_full_precision=("first", "last")) -> Recipe:
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
    return Recipe(
        "abc",
        None,
        None,
        keep_full_precision=keep_full_precision,
        params=dict(locals()),
        layer_type="abc",
        layer_config={"weight_bases": weight_bases, "activation_bases": activation_bases, "threshold_spread": threshold_spread},
    )


@register("blrnet", search={
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
    logit_scale: float = LOGIT_SCALE,
    update_freq: str = "batch",
    keep_full_precision=("first", "last"),
) -> Recipe:
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
    return Recipe(
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
