"""`binarize(model, recipe)`: a float Keras model or a larq model -> a model trained with a recipe."""
from __future__ import annotations

import contextlib
import re
import warnings
from typing import NamedTuple

import larq as lq
import tensorflow as tf

from tfbin import _graph, _quiet
from tfbin import recipes as recipes_lib
from tfbin.introspect import precision
from tfbin.layers import LAYER_TYPES, from_float

__all__ = ["Binarized", "binarize"]

# LCE has binary ops for 2D convolutions only (dense layers are rewritten to 1x1 convs on export).
_FLOAT_TO_QUANT = {tf.keras.layers.Conv2D: lq.layers.QuantConv2D, tf.keras.layers.Dense: lq.layers.QuantDense}
_NO_BINARY_OP = (tf.keras.layers.DepthwiseConv2D, tf.keras.layers.SeparableConv2D, tf.keras.layers.Conv2DTranspose)


class _ModelAndCallbacks(NamedTuple):
    model: tf.keras.Model
    callbacks: list


class Binarized(_ModelAndCallbacks):
    """What `binarize` returns: `model.fit(..., callbacks=callbacks)` is all a user writes.

    It unpacks as `(model, callbacks)`; `.changes` lists what `binarize` changed in a float
    model's graph besides the quantizers (activations removed, BatchNormalization inserted),
    one sentence per kind of change, naming the layers.
    """

    changes: list


# Activations whose outputs are never negative: `sign` of them (lq.math.sign(0) = +1) is the
# constant +1, so a binarized layer behind one of them sees no information at all.
_NONNEGATIVE = {"relu", "relu6", "sigmoid", "hard_sigmoid", "softplus", "exponential", "softmax"}
# Layers that move, select or reshape values without mixing channels' scales: a normalized
# tensor stays normalized through them, looking back from a binarized layer's input (a max of
# non-negative values is non-negative, etc.) and forward from its output (a BN behind them
# still normalizes it).
_SHAPE_ONLY = (
    tf.keras.layers.MaxPooling2D,
    tf.keras.layers.AveragePooling2D,
    tf.keras.layers.Dropout,
    tf.keras.layers.Flatten,
    tf.keras.layers.Reshape,
    tf.keras.layers.ZeroPadding2D,
    tf.keras.layers.Cropping2D,
)
# Looking forward only: global pooling (a BN after it still normalizes a binarized layer's
# output). Looking back they end the walk: the max over a whole feature map of a normalized
# tensor is far from centred.
_FORWARD = (*_SHAPE_ONLY, tf.keras.layers.GlobalAveragePooling2D, tf.keras.layers.GlobalMaxPooling2D)
# Looking back only: activations too. Those that keep the sign (tanh, LeakyReLU, ELU, ...; a
# clip to [-1, 1]) leave a BN before them normalizing the binarized input; those that destroy
# it (`_destroys_sign`) are found on the same walk and removed. A custom layer that keeps a
# normalized input normalized (bounded and centre-preserving, such as tfbin.models' HardTanh,
# or a strided, zero-padded slice such as its ZeroPadShortcut) declares the class attribute
# `keeps_normalization = True`.
_PASS_THROUGH = (
    *_SHAPE_ONLY,
    tf.keras.layers.Activation,
    tf.keras.layers.ReLU,
    tf.keras.layers.LeakyReLU,
    tf.keras.layers.PReLU,
    tf.keras.layers.ELU,
)
# Merges whose output is normalized when every input is (a residual sum of normalized branches).
_MERGES = (tf.keras.layers.Add, tf.keras.layers.Average, tf.keras.layers.Concatenate)


# A normalization in front of a binarized layer centers and scales its input; LayerNormalization
# counts too (per-sample statistics, e.g. for nets that must not depend on the batch).
_NORMALIZATIONS = (tf.keras.layers.BatchNormalization, tf.keras.layers.LayerNormalization)

# `binarize(..., insert_batch_norm=...)`
_INSERT_MODES = ("auto", "always", "never")


def _activation_name(activation) -> str:
    name = tf.keras.activations.serialize(activation)
    return name if isinstance(name, str) else str(name)


def _destroys_sign(layer) -> bool:
    """The layer's output is never negative (its sign carries no information)."""
    if isinstance(layer, tf.keras.layers.ReLU):
        return not layer.negative_slope and (layer.threshold or 0) >= 0
    if isinstance(layer, tf.keras.layers.Activation) or isinstance(layer, (tf.keras.layers.Conv2D, tf.keras.layers.Dense)):
        return _activation_name(layer.activation) in _NONNEGATIVE
    return False


def _keeps_normalization(layer) -> bool:
    return isinstance(layer, _PASS_THROUGH) or bool(getattr(layer, "keeps_normalization", False))


class _Normalized:
    """Whether a layer's output is a normalized tensor in `model`: a normalization's output,
    carried through layers that keep it (`_keeps_normalization`, no sign-destroying activation
    on the way), or a merge (`_MERGES`) of normalized tensors — a residual block's
    `hardtanh(BN(conv(x)) + shortcut(x))` is normalized when its input `x` is. Memoized per
    layer; the walk only goes back in an acyclic graph, so it ends at the inputs."""

    def __init__(self, model):
        self.model, self.memo = model, {}
        for layer in model.layers:  # in depth order: the recursion below stays shallow
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
            inbound = _graph.inbound_layers(layer, self.model)
            return bool(inbound) and all(self(l) for l in inbound)
        if _keeps_normalization(layer) and not _destroys_sign(layer):
            previous = _graph.predecessor(layer, self.model)
            return previous is not None and self(previous)
        return False


def _input_path(layer, model, normalized, mode="auto"):
    """Walk back from a layer's input: `(sign-destroying layers, whether its input is normalized
    once they are removed)`. `mode="always"` counts only a normalization directly in front
    (past the removed activations)."""
    destroyers, current = [], _graph.predecessor(layer, model)
    while current is not None and not isinstance(current, tf.keras.layers.InputLayer):
        if isinstance(current, _NORMALIZATIONS):
            return destroyers, True
        if _destroys_sign(current):
            destroyers.append(current)
            if not isinstance(current, (tf.keras.layers.ReLU, tf.keras.layers.Activation)):
                return destroyers, False  # a conv/dense with its own activation produced the input
        elif mode == "always":
            return destroyers, False
        elif isinstance(current, _MERGES):
            return destroyers, normalized(current)
        elif not _keeps_normalization(current):
            return destroyers, False
        current = _graph.predecessor(current, model)
    return destroyers, False


def _output_unnormalized(layer, model, targets) -> bool:
    """The binarized `layer`'s output reaches a float layer (or an activation) with no
    normalization first, looking forward through shape-only layers (`_FORWARD`). A layer whose output
    branches is left alone (a residual sum decides its own scales)."""
    consumers = _graph.outbound_layers(layer, model)
    while len(consumers) == 1:
        current = consumers[0]
        if isinstance(current, _NORMALIZATIONS) or current.name in targets:
            return False  # normalized here, or by the BN a binarized input gets
        if not isinstance(current, _FORWARD):
            return True
        consumers = _graph.outbound_layers(current, model)
    return False  # the output branches, or it is the model's output


def _names(names) -> str:
    """`'a', 'b'`, with every run of 3 or more consecutively numbered Keras names written as
    its ends: `'conv2d_1' … 'conv2d_18'`."""
    def parts(name):
        match = re.fullmatch(r"(.*)_(\d+)", name)
        return (match.group(1), int(match.group(2))) if match else (name, 0)

    runs = []
    for name in names:
        prefix, number = parts(name)
        if runs and runs[-1][0] == prefix and runs[-1][2] + 1 == number:
            runs[-1][2], runs[-1][3] = number, runs[-1][3] + [name]
        else:
            runs.append([prefix, number, number, [name]])
    words = []
    for _, _, _, run in runs:
        words += [f"{run[0]!r} … {run[-1]!r}"] if len(run) >= 3 else [repr(n) for n in run]
    return ", ".join(words)


def _which(names, what="binarized layer") -> str:
    """`'x'` for one name, `3 binarized layers ('a', 'b', 'c')` for several."""
    return repr(names[0]) if len(names) == 1 else f"{len(names)} {what}s ({_names(names)})"


def _report(removed, before, after) -> list:
    """binarize's changes, one line per kind: `removed` `[(layer, its activation, binarized
    layer behind it)]`, `before` names, `after` `[(name, activation)]`."""
    lines = []
    if removed:
        layers, activations = [d for d, _, _ in removed], list(dict.fromkeys(a for _, a, _ in removed))
        behind = list(dict.fromkeys(t for _, _, t in removed))
        if len(activations) == 1:
            what = f"activation {activations[0]!r} of {_which(layers, 'layer')}"
        else:
            what = f"activations {', '.join(map(repr, activations))} of {len(layers)} layers ({', '.join(f'{d!r} ({a})' for d, a, _ in removed)})"
        lines.append(f"removed {what}: sign() of a non-negative output is constant, so {_which(behind)} would see no information")
    if before:
        lines.append(f"inserted BatchNormalization before {_which(before)}: a binarized layer's sign "
                     "needs a centered, scaled input (and the STE's |x| ≤ 1 window)")
    if after:
        names = [name for name, _ in after]
        moved = {act for _, act in after if act != "linear"}
        if len(after) == 1:
            where = f"{names[0]!r}{f' (before its {after[0][1]!r})' if moved else ''}"
        else:
            where = _which(names) + (f", their activations ({', '.join(sorted(moved))}) moved behind it" if moved else "")
        lines.append(f"inserted BatchNormalization after {where}: a binary layer's output is an integer sum over its "
                     "fan-in (scale ~sqrt(fan-in)), which the float layers after it are not initialized for")
    return lines


def _prepare_float_model(model, targets, normalize_outputs=True, insert_batch_norm="auto"):
    """Remove sign-destroying activations in front of binarized layers, insert a
    BatchNormalization where none normalizes a binarized layer's input (`insert_batch_norm`:
    "auto" where its input is not normalized, "always" where no normalization directly precedes
    it, "never" nowhere), and (with `normalize_outputs`) one right after a binarized layer whose
    output reaches float layers unnormalized (before its activation).

    Returns `(model, changes)`; the model is rebuilt from its config (weights copied by layer
    name) only when something changed.
    """
    strip, insert, after, refused = {}, [], [], []
    removed = []  # (layer whose activation goes, the activation, the binarized layer behind it)
    normalized = _Normalized(model)
    for layer in model.layers:
        if layer.name not in targets:
            continue
        if normalize_outputs and _output_unnormalized(layer, model, targets):
            after.append((layer.name, _activation_name(layer.activation)))
        destroyers, has_bn = _input_path(layer, model, normalized, insert_batch_norm)
        for d in destroyers:
            if len(_graph.outbound_layers(d, model)) > 1:
                refused.append(f"{d.name} ({_describe(d)}) also feeds other layers; replace it yourself")
                has_bn = False  # it stays: a BN behind it gives its output both signs
                continue
            if d.name not in strip:
                strip[d.name] = layer.name
                removed.append((d.name, "relu" if isinstance(d, tf.keras.layers.ReLU) else _activation_name(d.activation), layer.name))
        if not has_bn and insert_batch_norm != "never":
            insert.append(layer.name)
    changes = _report(removed, insert, after)
    after = [name for name, _ in after]
    if refused:
        warnings.warn("tfbin.binarize: " + "; ".join(refused), stacklevel=4)  # binarize's caller
    if not strip and not insert and not after:
        return model, changes
    config = model.get_config()
    sequential = isinstance(model, tf.keras.Sequential)
    entries = []
    for entry in config["layers"]:
        name = entry["config"]["name"]
        if name in strip:
            if entry["class_name"] in ("ReLU", "Activation"):
                entry = {"class_name": "Activation", "config": {"name": name, "activation": "linear", "dtype": entry["config"].get("dtype"), "trainable": True},
                         **{k: entry[k] for k in ("name", "inbound_nodes") if k in entry}}
            else:
                entry["config"]["activation"] = "linear"
        if name in insert:
            bn = {"class_name": "BatchNormalization", "config": tf.keras.layers.BatchNormalization(name=f"{name}_input_bn").get_config()}
            if not sequential:
                if len(entry["inbound_nodes"]) != 1 or len(entry["inbound_nodes"][0]) != 1:
                    raise ValueError(f"tfbin.binarize: layer {name!r} is shared or has several inputs; insert a BatchNormalization before it yourself.")
                bn.update(name=bn["config"]["name"], inbound_nodes=entry["inbound_nodes"])
                entry["inbound_nodes"] = [[[bn["name"], 0, 0, {}]]]
            entries.append(bn)
        entries.append(entry)
        if name in after:
            entries += _normalize_output(entry, sequential)
    if not sequential:
        # Consumers of a layer that got a BN after it now read the BN's (or activation's) output.
        renamed = {name: f"{name}_output_bn" for name in after}
        renamed.update({name: f"{name}_activation" for name in after if f"{name}_activation" in {e["config"]["name"] for e in entries}})
        for entry in entries:
            if entry["config"]["name"] in {n for name in after for n in (f"{name}_output_bn", f"{name}_activation")}:
                continue
            for node in entry.get("inbound_nodes", []):
                for item in node:
                    item[0] = renamed.get(item[0], item[0])
        for output in config.get("output_layers", []):
            output[0] = renamed.get(output[0], output[0])
    config["layers"] = entries
    custom = {type(l).__name__: type(l) for l in model.layers}
    cls = tf.keras.Sequential if sequential else tf.keras.Model
    new_model = cls.from_config(config, custom_objects=custom)
    old = {l.name: l for l in model.layers}
    for layer in new_model.layers:
        if layer.name in old:
            layer.set_weights(old[layer.name].get_weights())
    return new_model, changes


def _normalize_output(entry, sequential):
    """Config entries of the BN (and the layer's own activation, moved behind it) that follow
    layer `entry`; `entry`'s activation becomes linear."""
    name = entry["config"]["name"]
    activation = entry["config"].get("activation", "linear")
    entry["config"]["activation"] = "linear"
    added = [{"class_name": "BatchNormalization", "config": tf.keras.layers.BatchNormalization(name=f"{name}_output_bn").get_config()}]
    if activation != "linear":
        added.append({"class_name": "Activation", "config": tf.keras.layers.Activation(activation, name=f"{name}_activation").get_config()})
    if not sequential:
        previous = name
        for item in added:
            item.update(name=item["config"]["name"], inbound_nodes=[[[previous, 0, 0, {}]]])
            previous = item["name"]
    return added


def _describe(layer) -> str:
    if isinstance(layer, tf.keras.layers.ReLU):
        return "the ReLU"
    return f"activation {_activation_name(layer.activation)!r}"


def _is_larq_binary_weight_layer(layer) -> bool:
    """A larq layer with 1-bit kernels and quantized (any precision) inputs: the recipe replaces
    both quantizers (e.g. DoReFaNet's 2-bit activations become the recipe's 1-bit ones)."""
    return (
        isinstance(layer, (lq.layers.QuantConv2D, lq.layers.QuantDense))
        and precision(getattr(layer, "kernel_quantizer", None)) == 1
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
    if recipe.layer_type is not None:
        config["kernel_constraint"] = recipe.make_kernel_constraint()
        return from_float(recipe.layer_type, config, isinstance(layer, tf.keras.layers.Dense), **recipe.layer_config)
    cls = lq.layers.QuantDense if isinstance(layer, tf.keras.layers.Dense) else lq.layers.QuantConv2D
    config.update(
        input_quantizer=recipe.make_input_quantizer(),
        kernel_quantizer=recipe.make_kernel_quantizer(),
        kernel_constraint=recipe.make_kernel_constraint(),
    )
    if cls is lq.layers.QuantConv2D and config.get("padding") == "same":
        config["pad_values"] = 1.0  # binary 'same' padding: LCE's fast path, and exact at borders
    return cls(**config)


def binarize(model: tf.keras.Model, recipe="irnet", *, epochs=None, insert_batch_norm="auto", **overrides) -> Binarized:
    """Apply a recipe to a float Keras model or a larq model; weights are kept.

    - A float model: `Conv2D` and `Dense` layers become `lq.layers.QuantConv2D` / `QuantDense`
      with the recipe's quantizers and kernel constraint (`pad_values=1` for 'same' padding),
      except those the recipe keeps full precision (the first and last by default).
    - A larq model (one with larq layers with 1-bit kernels and quantized inputs, such as a
      larq-zoo model): those layers get the recipe's quantizers; its float layers stay float.
    - Depthwise/separable convs stay float (LCE has no binary op for them), with a warning that
      lists them, as does any other layer that cannot be binarized.
    - A float model's activations whose output is never negative (ReLU, ReLU6, sigmoid,
      softplus, ...) in front of a binarized layer (also across pooling, Dropout, Flatten,
      Reshape) are removed: `sign` of a non-negative value is the constant +1 (`sign(0) = +1`),
      so the binarized layer would see nothing. The recipe's input quantizer takes their place
      (e.g. ABR's bounded rectifier). Activations that keep the sign (LeakyReLU, ELU, GELU,
      swish, tanh) stay.
    - Where no BatchNormalization (or LayerNormalization) normalizes a binarized layer's input,
      one is inserted directly in front of it: a sign needs a centered input to carry
      information, and straight-through estimators pass gradients only for |x| ≤ 1, while a
      binary conv's raw output is an integer sum over its fan-in. Every paper this package
      implements puts a BN there. An input counts as normalized when, looking back, it reaches a
      normalization through layers that keep it normalized — pooling, padding, cropping,
      Dropout, Flatten, Reshape, activations that keep the sign (tanh, LeakyReLU, ELU, ...), and
      custom layers with the class attribute `keeps_normalization = True` (tfbin.models'
      `HardTanh` and `ZeroPadShortcut`) — or through a residual `Add` (or `Average`,
      `Concatenate`) whose every input is normalized by the same rule. So IR-Net's ResNet-20
      (`hardtanh(BN(conv(x)) + shortcut(x))` before each binary conv) and VGG-Small
      (`hardtanh(BN(pool(conv(x))))`) are binarized as their papers wrote them, with no extra BN;
      a branch that is not normalized (a plain conv, a ReLU that stays) gets one. An inserted BN
      runs in float in LCE unless it directly follows a binary conv (then LCE folds it into the
      conv's output threshold). `insert_batch_norm="always"` inserts one in front of every
      binarized layer that has no normalization directly in front of it (past a removed
      activation), `"never"` inserts none; the default `"auto"` follows the rule above.
    - Where a binarized layer's output reaches a float layer or an activation with no
      normalization in between (e.g. a binary `Dense(128, activation="relu")` before the float
      classifier), a BatchNormalization is inserted right after it, before its activation: the
      binary sum has scale ~sqrt(fan-in), which the float layers after it are not initialized
      for. ABC-Net's layers are the exception: their output is already on the float scale
      (Σ α_m·B_m fits the kernel, Σ β_n·A_n the input), so the `abc` recipe gets none. What this
      BN does to the hard accuracy of each recipe, with the command that measured it:
      docs/api.md#recipes-and-binarize-tfbinrecipes-tfbinbinarize.
    Each kind of change is one line of `Binarized.changes` (naming the layers, numbered runs
    compactly: `'conv2d_1' … 'conv2d_18'`) and of a warning.

    ```python
    binarized = tfbin.binarize(float_model, "irnet", epochs=10)
    binarized.model.compile(...)
    binarized.model.fit(data, epochs=10, callbacks=binarized.callbacks)
    ```

    # Arguments
        recipe: a recipe name, config or `Recipe`.
        epochs: the length of the recipe's schedules (needed by recipes that sharpen).
        insert_batch_norm: `"auto"` (default), `"always"` or `"never"`: where a float model gets
            a BatchNormalization in front of a binarized layer (above). A larq model's graph is
            never changed.
        **overrides: parameters of the named recipe (e.g. `t_min=0.01`).
    """
    _graph.check_rebuildable(model, "binarize")
    if insert_batch_norm not in _INSERT_MODES:
        raise ValueError(f"insert_batch_norm must be one of {_INSERT_MODES}, got {insert_batch_norm!r}.")
    recipe = _resolve_recipe(recipe, epochs, overrides)
    targets = _targets(model, recipe)
    changes = []
    if not any(_is_larq_binary_weight_layer(l) for l in model.layers):  # a larq model chose its own graph
        model, changes = _prepare_float_graph(model, recipe, targets, insert_batch_norm)
    new_model = _quantize(model, recipe, targets)
    for loss in recipe.losses:
        new_model = loss.attach(new_model)
    result = Binarized(new_model, recipe.callbacks())
    result.changes = changes
    return result


def _resolve_recipe(recipe, epochs, overrides):
    """`binarize`'s recipe argument made a `Recipe`: a name with `epochs` and the overrides."""
    if isinstance(recipe, str):
        if epochs is not None:
            overrides["epochs"] = epochs
        return recipes_lib.get(recipe, **overrides)
    return recipes_lib.get(recipe)


def _targets(model, recipe) -> list:
    """The names of the layers `binarize` quantizes; warns about the layers it must leave float."""
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
            stacklevel=3,  # binarize's caller
        )
    return targets


def _prepare_float_graph(model, recipe, targets, insert_batch_norm):
    """The float model with the activations and BatchNormalizations `binarize` changes (its
    docstring), and the list of those changes, also issued as one warning."""
    scaled = recipe.layer_type is not None and getattr(LAYER_TYPES[recipe.layer_type][0], "float_scaled_output", False)
    model, changes = _prepare_float_model(model, set(targets), normalize_outputs=not scaled, insert_batch_norm=insert_batch_norm)
    if changes:
        warnings.warn("tfbin.binarize changed the float graph:\n" + "\n".join(f"- {c}" for c in changes), stacklevel=3)
    return model, changes


def _quantize(model, recipe, targets):
    """`model` rebuilt with each target layer replaced by its quantized form, weights kept."""
    quiet = _quiet.starved_weights_intended() if recipe.kernel_constraint is None else contextlib.nullcontext()
    with quiet:
        new_model = _graph.rebuild(model, lambda layer: _quantized(layer, recipe) if layer.name in targets else None)
        for layer in new_model.layers:
            if layer.name in targets and hasattr(layer, "from_float_kernel"):
                layer.from_float_kernel()  # the copied float kernel -> the layer's own parameters (BLRNet's logits)
    return new_model
