"""larq's `weight_clip` kernel constraint for Keras 3, and the lookup of constraints by alias."""
from __future__ import annotations

import keras

__all__ = ["WeightClip", "get"]


@keras.saving.register_keras_serializable(package="tfbin")
class WeightClip(keras.constraints.Constraint):
    r"""Latent weights clipped after every optimizer step (larq's `WeightClip`):

    \[
    w \leftarrow \operatorname{clip}(w, -c, c)
    \]

    With a straight-through sign (`ste_sign`, gradient zero where `|w| > 1`) the default
    `c = 1` keeps every latent weight where it still gets a gradient.

    # Arguments
        clip_value: the bound `c` (default 1.0, > 0).

    # References
        - Courbariaux, Hubara, Soudry, El-Yaniv, Bengio, [Binarized Neural Networks: Training
          Deep Neural Networks with Weights and Activations Constrained to +1 or
          -1](https://arxiv.org/abs/1602.02830), 2016
    """

    alias = "weight_clip"

    def __init__(self, clip_value: float = 1.0):
        if not clip_value > 0:
            raise ValueError(f"WeightClip clip_value must be > 0, got {clip_value!r}.")
        self.clip_value = float(clip_value)

    def __call__(self, w):
        return keras.ops.clip(w, -self.clip_value, self.clip_value)

    def get_config(self):
        return {"clip_value": self.clip_value}


_NAMES = (WeightClip.alias, "WeightClip", "tfbin>WeightClip")


def get(identifier):
    """A constraint from `"weight_clip"` (larq's alias), a serialized `WeightClip` (larq's config
    from the Keras 2 path included), or whatever `keras.constraints.get` takes."""
    if isinstance(identifier, str) and identifier in _NAMES:
        return WeightClip()
    if isinstance(identifier, dict) and (identifier.get("registered_name") in _NAMES or identifier.get("class_name") in _NAMES):
        return WeightClip(**identifier.get("config", {}))
    return keras.constraints.get(identifier)
