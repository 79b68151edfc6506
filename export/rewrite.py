"""Exact rewrites that turn every binarized layer into ops LCE runs as binary convolutions.

Each binarized layer is replaced by what its layer family (`tfbin.families`) exports: larq's
quantized layers a `BinaryConvExport` (`tfbin.larq_layers`: the kernel split into `m·S + d`,
{0,1} inputs rewritten to ±1, a dense layer as a 1×1 binary conv), ABC-Net's an `ABCExport`
(`tfbin.layers`: M·N binary convs `conv(sign(x + v_n − 0.5), α_m β_n B_m)` summed), a registered
family's whatever its `export` builds. Anything that cannot be made exact is refused with the
reason (`RewriteError`).
"""
from __future__ import annotations

import tensorflow as tf

from tfbin import _graph
from tfbin.families import family_of
from tfbin.introspect import is_binarized
# The rewrites of the built-in families, public here since 0.1.
from tfbin.larq_layers import BinaryConvExport, export_layer, input_threshold  # noqa: F401
from tfbin.layer_family import RewriteError
from tfbin.layers import ABCExport, export_abc_layer  # noqa: F401


def lce_runs_as(layer) -> str:
    """How LCE 0.16 runs a layer after `tfbin.export` (its family's answer for a binarized
    layer; `models.summary` shows them)."""
    if not is_binarized(layer):
        return "float" if isinstance(layer, (tf.keras.layers.Conv2D, tf.keras.layers.Dense)) else ""
    return family_of(layer).lce_runs_as(layer)


def export_model(model: tf.keras.Model) -> tuple[tf.keras.Model, dict, dict]:
    """The model LCE converts: every binarized layer rewritten into its family's export layer.

    Returns `(model, {layer name: export layer name}, {layer name: why its rewrite was refused})`.
    The other layers (refused ones included) are the original layer objects, shared with
    `model`: run or convert the result inside `tfbin.hard(model)` to get their hard forms.
    """
    _graph.check_rebuildable(model, "tfbin.export")
    mapping, refused = {}, {}
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model) and any(is_binarized(l) for l in layer.submodules):
            raise RewriteError(f"Nested model {layer.name!r} holds binarized layers; export it flattened (functional).")

    def replace(layer):
        if not is_binarized(layer):
            return None
        try:
            if isinstance(layer, tf.keras.layers.Dense) and len(layer.input_shape) != 2:
                raise RewriteError(f"Layer {layer.name!r}: a binarized Dense on rank-{len(layer.input_shape)} inputs; flatten first.")
            new = family_of(layer).export(layer)
        except RewriteError as err:
            refused[layer.name] = str(err)
            return None
        mapping[layer.name] = new.name
        return new

    return _graph.rebuild(model, replace, share=True), mapping, refused
