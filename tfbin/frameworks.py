"""What `binarize`, `recalibrate`, `SharpeningScheduler` and the quantizer classes are, once for
the Keras 2 (tf-keras + larq) and the Keras 3 path.

`tfbin.binarize` and `tfbin.keras3.binarize`, `tfbin.recalibrate` and `tfbin.keras3.recalibrate`,
the two `SharpeningScheduler`s and the two sets of quantizer classes (`tfbin.quantizers`,
`tfbin.keras3`) are framework glue around the definitions here; only what differs between the
two frameworks is handed in:

- the graph rules of `binarize` (which layers are binarized, which activations in front of one
  are removed, where a BatchNormalization is inserted, and the report of those changes) take a
  `Framework` (the framework's layer classes and how it recognizes a binary layer) and the
  model's graph (`model`, `inbound(layer)`, `predecessor(layer)`, `outbound(layer)`). How the
  model is rebuilt with the changes stays with each path: tf-keras rewrites the model's config,
  Keras 3 clones it;
- `recalibrate` takes the model's BatchNormalization and Dropout layers and the framework's
  `hard(model)` context;
- `ScheduledSharpening` is `SharpeningScheduler` less the framework's `Callback` base and its
  `sharpness` module (`variables(model, name)`, `get(model, name)`);
- `quantizer_classes` makes the public soft->hard quantizer classes of a framework from
  `tfbin.quantizer_forms`' definitions and the framework's `SoftHardQuantizer`.

This module imports TensorFlow, numpy and tfbin's framework-free modules (`tfbin.schedules`,
`tfbin.quantizer_forms`), nothing of larq, tf-keras or Keras: importing it never selects a Keras
for `tf.keras`.
"""
from __future__ import annotations

import contextlib
import re
import warnings
from typing import NamedTuple

import numpy as np
import tensorflow as tf

import tfbin.schedules as schedules_lib  # not `from tfbin import`: in a Keras 3 process that loads tfbin's Keras 2 API
from tfbin import quantizer_forms

__all__ = [
    "Binarized",
    "Framework",
    "Changes",
    "INSERT_MODES",
    "check_insert_mode",
    "plan",
    "targets",
    "decide",
    "report",
    "warn_changes",
    "recalibrate",
    "check_update_freq",
    "ScheduledSharpening",
    "QUANTIZERS",
    "quantizer_classes",
]

class _ModelAndCallbacks(NamedTuple):
    model: object
    callbacks: list


class Binarized(_ModelAndCallbacks):
    """What `binarize` returns (`tfbin.binarize` and `tfbin.keras3.binarize`):
    `model.fit(..., callbacks=callbacks)` is all a user writes.

    It unpacks as `(model, callbacks)`; `.changes` lists what `binarize` changed in a float
    model's graph besides the quantizers (activations removed, BatchNormalization inserted),
    one sentence per kind of change, naming the layers.
    """

    changes: list


# `binarize(..., insert_batch_norm=...)`
INSERT_MODES = ("auto", "always", "never")

# Activations whose outputs are never negative: `sign` of them (lq.math.sign(0) = +1) is the
# constant +1, so a binarized layer behind one of them sees no information at all.
NONNEGATIVE = {"relu", "relu6", "sigmoid", "hard_sigmoid", "softplus", "exponential", "softmax"}


class Framework:
    """One Keras as `binarize`'s graph rules see it.

    The layer classes come from the framework's `layers` module (`tf.keras.layers` with tf-keras,
    `keras.layers` with Keras 3: the same names), grouped by what they do to a normalized tensor:

    - `binarizable`: the float layers that are binarized, by exact type (LCE has binary ops for 2D
      convolutions only; dense layers are rewritten to 1x1 convs on export);
    - `no_binary_op`: the layers that stay float because LCE has no binary op for them;
    - `shape_only`: layers that move, select or reshape values without mixing channels' scales:
      a normalized tensor stays normalized through them, looking back from a binarized layer's
      input (a max of non-negative values is non-negative, etc.) and forward from its output (a
      BN behind them still normalizes it);
    - `forward`: looking forward only, global pooling too (a BN after it still normalizes a
      binarized layer's output). Looking back they end the walk: the max over a whole feature
      map of a normalized tensor is far from centred;
    - `pass_through`: looking back only, activations too. Those that keep the sign (tanh,
      LeakyReLU, ELU, ...; a clip to [-1, 1]) leave a BN before them normalizing the binarized
      input; those that destroy it (`destroys_sign`) are found on the same walk and removed. A
      custom layer that keeps a normalized input normalized (bounded and centre-preserving, such
      as tfbin.models' HardTanh, or a strided, zero-padded slice such as its ZeroPadShortcut)
      declares the class attribute `keeps_normalization = True`;
    - `merges`: merges whose output is normalized when every input is (a residual sum of
      normalized branches);
    - `normalizations`: a normalization in front of a binarized layer centers and scales its
      input; LayerNormalization counts too (per-sample statistics, e.g. for nets that must not
      depend on the batch).

    # Arguments
        name: the API, as messages name it (`"tfbin.binarize"`).
        layers, activations: the framework's `layers` and `activations` modules.
        model_class: its `Model` (a nested model is not binarized).
        is_binary_layer: `layer -> bool`, a layer with 1-bit kernels and quantized inputs, whose
            quantizers a recipe replaces (a model with one keeps its graph).
        binary_layers: what such layers are, for the error of a model with nothing to binarize.
        no_binary_op: the framework's own layers with no binary op, beyond the float ones.
    """

    def __init__(self, name: str, layers, activations, model_class, is_binary_layer, binary_layers: str,
                 no_binary_op: tuple = ()):
        self.name, self.layers, self.activations, self.model_class = name, layers, activations, model_class
        self.is_binary_layer, self.binary_layers = is_binary_layer, binary_layers
        self.binarizable = (layers.Conv2D, layers.Dense)
        self.no_binary_op = (layers.DepthwiseConv2D, layers.SeparableConv2D, layers.Conv2DTranspose, *no_binary_op)
        self.shape_only = (layers.MaxPooling2D, layers.AveragePooling2D, layers.Dropout, layers.Flatten,
                           layers.Reshape, layers.ZeroPadding2D, layers.Cropping2D)
        self.forward = (*self.shape_only, layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)
        self.pass_through = (*self.shape_only, layers.Activation, layers.ReLU, layers.LeakyReLU, layers.PReLU, layers.ELU)
        self.merges = (layers.Add, layers.Average, layers.Concatenate)
        self.normalizations = (layers.BatchNormalization, layers.LayerNormalization)

    def activation_name(self, activation) -> str:
        name = self.activations.serialize(activation)
        return name if isinstance(name, str) else str(name)

    def destroys_sign(self, layer) -> bool:
        """The layer's output is never negative (its sign carries no information)."""
        if isinstance(layer, self.layers.ReLU):
            return not layer.negative_slope and (layer.threshold or 0) >= 0
        if isinstance(layer, (self.layers.Activation, *self.binarizable)):
            return self.activation_name(layer.activation) in NONNEGATIVE
        return False

    def keeps_normalization(self, layer) -> bool:
        return isinstance(layer, self.pass_through) or bool(getattr(layer, "keeps_normalization", False))

    def activation_of(self, layer) -> str:
        """The name of the sign-destroying activation of `layer` (`"relu"` for a ReLU layer)."""
        return "relu" if isinstance(layer, self.layers.ReLU) else self.activation_name(layer.activation)

    def describe(self, layer) -> str:
        if isinstance(layer, self.layers.ReLU):
            return "the ReLU"
        return f"activation {self.activation_name(layer.activation)!r}"


def check_insert_mode(insert_batch_norm: str) -> None:
    if insert_batch_norm not in INSERT_MODES:
        raise ValueError(f"insert_batch_norm must be one of {INSERT_MODES}, got {insert_batch_norm!r}.")


# Which layers are binarized.


def _kept(framework: Framework, model, keep_full_precision) -> set:
    """The names of the Conv2D/Dense layers a recipe keeps float ("first", "last", names)."""
    candidates = [l for l in model.layers if type(l) in framework.binarizable]  # exact types: not Depthwise/Separable
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


def plan(framework: Framework, model, keep_full_precision) -> tuple[list, dict]:
    """Names of the layers to (re)quantize, and `{name: reason}` for those left float.

    A binary model (larq-zoo's, or one already binarized) has chosen its float layers: only its
    binary layers get the recipe's quantizers. A float model gets every Conv2D/Dense but those kept."""
    keep = _kept(framework, model, keep_full_precision)
    binary_model = any(framework.is_binary_layer(l) for l in model.layers)
    found, skipped = [], {}
    for layer in model.layers:
        if isinstance(layer, framework.model_class):
            skipped[layer.name] = "nested model: binarize it on its own first"
        elif framework.is_binary_layer(layer):
            found.append(layer.name)
        elif type(layer) in framework.binarizable and not binary_model:
            if layer.name not in keep:
                found.append(layer.name)
        elif isinstance(layer, framework.no_binary_op):
            skipped[layer.name] = f"{type(layer).__name__} stays float: LCE has no binary op for it"
    return found, skipped


def targets(framework: Framework, model, recipe) -> list:
    """The names of the layers `binarize` quantizes with `recipe`; warns (as `binarize`'s caller,
    who calls this directly) about the layers it must leave float."""
    found, skipped = plan(framework, model, recipe.keep_full_precision)
    if not found:
        raise ValueError(
            f"Model {model.name!r} has nothing to binarize with recipe {recipe.name!r}: no Conv2D or "
            f"Dense layer outside those kept full precision {list(recipe.keep_full_precision)}, and "
            f"no {framework.binary_layers}."
        )
    if skipped:
        warnings.warn(
            f"{framework.name} left these layers float: " + "; ".join(f"{name} ({why})" for name, why in skipped.items()),
            stacklevel=3,  # binarize's caller
        )
    return found


# Where a float model's graph changes around its binarized layers.


class _Walk:
    """The rules' walks over one model's graph. `normalized(layer)`: whether a layer's output is
    a normalized tensor: a normalization's output, carried through layers that keep it
    (`Framework.keeps_normalization`, no sign-destroying activation on the way), or a merge of
    normalized tensors — a residual block's `hardtanh(BN(conv(x)) + shortcut(x))` is normalized
    when its input `x` is. Memoized per layer; the walk only goes back in an acyclic graph, so
    it ends at the inputs."""

    def __init__(self, framework: Framework, graph):
        self.framework, self.graph, self.memo = framework, graph, {}
        for layer in graph.model.layers:  # in depth order: the recursion below stays shallow
            self.normalized(layer)

    def normalized(self, layer) -> bool:
        key = id(layer)
        if key not in self.memo:
            self.memo[key] = False  # while it is being decided (a Keras graph has no cycles)
            self.memo[key] = self._decide(layer)
        return self.memo[key]

    def _decide(self, layer) -> bool:
        framework = self.framework
        if isinstance(layer, framework.normalizations):
            return True
        if isinstance(layer, framework.merges):
            inbound = self.graph.inbound(layer)
            return bool(inbound) and all(self.normalized(l) for l in inbound)
        if framework.keeps_normalization(layer) and not framework.destroys_sign(layer):
            previous = self.graph.predecessor(layer)
            return previous is not None and self.normalized(previous)
        return False

    def input_path(self, layer, mode="auto"):
        """Walk back from a layer's input: `(sign-destroying layers, whether its input is
        normalized once they are removed)`. `mode="always"` counts only a normalization directly
        in front (past the removed activations)."""
        framework, layers = self.framework, self.framework.layers
        destroyers, current = [], self.graph.predecessor(layer)
        while current is not None and not isinstance(current, layers.InputLayer):
            if isinstance(current, framework.normalizations):
                return destroyers, True
            if framework.destroys_sign(current):
                destroyers.append(current)
                if not isinstance(current, (layers.ReLU, layers.Activation)):
                    return destroyers, False  # a conv/dense with its own activation produced the input
            elif mode == "always":
                return destroyers, False
            elif isinstance(current, framework.merges):
                return destroyers, self.normalized(current)
            elif not framework.keeps_normalization(current):
                return destroyers, False
            current = self.graph.predecessor(current)
        return destroyers, False

    def output_unnormalized(self, layer, binarized) -> bool:
        """The binarized `layer`'s output reaches a float layer (or an activation) with no
        normalization first, looking forward through `Framework.forward` layers. A layer whose
        output branches is left alone (a residual sum decides its own scales)."""
        consumers = self.graph.outbound(layer)
        while len(consumers) == 1:
            current = consumers[0]
            if isinstance(current, self.framework.normalizations) or current.name in binarized:
                return False  # normalized here, or by the BN a binarized input gets
            if not isinstance(current, self.framework.forward):
                return True
            consumers = self.graph.outbound(current)
        return False  # the output branches, or it is the model's output


class Changes:
    """What `decide` changes in a float model's graph: the layers whose activation becomes linear
    (`strip`), the binarized layers that get a BatchNormalization in front (`before`) and after
    (`after`: `{name: its activation, moved behind the BN}`), the sign-destroying activations
    left in place because other layers read them too (`refused`, one sentence each) and the
    report, one line per kind of change (`lines`: `Binarized.changes`)."""

    def __init__(self):
        self.strip, self.before, self.after, self.refused, self.lines = set(), [], {}, [], []

    def __bool__(self):
        return bool(self.strip or self.before or self.after)


def decide(framework: Framework, graph, binarized, normalize_outputs=True, insert_batch_norm="auto") -> Changes:
    """The changes `binarize` makes to a float model's graph (`graph`) for its `binarized` layers
    (names): remove sign-destroying activations in front of them, insert a BatchNormalization
    where none normalizes one's input (`insert_batch_norm`: "auto" where its input is not
    normalized, "always" where no normalization directly precedes it, "never" nowhere), and
    (with `normalize_outputs`) one right after a binarized layer whose output reaches float
    layers unnormalized (before its activation)."""
    walk, changes, binarized = _Walk(framework, graph), Changes(), set(binarized)
    removed = []  # (layer whose activation goes, the activation, the binarized layer behind it)
    for layer in graph.model.layers:
        if layer.name not in binarized:
            continue
        if normalize_outputs and walk.output_unnormalized(layer, binarized):
            changes.after[layer.name] = framework.activation_name(layer.activation)
        destroyers, has_bn = walk.input_path(layer, insert_batch_norm)
        for d in destroyers:
            if len(graph.outbound(d)) > 1:
                changes.refused.append(f"{d.name} ({framework.describe(d)}) also feeds other layers; replace it yourself")
                has_bn = False  # it stays: a BN behind it gives its output both signs
                continue
            if d.name not in changes.strip:
                changes.strip.add(d.name)
                removed.append((d.name, framework.activation_of(d), layer.name))
        if not has_bn and insert_batch_norm != "never":
            changes.before.append(layer.name)
    changes.lines = report(removed, changes.before, list(changes.after.items()))
    return changes


def _names(names) -> str:
    """`'a', 'b'`, with every run of 3 or more consecutively numbered Keras names written as
    its ends: `'conv2d_1' … 'conv2d_18'`."""
    runs = []  # [prefix, last number, names]
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
    """`'x'` for one name, `3 binarized layers ('a', 'b', 'c')` for several."""
    return repr(names[0]) if len(names) == 1 else f"{len(names)} {what}s ({_names(names)})"


def report(removed, before, after) -> list:
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


def warn_changes(framework: Framework, lines, stacklevel: int) -> None:
    """The report of `binarize`'s changes to the float graph as one warning (none if empty)."""
    if lines:
        warnings.warn(f"{framework.name} changed the float graph:\n" + "\n".join(f"- {c}" for c in lines),
                      stacklevel=stacklevel + 1)


# BatchNorm statistics of the hard form.


@contextlib.contextmanager
def _attributes(objects, name, value):
    previous = [getattr(o, name) for o in objects]
    for o in objects:
        setattr(o, name, value)
    try:
        yield
    finally:
        for o, was in zip(objects, previous):
            setattr(o, name, was)


def _hard_accuracy(model, batches, hard_form) -> tuple[float, int]:
    """Top-1 accuracy of the hard form on labelled `(x, y)` batches (sparse or one-hot `y`), and
    the number of examples it read."""
    correct = total = 0
    with hard_form(model):
        for x, y, *_ in batches:
            predicted = np.asarray(model(x, training=False)).argmax(-1)
            y = np.asarray(y)
            if y.ndim == predicted.ndim + 1:
                y = y.argmax(-1)
            correct += int((predicted == y.reshape(predicted.shape)).sum())
            total += len(y)
    if total == 0:
        raise ValueError("recalibrate got an empty `check` dataset: give it labelled (x, y) batches.")
    return correct / total, total


def _batches(data, steps):
    """`data` as a `tf.data.Dataset` of at most `steps` batches."""
    if steps is not None and (int(steps) != steps or steps < 1):
        raise ValueError(f"recalibrate steps must be a positive integer or None, got {steps!r}.")
    if not isinstance(data, tf.data.Dataset):
        data = tf.data.Dataset.from_tensor_slices(np.asarray(data)).batch(256)
    return data if steps is None else data.take(int(steps))


def _average_statistics(model, data, norms, dropouts, hard_form) -> int:
    """Run the hard form over `data` in training mode for the BNs only (Dropout off), each BN's
    momentum `1 − 1/k` at batch `k`; the number of batches."""
    used = 0
    # Eager calls: the momentum changes every batch and BN reads it at call time.
    with hard_form(model), _attributes(dropouts, "rate", 0.0):
        for batch in data:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            used += 1
            with _attributes(norms, "momentum", 1.0 - 1.0 / used):
                model(x, training=True)
    if used == 0:
        raise ValueError("recalibrate got no batches: the data is empty.")
    return used


def recalibrate(model, data, steps, check, *, norms: list, dropouts: list, hard_form) -> dict:
    """`tfbin.recalibrate` (its docstring) of `model`, whose BatchNormalization layers are `norms`
    and Dropout layers `dropouts`; `hard_form(model)` is the framework's context in which every
    tfbin quantizer of the model computes its hard form."""
    if not norms:
        raise ValueError(f"Model {model.name!r} has no BatchNormalization layer to recalibrate.")
    data = _batches(data, steps)
    if check is not None:
        saved = [(bn.moving_mean.numpy(), bn.moving_variance.numpy()) for bn in norms]
        before, check_images = _hard_accuracy(model, check, hard_form)
    report = {"batch_norms": len(norms), "steps": _average_statistics(model, data, norms, dropouts, hard_form)}
    if check is None:
        return report
    after, _ = _hard_accuracy(model, check, hard_form)
    if after < before:
        for bn, (mean, variance) in zip(norms, saved):
            bn.moving_mean.assign(mean)
            bn.moving_variance.assign(variance)
    return {**report, "applied": after >= before, "check_images": check_images,
            "check_accuracy_before": round(before, 4), "check_accuracy_after": round(after, 4)}


# Sharpness values on schedules during `model.fit`.


def check_update_freq(update_freq: str) -> str:
    """`update_freq` if it is one `SharpeningScheduler` knows, else a ValueError saying which."""
    if update_freq not in ("epoch", "batch"):
        raise ValueError(f"update_freq must be 'epoch' or 'batch', got {update_freq!r}.")
    return update_freq


class ScheduledSharpening:
    """`SharpeningScheduler` (`tfbin.callbacks.SharpeningScheduler`'s docstring) less its framework:
    a subclass puts it before the framework's `Callback` and sets `sharpness` to the framework's
    sharpness module (`variables(model, name)`, `get(model, name)`).

    Every sharpness weight of a schedule's name in the model is set, at the start of each epoch
    from the epoch index Keras passes, or with `update_freq="batch"` before every batch from
    `epoch + batch / steps`; the values in use are written into `logs` at the end of each epoch.
    """

    sharpness = None  # the framework's `tfbin.sharpness` module

    def __init__(self, schedules: dict, update_freq: str = "epoch"):
        super().__init__()
        if not isinstance(schedules, dict) or not schedules:
            raise ValueError(f"SharpeningScheduler needs a non-empty {{name: schedule}} dict, got {schedules!r}.")
        self.update_freq = check_update_freq(update_freq)
        self.schedules = {name: schedules_lib.get(s) for name, s in schedules.items()}
        self._epoch = 0
        self._variables = {}

    def on_train_begin(self, logs=None):
        # Resolved once: scanning the model's submodules at every batch costs more than the
        # assignments themselves. Fails early, listing the names the model has.
        self._variables = {name: self.sharpness.variables(self.model, name) for name in self.schedules}
        if self.update_freq == "batch" and not self.params.get("steps"):
            raise ValueError(
                "SharpeningScheduler(update_freq='batch') needs the number of steps per epoch; "
                "pass steps_per_epoch to fit() or use a dataset of known length."
            )

    def _apply(self, epoch: float):
        for name, schedule in self.schedules.items():
            value = schedule(epoch)
            for variable in self._variables[name]:
                variable.assign(value)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._apply(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if self.update_freq == "batch":
            self._apply(self._epoch + batch / self.params["steps"])

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for name in self.schedules:
                logs[name] = self.sharpness.get(self.model, name)

    def get_config(self):
        return {
            "schedules": {n: schedules_lib.serialize(s) for n, s in self.schedules.items()},
            "update_freq": self.update_freq,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# The public soft->hard quantizer classes.

# (class name, its definition in tfbin.quantizer_forms, its alias): the classes of both frameworks.
QUANTIZERS = (
    ("SelfBinarizingSign", quantizer_forms.SelfBinarizingForms, "self_binarizing_sign"),
    ("EDESign", quantizer_forms.EDEForms, "ede_sign"),
    ("LibraSign", quantizer_forms.LibraForms, "libra_sign"),
    ("BoundedRectifier", quantizer_forms.BoundedRectifierForms, "bounded_rectifier"),
    ("DistributionAwareSign", quantizer_forms.DistributionAwareForms, "dab_sign"),
)


def _split_weights_method(only_first_replica):
    """`DistributionAwareForms.add_split_weights` with the framework's name of the aggregation
    that keeps the first replica's value (the same on every replica)."""

    def add_split_weights(self, channels: int):
        threshold = self.add_weight(name="split_threshold", shape=(channels,), initializer="zeros",
                                    trainable=False, aggregation=only_first_replica)
        calls = self.add_weight(name="split_calls", shape=(), dtype="int64", initializer="zeros",
                                trainable=False, aggregation=only_first_replica)
        return threshold, calls

    return add_split_weights


def quantizer_classes(base, register, module: str, only_first_replica) -> tuple:
    """The public quantizer classes of one framework, in the order of `QUANTIZERS`: each one's
    definition (`tfbin.quantizer_forms`) on the framework's `base` (its `SoftHardQuantizer`),
    with that definition's docstring, registered by `register(alias)` and living in `module`
    (the framework's module that names them, for pickling and Keras's `module` config key).
    `only_first_replica` is the framework's aggregation of DAB's split weights (kept with the
    model, identical on every replica)."""
    classes = []
    for name, forms, alias in QUANTIZERS:
        namespace = {"__doc__": forms.__doc__, "__module__": module, "__qualname__": name}
        if forms is quantizer_forms.DistributionAwareForms:
            namespace["add_split_weights"] = _split_weights_method(only_first_replica)
        classes.append(register(alias)(type(name, (forms, base), namespace)))
    return tuple(classes)
