"""Rebuild a Sequential/functional Keras model with some layers replaced, keeping weights."""
from __future__ import annotations

from typing import Callable

import tensorflow as tf


def own_weights(layer) -> dict:
    """`{short name: variable}` of the weights a layer creates itself (not its sublayers')."""
    own = list(layer._trainable_weights) + list(layer._non_trainable_weights)
    return {w.name.split("/")[-1]: w for w in own}


def check_rebuildable(model, what: str) -> None:
    if not isinstance(model, tf.keras.Model):
        raise TypeError(f"{what} needs a tf.keras.Model (tf-keras), got {type(model).__name__}.")
    if not (isinstance(model, tf.keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise TypeError(
            f"{what} needs a Sequential or functional model; {model.name!r} is a subclassed "
            "model, whose layers cannot be rebuilt. Build it functionally."
        )


def rebuild(model: tf.keras.Model, replace: Callable, *, share: bool = False) -> tf.keras.Model:
    """Clone `model`; `replace(layer)` returns a new layer for it, or None to keep it.

    Kept layers are copies with the original's weights, or with `share=True` the original layer
    objects themselves (no config round trip; the new model then shares their weights).
    Replacement layers get the original's own weights that have the same names (`kernel`,
    `bias`, ...) and shapes; the rest keep their initial values.
    """
    replaced = {}

    def clone(layer):
        new = replace(layer)
        if new is None:
            return layer if share else layer.__class__.from_config(layer.get_config())
        replaced[layer.name] = True
        return new

    new_model = tf.keras.models.clone_model(model, clone_function=clone)
    for old, new in zip(model.layers, new_model.layers):
        if old.name in replaced:
            source = own_weights(old)
            for key, variable in own_weights(new).items():
                if key in source and source[key].shape == variable.shape:
                    variable.assign(source[key])
        elif new is not old:
            new.set_weights(old.get_weights())
    return new_model
