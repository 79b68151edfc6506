"""Walk and rebuild Sequential/functional Keras models: a layer's neighbours in one model, and
a clone with some layers replaced, keeping weights."""
from __future__ import annotations

from typing import Callable

import tensorflow as tf


def own_weights(layer) -> dict:
    """`{short name: variable}` of the weights a layer creates itself (not its sublayers')."""
    own = list(layer._trainable_weights) + list(layer._non_trainable_weights)
    return {w.name.split("/")[-1]: w for w in own}


def inbound_layers(layer, model) -> list | None:
    """The layers whose outputs `layer` reads in its call in `model`, or None where `layer` is
    called more than once in `model` (a shared layer: which call is meant is ambiguous).

    Only `layer`'s nodes in `model` count: a layer shared with another model (the exporter's
    rebuilt model shares the original's layers) has one node per model. A layer with no node
    in `model` itself (one of a nested model's) is read in the model it was called in.
    """
    nodes = _nodes_in(layer, model)
    if len(nodes) != 1:
        return None
    inbound = nodes[0].inbound_layers
    return list(inbound) if isinstance(inbound, (list, tuple)) else [inbound]


def _nodes_in(layer, model) -> list:
    """`layer`'s calls in `model`; all its calls where it has none there (a nested model's layer)."""
    keys = getattr(model, "_network_nodes", None) or ()
    own = [node for index, node in enumerate(layer._inbound_nodes) if f"{layer.name}_ib-{index}" in keys]
    return own or list(layer._inbound_nodes)


def _in_model(node, model) -> bool:
    layer = node.outbound_layer
    return f"{layer.name}_ib-{layer._inbound_nodes.index(node)}" in (getattr(model, "_network_nodes", None) or ())


def predecessor(layer, model):
    """The one layer whose output `layer` reads in `model`; None for a layer with several inputs
    (a merge), none (the model's input layer) or several calls in `model`."""
    inbound = inbound_layers(layer, model)
    return inbound[0] if inbound is not None and len(inbound) == 1 else None


def outbound_layers(layer, model) -> list:
    """The layers that read `layer`'s output in `model` (one entry per call); for a layer with
    no call in `model` itself (a nested model's), those in the model it was called in."""
    nodes = layer._outbound_nodes
    if any(_in_model(node, model) for node in _nodes_in(layer, model)):
        nodes = [node for node in nodes if _in_model(node, model)]
    return [node.outbound_layer for node in nodes]


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
