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

The built-in recipes are defined as configs in `tfbin.builtin_recipes`, which the Keras 3 path
(`tfbin.keras3.binarize`) reads too; the factories here (`tfbin.recipes.irnet`, ...) keep their
signatures and docstrings and make `Recipe`s of them.
"""
from __future__ import annotations

import functools
import inspect
import json
from typing import Callable

import larq as lq
import tensorflow as tf

from tfbin import builtin_recipes, families
from tfbin import schedules as schedules_lib
from tfbin.builtin_recipes import LARQ_BASELINES, SHORT_RUN_T_MAX, SHORT_RUN_T_MIN, Choice, Range  # noqa: F401  (public here)
from tfbin.callbacks import SharpeningScheduler, check_update_freq
from tfbin.losses import ContrastiveMI, SlopeGrowth
from tfbin import quantizers as tfbin_quantizers
from tfbin.quantizers import DistributionAwareSign, LibraSign
# The optimizer's settings live in tfbin.regimen; these names stay here for code written before.
from tfbin.regimen import LR_DECAYS, learning_rate  # noqa: F401

__all__ = ["Recipe", "Range", "Choice", "register", "get", "load", "rebuild", "available", "search_ranges", "learning_rate", "LR_DECAYS", "LARQ_BASELINES"]


# The auxiliary losses a built-in recipe config names (`tfbin.builtin_recipes`).
_LOSSES = {"tfbin>ContrastiveMI": ContrastiveMI, "tfbin>SlopeGrowth": SlopeGrowth}


def _serialize(obj):
    if obj is None or isinstance(obj, str):
        return obj
    return tf.keras.utils.serialize_keras_object(obj)


def _loss(identifier):
    return tf.keras.utils.deserialize_keras_object(identifier, custom_objects=_LOSSES) if isinstance(identifier, dict) else identifier


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
        # A config (e.g. `tfbin.builtin_recipes`' short identifiers) is stored as Keras 2 writes
        # it, so that a recipe and its JSON round trip compare equal.
        self.input_quantizer = _serialize(self._make(input_quantizer) if isinstance(input_quantizer, dict) else input_quantizer)
        self.kernel_quantizer = _serialize(self._make(kernel_quantizer) if isinstance(kernel_quantizer, dict) else kernel_quantizer)
        if isinstance(kernel_constraint, dict):
            kernel_constraint = tf.keras.constraints.get(kernel_constraint)
        self.kernel_constraint = _serialize(kernel_constraint)
        self.schedules = {k: schedules_lib.get(v) for k, v in (schedules or {}).items()}
        self.update_freq = check_update_freq(update_freq)
        self.keep_full_precision = tuple(keep_full_precision)
        self.losses = [_loss(l) for l in (losses or [])]
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
    if identifier not in _FACTORIES:
        raise builtin_recipes.unknown_recipe(identifier, _FACTORIES)
    return builtin_recipes.call(identifier, _FACTORIES[identifier], overrides)


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


def _built_in(name: str) -> Callable[..., Recipe]:
    """The factory of built-in recipe `name`: its config function (`tfbin.builtin_recipes`, whose
    signature and docstring it keeps) made a `Recipe`, registered with its search ranges."""
    config_fn = builtin_recipes.function(name)

    @functools.wraps(config_fn)
    def factory(*args, **kwargs) -> Recipe:
        return Recipe.from_config(config_fn(*args, **kwargs))

    return register(name, search=builtin_recipes.searched(name))(factory)


ste = _built_in("ste")
approx_sign = _built_in("approx_sign")
swish_sign = _built_in("swish_sign")
bireal = _built_in("bireal")
self_binarizing = _built_in("self_binarizing")
irnet = _built_in("irnet")
irnet_cmim = _built_in("irnet_cmim")
abr = _built_in("abr")
dab = _built_in("dab")
abc = _built_in("abc")
blrnet = _built_in("blrnet")
