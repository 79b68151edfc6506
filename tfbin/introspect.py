"""What a model is made of: its binarized layers.

The one place that answers which layers count as binarized — by asking each layer's family
(`tfbin.families`) — low in the import graph so that recipes, callbacks, losses, the hard-form
switch and the exporter can all ask it.
"""
from __future__ import annotations

import tensorflow as tf

from tfbin.auxiliary import unwrap
from tfbin.families import family_of
from tfbin.layer_family import precision

__all__ = ["precision", "is_binarized", "binarized_layers", "is_binary_activation", "binary_activation_layers", "all_layers"]


def is_binarized(layer) -> bool:
    """Whether `layer`'s family says it is binarized: a larq quantized layer whose input and
    kernel quantizers both have precision 1, an ABC-Net layer (binary bases of both), a BLRNet
    layer with binary inputs, or a registered family's layer by that family's rule."""
    return family_of(layer).is_binarized(layer)


def is_binary_activation(layer) -> bool:
    """A larq quantized layer with a 1-bit input quantizer and real weights (no 1-bit kernel
    quantizer): binary activations, float weights, as PBGNet's deployed sign network or ABR's
    paper setting. Not binarized: LCE has no binary op for float weights."""
    return not is_binarized(layer) and precision(getattr(layer, "input_quantizer", None)) == 1


def all_layers(model: tf.keras.Model):
    """The layers of `model`, nested models flattened, in layer order."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from all_layers(layer)
        else:
            yield layer


def binarized_layers(model: tf.keras.Model) -> list:
    """The binarized layers of `model` (`is_binarized`), in layer order; a
    `tfbin.TrainingModel`'s are those of the model it trains."""
    return [layer for layer in all_layers(unwrap(model)) if is_binarized(layer)]


def binary_activation_layers(model: tf.keras.Model) -> list:
    """The layers of `model` with binary inputs and float weights (`is_binary_activation`)."""
    return [layer for layer in all_layers(unwrap(model)) if is_binary_activation(layer)]
