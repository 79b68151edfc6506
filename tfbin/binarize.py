"""`binarize(model, recipe)`: a float Keras model or a larq model -> a model trained with a recipe."""
from __future__ import annotations

import contextlib
import warnings

import larq as lq
import tensorflow as tf

from tfbin import _graph, _quiet, families, frameworks
from tfbin import recipes as recipes_lib
from tfbin.frameworks import Binarized
from tfbin.introspect import precision

__all__ = ["Binarized", "binarize"]


def _is_larq_binary_weight_layer(layer) -> bool:
    """A larq layer with 1-bit kernels and quantized (any precision) inputs: the recipe replaces
    both quantizers (e.g. DoReFaNet's 2-bit activations become the recipe's 1-bit ones)."""
    return (
        isinstance(layer, (lq.layers.QuantConv2D, lq.layers.QuantDense))
        and precision(getattr(layer, "kernel_quantizer", None)) == 1
        and getattr(layer, "input_quantizer", None) is not None
    )


# The graph rules (tfbin.frameworks) on tf-keras's layer classes, larq's binary layers included.
KERAS2 = frameworks.Framework(
    "tfbin.binarize", tf.keras.layers, tf.keras.activations, tf.keras.Model, _is_larq_binary_weight_layer,
    binary_layers="larq layer with 1-bit kernels", no_binary_op=(lq.layers.QuantDepthwiseConv2D,),
)


class _Keras2Graph:
    """Who reads whom in a Sequential or functional tf-keras model (its layers' nodes in it)."""

    def __init__(self, model):
        self.model = model

    def inbound(self, layer) -> list | None:
        return _graph.inbound_layers(layer, self.model)

    def predecessor(self, layer):
        return _graph.predecessor(layer, self.model)

    def outbound(self, layer) -> list:
        return _graph.outbound_layers(layer, self.model)


def _prepare_float_model(model, targets, normalize_outputs=True, insert_batch_norm="auto"):
    """The changes of `tfbin.frameworks.decide` made to `model`: sign-destroying activations in
    front of binarized layers removed, BatchNormalizations inserted before and after them.

    Returns `(model, changes)`; the model is rebuilt from its config (weights copied by layer
    name) only when something changed.
    """
    changes = frameworks.decide(KERAS2, _Keras2Graph(model), targets, normalize_outputs, insert_batch_norm)
    if changes.refused:
        warnings.warn("tfbin.binarize: " + "; ".join(changes.refused), stacklevel=4)  # binarize's caller
    if not changes:
        return model, changes.lines
    return _rebuilt(model, changes), changes.lines


def _rebuilt(model, changes):
    """`model` rebuilt from its config with `changes` (`tfbin.frameworks.Changes`), weights
    copied by layer name."""
    strip, insert, after = changes.strip, changes.before, list(changes.after)
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
    return new_model


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


def _family(recipe):
    """The layer family whose layers `recipe` puts in place of Conv2D/Dense (larq's by default)."""
    return families.DEFAULT if recipe.layer_type is None else families.get(recipe.layer_type)


def _quantized(layer, recipe):
    """`layer`'s binarized replacement: a layer of the recipe's family, from `layer`'s config with
    the recipe's kernel constraint and its quantizers (larq's family) or layer arguments."""
    config = {**layer.get_config(), "kernel_constraint": recipe.make_kernel_constraint()}
    if recipe.layer_type is None:
        arguments = {"input_quantizer": recipe.make_input_quantizer(), "kernel_quantizer": recipe.make_kernel_quantizer()}
    else:
        arguments = recipe.layer_config
    return _family(recipe).from_float(config, isinstance(layer, tf.keras.layers.Dense), **arguments)


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
    frameworks.check_insert_mode(insert_batch_norm)
    recipe = resolve_recipe(recipe, epochs, overrides)
    targets = frameworks.targets(KERAS2, model, recipe)
    changes = []
    if not any(_is_larq_binary_weight_layer(l) for l in model.layers):  # a larq model chose its own graph
        model, changes = _prepare_float_graph(model, recipe, targets, insert_batch_norm)
    new_model = _quantize(model, recipe, targets)
    for loss in recipe.losses:
        new_model = loss.attach(new_model)
    result = Binarized(new_model, recipe.callbacks())
    result.changes = changes
    return result


def resolve_recipe(recipe, epochs, overrides):
    """`binarize`'s recipe argument made a `tfbin.recipes.Recipe`: a name with `epochs` and the
    overrides, or a config or `Recipe` as it is."""
    if isinstance(recipe, str):
        if epochs is not None:
            overrides["epochs"] = epochs
        return recipes_lib.get(recipe, **overrides)
    return recipes_lib.get(recipe)


def _prepare_float_graph(model, recipe, targets, insert_batch_norm):
    """The float model with the activations and BatchNormalizations `binarize` changes (its
    docstring), and the list of those changes, also issued as one warning."""
    scaled = _family(recipe).float_scaled_output
    model, changes = _prepare_float_model(model, set(targets), normalize_outputs=not scaled, insert_batch_norm=insert_batch_norm)
    frameworks.warn_changes(KERAS2, changes, stacklevel=3)  # binarize's caller
    return model, changes


def _quantize(model, recipe, targets):
    """`model` rebuilt with each target layer replaced by its quantized form, weights kept."""
    quiet = _quiet.starved_weights_intended() if recipe.kernel_constraint is None else contextlib.nullcontext()
    with quiet:
        new_model = _graph.rebuild(model, lambda layer: _quantized(layer, recipe) if layer.name in targets else None)
        for layer in new_model.layers:
            if layer.name in targets:
                families.family_of(layer).adopt_float_weights(layer)  # e.g. BLRNet's float kernel -> logits
    return new_model
