"""`binarize(model, recipe)`: a float Keras model or a larq model -> a model trained with a recipe."""
from __future__ import annotations

import warnings
from typing import NamedTuple

import larq as lq
import tensorflow as tf

from tfbin import _graph
from tfbin import recipes as recipes_lib

__all__ = ["Binarized", "binarize", "binarized_layers"]

# LCE has binary ops for 2D convolutions only (dense layers are rewritten to 1x1 convs on export).
_FLOAT_TO_QUANT = {tf.keras.layers.Conv2D: lq.layers.QuantConv2D, tf.keras.layers.Dense: lq.layers.QuantDense}
_NO_BINARY_OP = (tf.keras.layers.DepthwiseConv2D, tf.keras.layers.SeparableConv2D, tf.keras.layers.Conv2DTranspose)


class Binarized(NamedTuple):
    """What `binarize` returns: `model.fit(..., callbacks=callbacks)` is all a user writes."""

    model: tf.keras.Model
    callbacks: list


def _precision(quantizer):
    return getattr(quantizer, "precision", None)


def is_binarized(layer) -> bool:
    """A larq quantized layer whose input and kernel quantizers both have precision 1."""
    return _precision(getattr(layer, "input_quantizer", None)) == 1 and _precision(getattr(layer, "kernel_quantizer", None)) == 1


def binarized_layers(model: tf.keras.Model) -> list:
    """The binarized layers of `model` (`is_binarized`), in layer order; a
    `tfbin.training.TrainingModel`'s are those of the model it trains."""
    from tfbin.training import unwrap

    model = unwrap(model)
    return [layer for layer in _all_layers(model) if is_binarized(layer)]


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def _is_larq_binary_weight_layer(layer) -> bool:
    """A larq layer with 1-bit kernels and quantized (any precision) inputs: the recipe replaces
    both quantizers (e.g. DoReFaNet's 2-bit activations become the recipe's 1-bit ones)."""
    return (
        isinstance(layer, (lq.layers.QuantConv2D, lq.layers.QuantDense))
        and _precision(getattr(layer, "kernel_quantizer", None)) == 1
        and getattr(layer, "input_quantizer", None) is not None
    )


def _plan(model, recipe):
    """Names of the layers to (re)quantize, and `{name: reason}` for those left float."""
    float_candidates = [
        l for l in model.layers if type(l) in _FLOAT_TO_QUANT  # exact types: not Depthwise/Separable
    ]
    keep = set()
    for entry in recipe.keep_full_precision:
        if entry == "first" and float_candidates:
            keep.add(float_candidates[0].name)
        elif entry == "last" and float_candidates:
            keep.add(float_candidates[-1].name)
        elif entry not in ("first", "last"):
            if entry not in {l.name for l in model.layers}:
                raise ValueError(f"keep_full_precision names layer {entry!r}, which {model.name!r} does not have.")
            keep.add(entry)
    # A larq model (larq-zoo's, or one already binarized) has chosen its float layers: only its
    # binary layers get the recipe's quantizers. A float model gets every Conv2D/Dense but those kept.
    larq_model = any(_is_larq_binary_weight_layer(l) for l in model.layers)
    targets, skipped = [], {}
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            skipped[layer.name] = "nested model: binarize it on its own first"
        elif _is_larq_binary_weight_layer(layer):
            targets.append(layer.name)
        elif type(layer) in _FLOAT_TO_QUANT and not larq_model:
            if layer.name not in keep:
                targets.append(layer.name)
        elif isinstance(layer, _NO_BINARY_OP) or isinstance(layer, lq.layers.QuantDepthwiseConv2D):
            skipped[layer.name] = f"{type(layer).__name__} stays float: LCE has no binary op for it"
    return targets, skipped


def _quantized(layer, recipe):
    config = layer.get_config()
    cls = lq.layers.QuantDense if isinstance(layer, tf.keras.layers.Dense) else lq.layers.QuantConv2D
    config.update(
        input_quantizer=recipe.make_input_quantizer(),
        kernel_quantizer=recipe.make_kernel_quantizer(),
        kernel_constraint=recipe.make_kernel_constraint(),
    )
    if cls is lq.layers.QuantConv2D and config.get("padding") == "same":
        config["pad_values"] = 1.0  # binary 'same' padding: LCE's fast path, and exact at borders
    return cls(**config)


def binarize(model: tf.keras.Model, recipe="irnet", *, epochs=None, **overrides) -> Binarized:
    """Apply a recipe to a float Keras model or a larq model; weights are kept.

    - A float model: `Conv2D` and `Dense` layers become `lq.layers.QuantConv2D` / `QuantDense`
      with the recipe's quantizers and kernel constraint (`pad_values=1` for 'same' padding),
      except those the recipe keeps full precision (the first and last by default).
    - A larq model (one with larq layers with 1-bit kernels and quantized inputs, such as a
      larq-zoo model): those layers get the recipe's quantizers; its float layers stay float.
    - Depthwise/separable convs stay float (LCE has no binary op for them), with a warning that
      lists them, as does any other layer that cannot be binarized.

    ```python
    binarized = tfbin.binarize(float_model, "irnet", epochs=10)
    binarized.model.compile(...)
    binarized.model.fit(data, epochs=10, callbacks=binarized.callbacks)
    ```

    # Arguments
        recipe: a recipe name, config or `Recipe`.
        epochs: the length of the recipe's schedules (needed by recipes that sharpen).
        **overrides: parameters of the named recipe (e.g. `t_min=0.01`).
    """
    _graph.check_rebuildable(model, "binarize")
    if isinstance(recipe, str):
        if epochs is not None:
            overrides["epochs"] = epochs
        recipe = recipes_lib.get(recipe, **overrides)
    else:
        recipe = recipes_lib.get(recipe)
    targets, skipped = _plan(model, recipe)
    if not targets:
        raise ValueError(
            f"Model {model.name!r} has nothing to binarize with recipe {recipe.name!r}: no Conv2D or "
            f"Dense layer outside those kept full precision {list(recipe.keep_full_precision)}, and "
            "no larq layer with 1-bit kernels."
        )
    if skipped:
        warnings.warn(
            "tfbin.binarize left these layers float: "
            + "; ".join(f"{name} ({why})" for name, why in skipped.items()),
            stacklevel=2,
        )

    new_model = _graph.rebuild(model, lambda layer: _quantized(layer, recipe) if layer.name in targets else None)
    for loss in recipe.losses:
        new_model = loss.attach(new_model)
    return Binarized(new_model, recipe.callbacks())
