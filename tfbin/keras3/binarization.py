"""`tfbin.keras3.binarize(model, recipe)`: a float Keras 3 model -> a binary one trained with a recipe.

The recipes are tfbin's built-in ones (`tfbin.builtin_recipes`: the same names, defaults and
parameters as `tfbin.binarize`); a recipe's quantizers, constraint and schedules are read from its
config, and each quantizer becomes its Keras 3 twin (`tfbin.keras3.binary_quantizers.get`), each
schedule drives `tfbin.keras3.SharpeningScheduler`. The graph rules are `tfbin.binarize`'s, the
same code (`tfbin.frameworks`, on Keras 3's graph: `tfbin.keras3.float_graph`). What it returns
is `tfbin.binarize`'s `Binarized`. Nothing here needs larq or tf-keras.
"""
from __future__ import annotations

import keras

from tfbin import builtin_recipes, frameworks
import tfbin.schedules as schedules_lib  # not `from tfbin import`: in a Keras 3 process that loads tfbin's Keras 2 API
from tfbin.frameworks import Binarized
from tfbin.keras3 import binary_quantizers, float_graph, kernel_constraints
from tfbin.keras3.sharpening import SharpeningScheduler
from tfbin.keras3.quant_layers import QuantConv2D, QuantDense

__all__ = ["Binarized", "binarize", "Keras3Recipe"]


class Keras3Recipe:
    """A recipe config (`tfbin.builtin_recipes.make`, or `tfbin.recipes.Recipe.get_config()`)
    made for Keras 3: its quantizers' and constraint's Keras 3 twins (larq's `SteSign`,
    `ApproxSign`, `SwishSign`, `MagnitudeAwareSign`, i.e. `binary_quantizers.LARQ_TWINS`, and
    larq's `WeightClip` included), and its callbacks as Keras 3 callbacks; a NotImplementedError
    names what has no Keras 3 version yet (the ABC-Net/BLRNet layers, CMIM's and ABR's auxiliary
    losses)."""

    def __init__(self, config: dict):
        self.name = config["name"]
        self.keep_full_precision = tuple(config.get("keep_full_precision", ("first", "last")))
        self.update_freq = frameworks.check_update_freq(config.get("update_freq", "epoch"))
        self.schedules = {k: schedules_lib.get(v) for k, v in (config.get("schedules") or {}).items()}
        missing = []
        if config.get("layer_type") is not None:
            missing.append(f"its {config['layer_type']!r} layers (a layer family of tfbin.families, Keras 2 only) replace Conv2D/Dense")
        missing += [f"its auxiliary loss {self._name(loss).split('>')[-1]} (tfbin.losses)" for loss in config.get("losses") or []]
        for role in ("input_quantizer", "kernel_quantizer"):
            identifier = config.get(role)
            if identifier is not None and self._quantizer_class(identifier) is None:
                missing.append(f"its {role} {self._name(identifier)} (a Keras 2 quantizer)")
        constraint = config.get("kernel_constraint")
        if constraint is not None and kernel_constraints.class_of(self._name(constraint)) is None:
            missing.append(f"its kernel_constraint {self._name(constraint)}")
        if missing:
            raise NotImplementedError(
                f"Recipe {self.name!r} has no Keras 3 version yet: {'; '.join(missing)}. tfbin.keras3 has the quantizers "
                f"{sorted(binary_quantizers.ALIASES)} and the constraints {list(kernel_constraints.ALIASES)}; use the Keras 2 path (tfbin.binarize)."
            )
        self.config = config

    @staticmethod
    def _name(identifier) -> str:
        if isinstance(identifier, dict):
            return identifier.get("registered_name") or identifier.get("class_name")
        return identifier if isinstance(identifier, str) else type(identifier).__name__

    @classmethod
    def _quantizer_class(cls, identifier):
        return binary_quantizers.class_of(cls._name(identifier))

    def make_input_quantizer(self):
        """A new Keras 3 input quantizer for one layer."""
        return binary_quantizers.get(self.config["input_quantizer"])

    def make_kernel_quantizer(self):
        """A new Keras 3 kernel quantizer for one layer (None: the layer keeps float weights)."""
        return binary_quantizers.get(self.config["kernel_quantizer"])

    def make_kernel_constraint(self):
        constraint = self.config["kernel_constraint"]
        return None if constraint is None else kernel_constraints.get(constraint)

    def callbacks(self) -> list:
        """The Keras 3 callbacks `model.fit` needs (the recipe's sharpening schedules)."""
        return [SharpeningScheduler(self.schedules, update_freq=self.update_freq)] if self.schedules else []

    def quantize(self, layer, config):
        """The binary layer for `layer` (its `config`, possibly changed), as `tfbin.binarize` makes it."""
        cls = QuantDense if isinstance(layer, keras.layers.Dense) else QuantConv2D
        config = dict(config, input_quantizer=self.make_input_quantizer(), kernel_quantizer=self.make_kernel_quantizer(),
                      kernel_constraint=self.make_kernel_constraint())
        if cls is QuantConv2D and config.get("padding") == "same":
            config["pad_values"] = 1.0  # binary 'same' padding: LCE's fast path, and exact at borders
        return cls.from_config(config)


def binarize(model, recipe="irnet", *, epochs=None, insert_batch_norm="auto", **overrides) -> Binarized:
    """Apply a recipe to a float Keras 3 model (Sequential or functional); weights are kept.

    What `tfbin.binarize` does on Keras 2, with the same recipes (names, defaults, parameters):

    - `Conv2D` and `Dense` layers become `tfbin.keras3.QuantConv2D` / `QuantDense` with the
      recipe's quantizers (their Keras 3 twins) and kernel constraint (`pad_values=1` for
      'same' padding), except those the recipe keeps full precision (the first and last by
      default). A model with binary `QuantConv2D`/`QuantDense` layers keeps its graph: only
      those get the recipe's quantizers. Depthwise/separable convs stay float, with a warning.
    - Sign-destroying activations (ReLU, ReLU6, sigmoid, ...) in front of a binarized layer are
      removed; a BatchNormalization is inserted where none normalizes a binarized layer's input
      (`insert_batch_norm`: `"auto"`, `"always"`, `"never"`) and after a binarized layer whose
      output reaches float layers unnormalized. `Binarized.changes` lists them, as does a warning.

    ```python
    model, callbacks = tfbin.keras3.binarize(float_model, "irnet", epochs=10)
    model.compile(...)
    model.fit(data, epochs=10, callbacks=callbacks)
    ```

    larq's baselines (`tfbin.builtin_recipes.LARQ_BASELINES`: `ste`, `approx_sign`, `swish_sign`,
    `bireal`) run here with the Keras 3 twins of larq's quantizers, which compute larq's numbers
    forward and backward. Recipes whose pieces have no Keras 3 version yet raise
    NotImplementedError naming them: `abc`, `blrnet` (their layers), `irnet_cmim` (CMIM's loss),
    and `abr` with `slope_growth > 0`.

    # Arguments
        recipe: a built-in recipe's name (`tfbin.builtin_recipes.available()`), a recipe config,
            or a `tfbin.recipes.Recipe` (the Keras 2 side's: a recipe of one's own).
        epochs: the length of the recipe's schedules (needed by recipes that sharpen).
        insert_batch_norm: `"auto"` (default), `"always"` or `"never"` (`tfbin.binarize`).
        **overrides: parameters of the named recipe (e.g. `t_min=0.01`).
    """
    float_graph.check_rebuildable(model)
    frameworks.check_insert_mode(insert_batch_norm)
    keras3_recipe = Keras3Recipe(_config(recipe, epochs, overrides))
    targets = frameworks.targets(float_graph.KERAS3, model, keras3_recipe)
    changes = frameworks.Changes()
    if not any(float_graph.is_binary_layer(l) for l in model.layers):  # a binary model chose its own graph
        changes = float_graph.prepare(model, targets, insert_batch_norm=insert_batch_norm)
        frameworks.warn_changes(float_graph.KERAS3, changes.lines, stacklevel=2)  # binarize's caller
    quantize = lambda layer, config: keras3_recipe.quantize(layer, config) if layer.name in targets else None  # noqa: E731
    result = Binarized(float_graph.rebuild(model, changes, quantize), keras3_recipe.callbacks())
    result.changes = changes.lines
    return result


def _config(recipe, epochs, overrides) -> dict:
    """`binarize`'s recipe argument as a recipe config: a built-in recipe's name with `epochs` and
    the overrides, a config, or a `tfbin.recipes.Recipe` (the Keras 2 side's, e.g. a recipe of
    one's own registered with `tfbin.recipes.register`)."""
    if isinstance(recipe, str):
        if epochs is not None:
            overrides["epochs"] = epochs
        return builtin_recipes.make(recipe, **overrides)
    if overrides:
        raise ValueError("Overrides apply to recipe names; a recipe config or Recipe object is already complete.")
    if isinstance(recipe, dict):
        return recipe
    if callable(getattr(recipe, "get_config", None)):
        return recipe.get_config()
    raise TypeError(f"recipe must be a recipe name ({builtin_recipes.available()}), a recipe config or a tfbin.recipes.Recipe; got {recipe!r}.")
