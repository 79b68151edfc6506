"""Search spaces: the ranges each recipe declares for its parameters, plus Adam's learning rate and its decay."""
from __future__ import annotations

from tfbin import recipes as recipes_lib
from tfbin import regimen
from tfbin.recipes import Choice, Range

__all__ = ["SearchSpace", "LR_RANGE", "LR_DECAY"]

# Adam's learning rate, searched for every recipe around the papers' 1e-3, and how it moves over
# the run: held (the default, as the accuracy benchmark trains) or cosine-decayed to 0.
LR_RANGE = (Range(1e-4, 1e-2, log=True), regimen.LR)
LR_DECAY = (Choice(*regimen.LR_DECAYS), "constant")
TRAINING = ("lr", "lr_decay")  # optimizer settings, not recipe arguments


class SearchSpace:
    """The hyperparameters of a recipe that a tuner searches, starting from the recipe's defaults.

    The ranges are the recipe's own (`tfbin.recipes.search_ranges(recipe)`, declared where the
    recipe is registered) plus Adam's `lr` and `lr_decay` (`"constant"` or `"cosine"` to 0 over the run); a trial's recipe is made by `tfbin.recipes.get`
    with the trial's values, so the space knows nothing of a recipe's internals. E.g. for
    `self_binarizing`: `v_end` and `v_kernel_end` (1–100, log), `sharpen`, `warmup`, `finish`
    (fractions of training), `lr`, `lr_decay`.

    Override a range the way keras-tuner declares it: `(min, max)` for `hp.Float` (log sampling
    if the recipe's range is log), a list for `hp.Choice`, a single value to fix it, or a dict of
    `hp.Float` arguments (`{"min_value": .., "max_value": .., "sampling": "log" | "linear"}`).

    ```python
    space = tfbin.tuning.SearchSpace("irnet", t_max=(5.0, 50.0), lr=1e-3)
    ```
    """

    def __init__(self, recipe: str = "irnet", **ranges):
        if recipe not in recipes_lib.available():
            raise ValueError(f"Unknown recipe {recipe!r}; the recipes are {recipes_lib.available()}.")
        self.recipe = recipe
        self.entries = {**recipes_lib.search_ranges(recipe), "lr": LR_RANGE, "lr_decay": LR_DECAY}
        for name, value in ranges.items():
            if name not in self.entries:
                raise ValueError(f"Recipe {recipe!r} has no searched hyperparameter {name!r}; it has {sorted(self.entries)}.")
            self.entries[name] = self._parse(name, value)
        self.ranges = ranges

    def _parse(self, name, value):
        spec, default = self.entries[name]
        if isinstance(value, (tuple, dict)):
            if isinstance(spec, Choice):
                raise ValueError(f"{name} is a choice among {list(spec.values)}; give a list or one value, not a range.")
            if isinstance(value, tuple):
                if len(value) != 2:
                    raise ValueError(f"{name}: a range is (min, max), got {value!r}.")
                low, high, log = value[0], value[1], spec.log
            else:
                value = dict(value)
                low, high = value.pop("min_value"), value.pop("max_value")
                sampling = value.pop("sampling", "log" if spec.log else "linear")
                if value:
                    raise ValueError(f"{name}: unknown hp.Float argument(s) {sorted(value)}.")
                if sampling not in ("log", "linear"):
                    raise ValueError(f"{name}: sampling is 'log' or 'linear', got {sampling!r}.")
                log = sampling == "log"
            try:
                new = Range(low, high, log=log)
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from None
            return new, min(max(default, new.low), new.high) if isinstance(default, (int, float)) else new.low
        if isinstance(value, list):
            if not value:
                raise ValueError(f"{name}: a choice needs at least one value.")
            return Choice(*value), default if default in value else value[0]
        return None, value  # fixed

    def declare(self, hp) -> dict:
        """Declare the hyperparameters on keras-tuner's `hp`; returns `{name: value}`."""
        values = {}
        for name, (spec, default) in self.entries.items():
            if isinstance(spec, Range):
                values[name] = hp.Float(name, spec.low, spec.high, sampling="log" if spec.log else "linear", default=default)
            elif isinstance(spec, Choice):
                values[name] = hp.Choice(name, list(spec.values), default=default)
            else:
                values[name] = hp.Fixed(name, default)
        return values

    def recipe_from(self, values: dict, epochs: int) -> recipes_lib.Recipe:
        """The recipe these values describe, its schedules spanning `epochs`; the learning rate
        and its decay go into `params["training"]` (read by `tfbin train --recipe FILE.json`)."""
        chosen = {k: v for k, v in values.items() if k in self.entries and k not in TRAINING}
        recipe = recipes_lib.get(self.recipe, epochs=epochs, **chosen)
        recipe.params["training"] = {"lr": float(values["lr"]), "lr_decay": str(values.get("lr_decay", "constant"))}
        return recipe

    def get_config(self) -> dict:
        def plain(value):  # JSON keeps the tuple/list distinction as range dict/choice list
            return {"min_value": value[0], "max_value": value[1]} if isinstance(value, tuple) else value

        return {"recipe": self.recipe, **{k: plain(v) for k, v in self.ranges.items()}}

    @classmethod
    def from_config(cls, config: dict) -> "SearchSpace":
        return cls(**config)
