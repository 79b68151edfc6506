"""Kernel constraints for Keras 3 (larq's `weight_clip`, DAB's `mean_centered_clip`), and their lookup by alias."""
from __future__ import annotations

import keras

from tfbin import formulas

__all__ = ["WeightClip", "MeanCenteredClip", "ALIASES", "class_of", "get"]


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


@keras.saving.register_keras_serializable(package="tfbin")
class MeanCenteredClip(keras.constraints.Constraint):
    r"""Latent kernels centred across their input channels, then clipped (`tfbin.constraints.MeanCenteredClip`):

    \[
    w \leftarrow \operatorname{clip}\big(w - \operatorname{mean}_{c_\text{in}}(w),\; -c,\; c\big)
    \]

    the mean over the input-channel axis (−2) for every output channel and kernel position
    (`tfbin.formulas.mean_centered_clip`), the step DAB's official code runs on its binarized
    convs; the `dab` recipe with `mean_center=True`.

    # Arguments
        clip_value: the bound `c` of the latent weights after centring (default 1.0, > 0).

    # References
        - Prabhu, Batchu, Munagala, Gajawada, Namboodiri, [Distribution-Aware Binarization of
          Neural Networks for Sketch Recognition](https://arxiv.org/abs/1804.02941), WACV 2018
    """

    alias = "mean_centered_clip"

    def __init__(self, clip_value: float = 1.0):
        if not clip_value > 0:
            raise ValueError(f"MeanCenteredClip clip_value must be > 0, got {clip_value!r}.")
        self.clip_value = float(clip_value)

    def __call__(self, w):
        return formulas.mean_centered_clip(w, self.clip_value)

    def get_config(self):
        return {"clip_value": self.clip_value}


# The names of each constraint here: its alias, class name and registered name (the Keras 2
# path's configs name them so).
ALIASES = (WeightClip.alias, MeanCenteredClip.alias)
_BY_NAME = {name: cls for cls in (WeightClip, MeanCenteredClip) for name in (cls.alias, cls.__name__, f"tfbin>{cls.__name__}")}


def class_of(name):
    """The constraint class of an alias, class name or registered name, else None."""
    return _BY_NAME.get(name) if isinstance(name, str) else None


def get(identifier):
    """A constraint from an alias (`"weight_clip"`, larq's; `"mean_centered_clip"`), a serialized
    `WeightClip` or `MeanCenteredClip` (the Keras 2 path's configs included), or whatever
    `keras.constraints.get` takes."""
    if isinstance(identifier, str) and class_of(identifier):
        return class_of(identifier)()
    if isinstance(identifier, dict):
        cls = class_of(identifier.get("registered_name")) or class_of(identifier.get("class_name"))
        if cls is not None:
            return cls(**identifier.get("config", {}))
    return keras.constraints.get(identifier)
