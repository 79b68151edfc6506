"""What `tfbin.keras3.binarize` changes in a Keras 3 model's graph, and the rebuild that does it.

The rules are the Keras 2 `tfbin.binarize`'s (its docstring explains them): which Conv2D/Dense
layers are binarized (all but the first and last, or a recipe's `keep_full_precision`; a model
that already has binary `QuantConv2D`/`QuantDense` layers keeps its graph and only those get the
recipe's quantizers), which sign-destroying activations (ReLU, ...) in front of a binarized
layer are removed, where a BatchNormalization is inserted before a binarized layer (its input
not normalized) and after one (its output reaching float layers unnormalized). Only the walk
over the graph is Keras 3's: who reads whom comes from the model's config, and the model is
rebuilt with `keras.models.clone_model` (functional) or as a new `keras.Sequential`.
"""
from __future__ import annotations

import re
import warnings

import keras
from keras.src.models.functional import Functional  # Keras 3's functional model class (no public name)

from tfbin.keras3.quant_layers import QuantConv2D, QuantDense

__all__ = ["Graph", "Changes", "check_rebuildable", "is_binary_layer", "plan", "prepare", "rebuild", "INSERT_MODES"]

# LCE has binary ops for 2D convolutions only; these float layers are binarized (exact types).
FLOAT_TO_QUANT = {keras.layers.Conv2D: QuantConv2D, keras.layers.Dense: QuantDense}
_NO_BINARY_OP = (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D, keras.layers.Conv2DTranspose)
# The layer classes of the Keras 2 rules (tfbin.binarize), in Keras 3.
_NONNEGATIVE = {"relu", "relu6", "sigmoid", "hard_sigmoid", "softplus", "exponential", "softmax"}
_SHAPE_ONLY = (
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.Dropout,
    keras.layers.Flatten,
    keras.layers.Reshape,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
)
_FORWARD = (*_SHAPE_ONLY, keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
_PASS_THROUGH = (
    *_SHAPE_ONLY,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
)
_MERGES = (keras.layers.Add, keras.layers.Average, keras.layers.Concatenate)
_NORMALIZATIONS = (keras.layers.BatchNormalization, keras.layers.LayerNormalization)
INSERT_MODES = ("auto", "always", "never")


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


def activation_name(activation) -> str:
    name = keras.activations.serialize(activation)
    return name if isinstance(name, str) else str(name)


def _destroys_sign(layer) -> bool:
    """The layer's output is never negative (its sign carries no information)."""
    if isinstance(layer, keras.layers.ReLU):
        return not layer.negative_slope and (layer.threshold or 0) >= 0
    if isinstance(layer, (keras.layers.Activation, keras.layers.Conv2D, keras.layers.Dense)):
        return activation_name(layer.activation) in _NONNEGATIVE
    return False


def _keeps_normalization(layer) -> bool:
    return isinstance(layer, _PASS_THROUGH) or bool(getattr(layer, "keeps_normalization", False))


class _Normalized:
    """Whether a layer's output is a normalized tensor (`tfbin.binarize`'s rule), memoized."""

    def __init__(self, graph: Graph):
        self.graph, self.memo = graph, {}
        for layer in graph.model.layers:  # in depth order: the recursion below stays shallow
            self(layer)

    def __call__(self, layer) -> bool:
        key = id(layer)
        if key not in self.memo:
            self.memo[key] = False  # while it is being decided (a Keras graph has no cycles)
            self.memo[key] = self._decide(layer)
        return self.memo[key]

    def _decide(self, layer) -> bool:
        if isinstance(layer, _NORMALIZATIONS):
            return True
        if isinstance(layer, _MERGES):
            inbound = self.graph.inbound(layer)
            return bool(inbound) and all(self(l) for l in inbound)
        if _keeps_normalization(layer) and not _destroys_sign(layer):
            previous = self.graph.predecessor(layer)
            return previous is not None and self(previous)
        return False


def _input_path(layer, graph, normalized, mode="auto"):
    """Walk back from a layer's input: `(sign-destroying layers, whether its input is normalized
    once they are removed)`; `mode="always"` counts only a normalization directly in front."""
    destroyers, current = [], graph.predecessor(layer)
    while current is not None and not isinstance(current, keras.layers.InputLayer):
        if isinstance(current, _NORMALIZATIONS):
            return destroyers, True
        if _destroys_sign(current):
            destroyers.append(current)
            if not isinstance(current, (keras.layers.ReLU, keras.layers.Activation)):
                return destroyers, False  # a conv/dense with its own activation produced the input
        elif mode == "always":
            return destroyers, False
        elif isinstance(current, _MERGES):
            return destroyers, normalized(current)
        elif not _keeps_normalization(current):
            return destroyers, False
        current = graph.predecessor(current)
    return destroyers, False


def _output_unnormalized(layer, graph, targets) -> bool:
    """The binarized `layer`'s output reaches a float layer (or an activation) with no
    normalization first, looking forward through shape-only layers; a branching output is left alone."""
    consumers = graph.outbound(layer)
    while len(consumers) == 1:
        current = consumers[0]
        if isinstance(current, _NORMALIZATIONS) or current.name in targets:
            return False
        if not isinstance(current, _FORWARD):
            return True
        consumers = graph.outbound(current)
    return False


def is_binary_layer(layer) -> bool:
    """A `QuantConv2D`/`QuantDense` with a 1-bit kernel quantizer and an input quantizer: a
    binary layer whose quantizers a recipe replaces (larq's rule in `tfbin.binarize`)."""
    kernel = getattr(layer, "kernel_quantizer", None)
    return (isinstance(layer, (QuantConv2D, QuantDense)) and getattr(kernel, "precision", None) == 1
            and getattr(layer, "input_quantizer", None) is not None)


def _kept(model, keep_full_precision) -> set:
    """The names of the Conv2D/Dense layers a recipe keeps float ("first", "last", names)."""
    candidates = [l for l in model.layers if type(l) in FLOAT_TO_QUANT]  # exact types: not Depthwise/Separable
    keep = set()
    for entry in keep_full_precision:
        if entry == "first" and candidates:
            keep.add(candidates[0].name)
        elif entry == "last" and candidates:
            keep.add(candidates[-1].name)
        elif entry not in ("first", "last"):
            if entry not in {l.name for l in model.layers}:
                raise ValueError(f"keep_full_precision names layer {entry!r}, which {model.name!r} does not have.")
            keep.add(entry)
    return keep


def plan(model, keep_full_precision) -> tuple[list, dict]:
    """Names of the layers to (re)quantize, and `{name: reason}` for those left float."""
    keep = _kept(model, keep_full_precision)
    binary_model = any(is_binary_layer(l) for l in model.layers)
    targets, skipped = [], {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            skipped[layer.name] = "nested model: binarize it on its own first"
        elif is_binary_layer(layer):
            targets.append(layer.name)
        elif type(layer) in FLOAT_TO_QUANT and not binary_model:
            if layer.name not in keep:
                targets.append(layer.name)
        elif isinstance(layer, _NO_BINARY_OP):
            skipped[layer.name] = f"{type(layer).__name__} stays float: LCE has no binary op for it"
    return targets, skipped


class Changes:
    """What `prepare` decided: activations to make linear (`strip`), targets that get a BN in
    front (`before`) and after (`after`, `{name: its activation, moved behind the BN}`), and the
    report lines (`lines`)."""

    def __init__(self):
        self.strip, self.before, self.after, self.lines = set(), [], {}, []

    def __bool__(self):
        return bool(self.strip or self.before or self.after)


def prepare(model, targets, normalize_outputs=True, insert_batch_norm="auto") -> Changes:
    """Decide the float graph's changes for the binarized `targets` (`tfbin.binarize`'s rules)."""
    graph, changes = Graph(model), Changes()
    normalized, targets = _Normalized(graph), set(targets)
    removed, refused = [], []
    for layer in model.layers:
        if layer.name not in targets:
            continue
        if normalize_outputs and _output_unnormalized(layer, graph, targets):
            changes.after[layer.name] = activation_name(layer.activation)
        destroyers, has_bn = _input_path(layer, graph, normalized, insert_batch_norm)
        for d in destroyers:
            if len(graph.outbound(d)) > 1:
                what = "the ReLU" if isinstance(d, keras.layers.ReLU) else f"activation {activation_name(d.activation)!r}"
                refused.append(f"{d.name} ({what}) also feeds other layers; replace it yourself")
                has_bn = False  # it stays: a BN behind it gives its output both signs
                continue
            if d.name not in changes.strip:
                changes.strip.add(d.name)
                removed.append((d.name, "relu" if isinstance(d, keras.layers.ReLU) else activation_name(d.activation), layer.name))
        if not has_bn and insert_batch_norm != "never":
            if graph.inbound(layer) is None:
                raise ValueError(f"tfbin.keras3.binarize: layer {layer.name!r} is shared; insert a BatchNormalization before it yourself.")
            changes.before.append(layer.name)
    if refused:
        warnings.warn("tfbin.keras3.binarize: " + "; ".join(refused), stacklevel=4)
    changes.lines = report(removed, changes.before, list(changes.after.items()))
    return changes


def _names(names) -> str:
    """`'a', 'b'`, each run of 3 or more consecutively numbered names written as its ends."""
    runs = []
    for name in names:
        match = re.fullmatch(r"(.*)_(\d+)", name)
        prefix, number = (match.group(1), int(match.group(2))) if match else (name, 0)
        if runs and runs[-1][0] == prefix and runs[-1][1] + 1 == number:
            runs[-1][1], runs[-1][2] = number, runs[-1][2] + [name]
        else:
            runs.append([prefix, number, [name]])
    words = []
    for _, _, run in runs:
        words += [f"{run[0]!r} … {run[-1]!r}"] if len(run) >= 3 else [repr(n) for n in run]
    return ", ".join(words)


def _which(names, what="binarized layer") -> str:
    return repr(names[0]) if len(names) == 1 else f"{len(names)} {what}s ({_names(names)})"


def report(removed, before, after) -> list:
    """The changes, one line per kind, worded as `tfbin.binarize`'s `Binarized.changes`."""
    lines = []
    if removed:
        layers, activations = [d for d, _, _ in removed], list(dict.fromkeys(a for _, a, _ in removed))
        behind = list(dict.fromkeys(t for _, _, t in removed))
        what = (f"activation {activations[0]!r} of {_which(layers, 'layer')}" if len(activations) == 1 else
                f"activations {', '.join(map(repr, activations))} of {len(layers)} layers ({', '.join(f'{d!r} ({a})' for d, a, _ in removed)})")
        lines.append(f"removed {what}: sign() of a non-negative output is constant, so {_which(behind)} would see no information")
    if before:
        lines.append(f"inserted BatchNormalization before {_which(before)}: a binarized layer's sign "
                     "needs a centered, scaled input (and the STE's |x| ≤ 1 window)")
    if after:
        names, moved = [name for name, _ in after], {act for _, act in after if act != "linear"}
        if len(after) == 1:
            where = f"{names[0]!r}{f' (before its {after[0][1]!r})' if moved else ''}"
        else:
            where = _which(names) + (f", their activations ({', '.join(sorted(moved))}) moved behind it" if moved else "")
        lines.append(f"inserted BatchNormalization after {where}: a binary layer's output is an integer sum over its "
                     "fan-in (scale ~sqrt(fan-in)), which the float layers after it are not initialized for")
    return lines


class _Rebuild:
    """The pieces of one rebuild: each layer's replacement and the layers inserted around it."""

    def __init__(self, changes: Changes, quantize):
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


def rebuild(model, changes: Changes, quantize):
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
