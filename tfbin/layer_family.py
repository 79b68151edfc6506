"""What a layer family is: the questions `tfbin.binarize`, introspection, the exporter and its
parity check ask about a binarized layer.

A *family* is a kind of binarized layer with its own rules: larq's quantized layers
(`tfbin.larq_layers`: an input and a kernel quantizer), ABC-Net's multi-base layers
(`tfbin.layers`), BLRNet's probabilistic layers (`tfbin.blrnet_layers`). Each is a `LayerFamily`
in its own module; `tfbin.families` lists them and finds a layer's. No other module tests a
layer's class to decide how to binarize, introspect, export or verify it. A new family is one
module and one registration:

```python
class ScaledSignFamily(tfbin.layer_family.LayerFamily):
    name = "scaled_sign"                          # a recipe's `layer_type`
    conv, dense = ScaledSignConv2D, ScaledSignDense

    def export(self, layer):                      # what LCE converts in its place
        return ScaledSignExport(layer)

tfbin.families.register(ScaledSignFamily())
```

The defaults below are those of a family whose layers binarize themselves (no larq quantizer
arguments): every layer of the family is binarized, with float-scaled output `False`, one LCE
binary convolution, an input sign at 0 and 1-bit deployed weights.
"""
from __future__ import annotations

import tensorflow as tf

__all__ = ["LARQ_ARGUMENTS", "LayerFamily", "RewriteError", "precision"]

# The constructor arguments of larq's quantized layers that a plain Keras layer does not take.
LARQ_ARGUMENTS = ("input_quantizer", "kernel_quantizer", "depthwise_quantizer", "metrics", "pad_values")


class RewriteError(ValueError):
    """A binarized layer has no exact form made of LCE binary ops; the message says why."""


def precision(quantizer):
    """The bit width a larq or tfbin quantizer declares (`None` for no quantizer)."""
    return getattr(quantizer, "precision", None)


class LayerFamily:
    """One family of binarized layers: which layers are its own, how a float layer becomes one,
    and how it is introspected, exported and verified.

    # Attributes
        name: its recipe `layer_type` (`tfbin.recipes.Recipe`), e.g. `"abc"`.
        conv, dense: the classes that replace `Conv2D` and `Dense`.
        arguments: the config keys of its layers beyond the float layer's (and larq's
            quantizer arguments), left out of the float twin (`float_layer`).
        float_scaled_output: whether the layer's output already has the float layer's scale, so
            that `tfbin.binarize` inserts no BatchNormalization after it.
    """

    name = ""
    conv = None
    dense = None
    arguments: tuple = ()
    float_scaled_output = False

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"

    def owns(self, layer) -> bool:
        """Whether `layer` belongs to this family (default: an instance of `conv` or `dense`)."""
        return isinstance(layer, tuple(c for c in (self.conv, self.dense) if c is not None))

    def is_binarized(self, layer) -> bool:
        """Whether this layer of the family is a binarized layer (binary inputs and weights)."""
        return True

    def from_float(self, config: dict, dense: bool, **arguments):
        """A new layer of the family from a Conv2D/Dense (or larq QuantConv2D/QuantDense) config,
        with the family's own constructor `arguments`; larq's quantizer arguments are dropped and
        a conv pads its binary input with 1 for 'same' padding (LCE's fast path), with 0 else."""
        config = {k: v for k, v in config.items() if k not in LARQ_ARGUMENTS}
        if not dense:
            config["pad_values"] = 1.0 if config.get("padding") == "same" else 0.0
        return (self.dense if dense else self.conv)(**config, **arguments)

    def adopt_float_weights(self, layer) -> None:
        """Called by `tfbin.binarize` once the float layer's weights are copied into `layer`:
        turn them into the layer's own parameters (BLRNet's logits). Default: nothing to do."""

    def float_layer(self, layer):
        """The plain Keras layer `layer` stands for, with its float config (the float twin's
        layer; None where `layer` is float already)."""
        cls = tf.keras.layers.Dense if isinstance(layer, tf.keras.layers.Dense) else tf.keras.layers.Conv2D
        dropped = set(LARQ_ARGUMENTS) | set(self.arguments)
        return cls(**{k: v for k, v in layer.get_config().items() if k not in dropped})

    def export(self, layer) -> tf.keras.layers.Layer:
        """The layer LCE converts in place of `layer` (in its hard form): LCE binary convolutions
        (larq `QuantConv2D`s with a 1-bit input quantizer and a ±scale kernel) and float ops that
        compute exactly what `layer` does. Raises `RewriteError` with the reason when there is none."""
        raise RewriteError(f"Layer {layer.name!r}: the layer family {self.name!r} defines no export.")

    def binary_convolutions(self, layer) -> int:
        """How many `LceBconv2d` ops the exported layer has."""
        return 1

    def input_thresholds(self, layer):
        """Where the signs of the layer's input switch (the parity check's margins): None for a
        sign at 0, an array (one per input channel), or a list of those for several signs of one
        input. Raises `RewriteError` when no binary op takes the layer's input signs."""
        return None

    def kernel_bits(self, layer) -> int:
        """Bits per latent kernel weight in the deployed model (M for ABC-Net's M weight bases)."""
        return 1

    def lce_runs_as(self, layer) -> str:
        """How LCE runs the exported layer, in words (`tfbin.models.summary`)."""
        count = self.binary_convolutions(layer)
        return "LceBconv2d" if count == 1 else f"LceBconv2d ×{count}"
