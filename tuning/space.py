"""Search spaces over a recipe's sharpening schedules, auxiliary losses and learning rate."""
from __future__ import annotations

import math

from tfbin import recipes as recipes_lib
from tfbin import schedules as schedules_lib
from tfbin.losses import ContrastiveMI, SlopeGrowth

__all__ = ["SearchSpace", "KINDS"]

KINDS = ("exponential", "linear", "cosine", "step")

# name -> ("float", min, max, sampling, default) | ("choice", values, default).  Papers' defaults:
# IR-Net T_min 0.1 / T_max 10 (CMIM's code 0.01), CMIM tau 0.1, Adam 1e-3. SBN's v_end: the
# re-implementations' 1000 lost to 10 on a validation split (self_binarizing's docstring).
_LR = {"lr": ("float", 1e-4, 1e-2, "log", 1e-3)}
_PHASES = {
    "kind": ("choice", KINDS, "exponential"),
    "warmup": ("float", 0.0, 0.3, "linear", 0.0),  # fraction of training held at the start value
    "hardening": ("float", 0.0, 0.3, "linear", 0.0),  # fraction held at the end value
}
_EDE = {"t_start": ("float", 0.01, 1.0, "log", schedules_lib.EDE_T_MIN), "t_end": ("float", 1.0, 100.0, "log", schedules_lib.EDE_T_MAX)}
_SBN = {"v_start": ("float", 0.5, 5.0, "log", 1.0), "v_end": ("float", 3.0, 1000.0, "log", 10.0)}
_CMIM = {"cmim_weight": ("float", 0.01, 1.0, "log", 0.1), "temperature": ("float", 0.05, 0.5, "log", 0.1)}
DEFAULT_SPACES = {
    "irnet": {**_EDE, **_PHASES, **_LR},
    "irnet_cmim": {**_EDE, **_PHASES, **_CMIM, **_LR},
    "self_binarizing": {**_SBN, **_PHASES, **_LR},
    "abr": {"slope_growth": ("float", 1e-5, 1e-1, "log", 1e-3), **_LR},
    "ste": dict(_LR),
    "dab": dict(_LR),
}


def _schedule(kind, start, end, epochs):
    if kind == "exponential":
        return schedules_lib.Exponential(start, end, epochs)
    if kind == "linear":
        return schedules_lib.Linear(start, end, epochs)
    if kind == "cosine":
        return schedules_lib.Cosine(start, end, epochs)
    # Four equal steps from start to end over the schedule's length.
    return schedules_lib.Step(start, (end - start) / 4.0, epochs / 4.0, epochs)


class SearchSpace:
    """The hyperparameters of a recipe that a tuner searches, with the papers' defaults.

    For `irnet`/`irnet_cmim`: EDE's `t` from `t_start` to `t_end` (`k = max(1/t, 1)`); for
    `self_binarizing`: `v` from `v_start` to `v_end`; the schedule's `kind` (exponential, linear,
    cosine, step); `warmup` and `hardening`, the fractions of training held at the start and the
    end value; for `irnet_cmim` the contrastive loss's `cmim_weight` and `temperature`; for `abr`
    the `slope_growth` weight; for every recipe Adam's `lr`.

    Override a range the way keras-tuner declares it: `(min, max)` for `hp.Float` (log sampling
    where the default is), a list for `hp.Choice`, a single value to fix it, or a dict of
    `hp.Float` arguments (`{"min_value": .., "max_value": .., "sampling": ..}`).

    ```python
    space = tfbin.tuning.SearchSpace("irnet", t_end=(5.0, 50.0), kind=["exponential", "cosine"], lr=1e-3)
    ```
    """

    def __init__(self, recipe: str = "irnet", **ranges):
        if recipe not in DEFAULT_SPACES:
            raise ValueError(f"No search space for recipe {recipe!r}; spaces exist for {sorted(DEFAULT_SPACES)}.")
        self.recipe = recipe
        self.entries = dict(DEFAULT_SPACES[recipe])
        for name, value in ranges.items():
            if name not in self.entries:
                raise ValueError(f"Recipe {recipe!r} has no hyperparameter {name!r}; it has {sorted(self.entries)}.")
            self.entries[name] = self._parse(name, value)
        self.ranges = ranges

    def _parse(self, name, value):
        default = self.entries[name]
        if isinstance(value, dict):
            value = dict(value)
            spec = ("float", value.pop("min_value"), value.pop("max_value"), value.pop("sampling", default[3] if default[0] == "float" else "linear"), None)
            if value:
                raise ValueError(f"{name}: unknown hp.Float argument(s) {sorted(value)}.")
        elif isinstance(value, tuple):
            if len(value) != 2:
                raise ValueError(f"{name}: a range is (min, max), got {value!r}.")
            spec = ("float", value[0], value[1], default[3] if default[0] == "float" else "linear", None)
        elif isinstance(value, list):
            if not value:
                raise ValueError(f"{name}: a choice needs at least one value.")
            if name == "kind" and set(value) - set(KINDS):
                raise ValueError(f"kind: unknown schedule kind(s) {sorted(set(value) - set(KINDS))}; choose from {list(KINDS)}.")
            return ("choice", tuple(value), value[0])
        else:
            if name == "kind" and value not in KINDS:
                raise ValueError(f"kind: unknown schedule kind {value!r}; choose from {list(KINDS)}.")
            return ("fixed", value)
        _, low, high, sampling, _ = spec
        if default[0] != "float":
            raise ValueError(f"{name} is a choice among {list(default[1])}; give a list or one value, not a range.")
        low, high = float(low), float(high)
        if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
            raise ValueError(f"{name}: the range needs min < max (finite), got ({low}, {high}).")
        if sampling == "log" and low <= 0:
            raise ValueError(f"{name}: log sampling needs min > 0, got {low}; give a positive min or sampling='linear'.")
        if name in ("warmup", "hardening") and not (0 <= low and high < 1):
            raise ValueError(f"{name} is a fraction of training: the range must lie in [0, 1), got ({low}, {high}).")
        return ("float", low, high, sampling, min(max(default[4], low), high))

    def declare(self, hp) -> dict:
        """Declare the hyperparameters on keras-tuner's `hp`; returns `{name: value}`."""
        values = {}
        for name, spec in self.entries.items():
            if spec[0] == "float":
                values[name] = hp.Float(name, spec[1], spec[2], sampling=spec[3], default=spec[4])
            elif spec[0] == "choice":
                values[name] = hp.Choice(name, list(spec[1]), default=spec[2])
            else:
                values[name] = hp.Fixed(name, spec[1])
        return values

    def recipe_from(self, values: dict, epochs: int) -> recipes_lib.Recipe:
        """The recipe these values describe, its schedules spanning `epochs`."""
        recipe = recipes_lib.get(self.recipe, epochs=epochs)
        sharpness = {"irnet": "t", "irnet_cmim": "t", "self_binarizing": "v"}.get(self.recipe)
        if sharpness:
            warmup, hardening = values["warmup"] * epochs, values["hardening"] * epochs
            if warmup + hardening >= epochs:
                raise ValueError(f"warmup + hardening ({values['warmup']} + {values['hardening']}) must leave part of training to sharpen.")
            start, end = values[f"{sharpness}_start"], values[f"{sharpness}_end"]
            schedule = schedules_lib.Delayed(_schedule(values["kind"], start, end, epochs - warmup - hardening), warmup)
            recipe.schedules = {sharpness: schedule}
            if sharpness == "t":
                recipe.schedules["k"] = schedules_lib.EDEScale(schedule)
            if sharpness == "v":  # SBN's kernels (normalized per channel) sharpen with the activations
                recipe.schedules["v_kernel"] = schedule
        if self.recipe == "irnet_cmim":
            recipe.losses = [ContrastiveMI(values["cmim_weight"], values["temperature"], bank_size=recipe.losses[0].bank_size)]
        if self.recipe == "abr":
            recipe.losses = [SlopeGrowth(values["slope_growth"])] if values["slope_growth"] > 0 else []
        recipe.params = {"epochs": epochs, "searched": dict(values)}
        return recipe

    def get_config(self) -> dict:
        def plain(value):  # JSON keeps the tuple/list distinction as range dict/choice list
            return {"min_value": value[0], "max_value": value[1]} if isinstance(value, tuple) else value

        return {"recipe": self.recipe, **{k: plain(v) for k, v in self.ranges.items()}}

    @classmethod
    def from_config(cls, config: dict) -> "SearchSpace":
        return cls(**config)
