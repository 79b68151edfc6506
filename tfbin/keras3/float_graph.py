"""`tfbin.keras3.binarize`'s graph: who reads whom in a Keras 3 model, and the rebuild with changes.

The rules are the Keras 2 `tfbin.binarize`'s, and the very same code: `tfbin.frameworks` (which
Conv2D/Dense layers are binarized, which sign-destroying activations in front of one are removed,
where a BatchNormalization is inserted before and after one, the report) run on `KERAS3`, Keras
3's layer classes, and on `Graph`. Only the walk over the graph and the rebuild are Keras 3's:
who reads whom comes from the model's config, and the model is rebuilt with
`keras.models.clone_model` (functional) or as a new `keras.Sequential`.
"""
from __future__ import annotations

import warnings

import keras
from keras.src.models.functional import Functional  # Keras 3's functional model class (no public name)

from tfbin import frameworks
from tfbin.keras3.quant_layers import QuantConv2D, QuantDense

__all__ = ["KERAS3", "Graph", "check_rebuildable", "is_binary_layer", "prepare", "rebuild"]


def is_binary_layer(layer) -> bool:
    """A `QuantConv2D`/`QuantDense` with a 1-bit kernel quantizer and an input quantizer: a
    binary layer whose quantizers a recipe replaces (larq's rule in `tfbin.binarize`)."""
    kernel = getattr(layer, "kernel_quantizer", None)
    return (isinstance(layer, (QuantConv2D, QuantDense)) and getattr(kernel, "precision", None) == 1
            and getattr(layer, "input_quantizer", None) is not None)


# The graph rules (tfbin.frameworks) on Keras 3's layer classes.
KERAS3 = frameworks.Framework("tfbin.keras3.binarize", keras.layers, keras.activations, keras.Model, is_binary_layer,
                              binary_layers="binary QuantConv2D/QuantDense layer")


def check_rebuildable(model) -> None:
    """A TypeError unless `model` is a built Sequential or a functional Keras 3 model."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"tfbin.keras3.binarize needs a Keras 3 keras.Model, got {type(model).__name__}.")
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise TypeError(f"tfbin.keras3.binarize needs a built model: give Sequential {model.name!r} a keras.Input first.")
    elif not isinstance(model, Functional):
        raise TypeError(
            f"tfbin.keras3.binarize needs a Sequential or functional model; {model.name!r} is a subclassed "
            "model, whose layers cannot be rebuilt. Build it functionally."
        )


def _history(node) -> list[str]:
    """The names of the layers whose outputs a serialized call reads (its `keras_history`)."""
    if isinstance(node, dict):
        if node.get("class_name") == "__keras_tensor__":
            return [node["config"]["keras_history"][0]]
        return [name for value in node.values() for name in _history(value)]
    if isinstance(node, (list, tuple)):
        return [name for value in node for name in _history(value)]
    return []


class Graph:
    """Who reads whom in a Sequential or functional Keras 3 model (from its config, by layer name)."""

    def __init__(self, model):
        self.model = model
        self.layers = {layer.name: layer for layer in model.layers}
        if isinstance(model, keras.Sequential):
            names = [layer.name for layer in model.layers]
            self.calls = {name: [names[i - 1:i]] for i, name in enumerate(names)}
        else:
            self.calls = {entry["name"]: [_history(node) for node in entry["inbound_nodes"]]
                          for entry in model.get_config()["layers"]}
        self.readers = {name: [] for name in self.calls}
        for name, calls in self.calls.items():
            for call in calls:
                for source in call:
                    self.readers.setdefault(source, []).append(name)

    def inbound(self, layer) -> list | None:
        """The layers `layer` reads; None for a layer called more than once (shared)."""
        calls = self.calls.get(layer.name, [])
        if len(calls) != 1:
            return None
        return [self.layers[name] for name in calls[0] if name in self.layers]

    def predecessor(self, layer):
        """The one layer `layer` reads; None at an input, a merge or a shared layer."""
        inbound = self.inbound(layer)
        return inbound[0] if inbound is not None and len(inbound) == 1 else None

    def outbound(self, layer) -> list:
        """The layers that read `layer`'s output (one entry per call)."""
        return [self.layers[name] for name in self.readers.get(layer.name, [])]


def prepare(model, targets, normalize_outputs=True, insert_batch_norm="auto") -> frameworks.Changes:
    """The changes `tfbin.binarize`'s rules (`tfbin.frameworks.decide`) make to the float graph
    for the binarized `targets`."""
    graph = Graph(model)
    changes = frameworks.decide(KERAS3, graph, targets, normalize_outputs, insert_batch_norm)
    if changes.refused:
        warnings.warn("tfbin.keras3.binarize: " + "; ".join(changes.refused), stacklevel=3)  # binarize's caller
    for name in changes.before:
        if graph.inbound(graph.layers[name]) is None:
            raise ValueError(f"tfbin.keras3.binarize: layer {name!r} is shared; insert a BatchNormalization before it yourself.")
    return changes


class _Rebuild:
    """The pieces of one rebuild: each layer's replacement and the layers inserted around it."""

    def __init__(self, changes: frameworks.Changes, quantize):
        self.changes, self.quantize, self.replaced = changes, quantize, set()

    def clone(self, layer):
        config = layer.get_config()
        if layer.name in self.changes.strip and isinstance(layer, (keras.layers.ReLU, keras.layers.Activation)):
            return keras.layers.Activation("linear", name=layer.name, dtype=layer.dtype_policy)
        if layer.name in self.changes.strip or layer.name in self.changes.after:
            config["activation"] = "linear"
        replacement = self.quantize(layer, config)
        if replacement is None:
            return layer.__class__.from_config(config)
        self.replaced.add(layer.name)
        return replacement

    def before(self, name) -> list:
        return [keras.layers.BatchNormalization(name=f"{name}_input_bn")] if name in self.changes.before else []

    def after(self, name) -> list:
        if name not in self.changes.after:
            return []
        added = [keras.layers.BatchNormalization(name=f"{name}_output_bn")]
        if self.changes.after[name] != "linear":
            added.append(keras.layers.Activation(self.changes.after[name], name=f"{name}_activation"))
        return added

    def call(self, layer, *args, **kwargs):
        """Functional models: `layer` called with its inserted layers around it."""
        for inserted in self.before(layer.name):
            args = (inserted(args[0]), *args[1:])
        outputs = layer(*args, **kwargs)
        for inserted in self.after(layer.name):
            outputs = inserted(outputs)
        return outputs


def rebuild(model, changes: frameworks.Changes, quantize):
    """`model` rebuilt with `changes` and each layer for which `quantize(layer, config)` returns
    a layer replaced by it (`None`: kept, from its config); weights are copied by layer name
    (a replacement gets its original's `kernel` and `bias`)."""
    steps = _Rebuild(changes, quantize)
    if isinstance(model, keras.Sequential):
        layers = [new for layer in model.layers for new in (*steps.before(layer.name), steps.clone(layer), *steps.after(layer.name))]
        source = model.inputs[0]
        new_model = keras.Sequential([keras.Input(batch_shape=source.shape, dtype=source.dtype), *layers], name=model.name)
    else:
        new_model = keras.models.clone_model(model, clone_function=steps.clone, call_function=steps.call)
    _copy_weights(model, new_model, steps.replaced)
    return new_model


def _copy_weights(model, new_model, replaced):
    old = {layer.name: layer for layer in model.layers}
    for layer in new_model.layers:
        source = old.get(layer.name)
        if source is None or isinstance(layer, keras.layers.InputLayer):
            continue
        if layer.name not in replaced:
            layer.set_weights(source.get_weights())
            continue
        for attribute in ("kernel", "bias"):  # a replacement: its original's own weights
            mine, theirs = getattr(layer, attribute, None), getattr(source, attribute, None)
            if mine is not None and theirs is not None and tuple(mine.shape) == tuple(theirs.shape):
                mine.assign(theirs)
