"""tfbin's binary quantizers as Keras 3 layers: larq's STE sign and every soft->hard quantizer.

Each soft->hard class is the Keras 3 glue (registration, initializers, how a sharpness weight is
read) around a mixin of `tfbin.quantizer_forms` (docstring, arguments, soft and hard forms, config)
and the formulas of `tfbin.formulas`, which the Keras 2 classes of `tfbin.quantizers` share; both
sets of classes are made from those definitions by `tfbin.frameworks.quantizer_classes`. On the
same inputs and sharpness values both compute the same numbers. The hard forms are written so that Larq
Compute Engine fuses them (`sign(x) = tf.sign(tf.sign(x) + 0.1)`, scalar `tf.where`).

Quantizers work as `input_quantizer` / `kernel_quantizer` of `tfbin.keras3.QuantConv2D` and
`QuantDense`, as objects or by the aliases of the Keras 2 path (`"ste_sign"`, `"ede_sign"`, ...).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tfbin import formulas, frameworks
from tfbin.quantizer_forms import SoftHardForms

__all__ = [
    "Quantizer",
    "SoftHardQuantizer",
    "SteSign",
    "SelfBinarizingSign",
    "EDESign",
    "LibraSign",
    "BoundedRectifier",
    "DistributionAwareSign",
    "ALIASES",
    "class_of",
    "get",
    "serialize",
    "as_tensor",
]

ALIASES: dict[str, type] = {}  # alias -> class, the same strings as the Keras 2 path's


def as_tensor(value):
    """The value of a variable (Keras 3's or TensorFlow's) as a TensorFlow tensor. The formulas'
    custom gradients take tensors (a variable read inside one is an error), and on the TensorFlow
    backend `keras.ops.convert_to_tensor` returns a Keras variable as it is."""
    return tf.convert_to_tensor(value)


def _register(alias):
    """Register a class with Keras 3 as `tfbin>ClassName` and under its alias for `get`."""

    def decorator(cls):
        cls = keras.saving.register_keras_serializable(package="tfbin")(cls)
        cls.alias = alias
        ALIASES[alias] = cls
        return cls

    return decorator


class Quantizer(keras.layers.Layer):
    """Base class of the Keras 3 quantizers: an elementwise layer with a `precision` (bits)."""

    precision: int | None = None

    def compute_output_shape(self, input_shape):
        return input_shape


class SoftHardQuantizer(SoftHardForms, Quantizer):
    """Public base class of the Keras 3 quantizers with a soft and a hard form.

    `tfbin.quantizer_forms.SoftHardForms` as a Keras 3 layer, as `tfbin.quantizers.SoftHardQuantizer`
    is on Keras 2: subclasses implement `soft(x)` and `hard(x)` and list their sharpness roles in
    `sharpness_defaults`; `self.sharpness(role)` is the weight's value as a tensor (the weights
    themselves: `sharpness_weights`). `hard_mode` is the flag that `tfbin.keras3.hard(model)` sets.

    # Arguments
        sharpness_names: `{role: weight name}` for the roles to rename.
    """

    def constant_initializer(self, value):
        return keras.initializers.Constant(value)

    def sharpness(self, role: str):
        """The sharpness weight that plays `role` (e.g. `"v"`, `"t"`), as a tensor."""
        return self.sharpness_value(role)


@_register("ste_sign")
class SteSign(Quantizer):
    r"""The sign with the straight-through estimator (larq's `ste_sign`).

    \[
    q(x) = \begin{cases} -1 & x < 0 \\ 1 & x \ge 0 \end{cases}, \qquad
    \frac{\partial q}{\partial x} = \mathbb 1\bigl[|x| \le \texttt{clip_value}\bigr]
    \]

    # Arguments
        clip_value: the gradient is zero where `|x|` exceeds it (default 1.0); `None`: no clip.

    # References
        - Courbariaux, Hubara, Soudry, El-Yaniv, Bengio, [Binarized Neural Networks: Training
          Deep Neural Networks with Weights and Activations Constrained to +1 or
          -1](https://arxiv.org/abs/1602.02830), 2016
    """

    precision = 1

    def __init__(self, clip_value: float | None = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.clip_value = clip_value

    def call(self, inputs):
        return formulas.ste_sign(inputs, self.clip_value)

    def get_config(self):
        return {**super().get_config(), "clip_value": self.clip_value}


# One class per definition of tfbin.quantizer_forms (tfbin.frameworks.QUANTIZERS), as the Keras 2 path's.
SelfBinarizingSign, EDESign, LibraSign, BoundedRectifier, DistributionAwareSign = frameworks.quantizer_classes(
    SoftHardQuantizer, _register, __name__, only_first_replica="only_first_replica"
)


_BY_NAME = {
    **ALIASES,
    **{cls.__name__: cls for cls in ALIASES.values()},
    **{f"tfbin>{cls.__name__}": cls for cls in ALIASES.values()},
}


def class_of(name: str | None):
    """The Keras 3 quantizer class of an alias, a class name or a registered name (`"tfbin>EDESign"`),
    else None. The Keras 2 path's names map to their Keras 3 twins, larq's `SteSign` included."""
    return _BY_NAME.get(name) if isinstance(name, str) else None


def get(identifier):
    """A quantizer from an alias (`"ede_sign"`, ...), a class name, a serialized config (the
    Keras 2 path's configs of tfbin's quantizers and of larq's `SteSign` included: they make the
    Keras 3 twin), a quantizer or any callable; `None` stays `None`."""
    if identifier is None:
        return None
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(f"Unknown quantizer {identifier!r}; the aliases are {sorted(ALIASES)}.")
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict):
        cls = class_of(identifier.get("registered_name")) or class_of(identifier.get("class_name"))
        if cls is not None:
            return cls.from_config(identifier.get("config", {}))
        return keras.saving.deserialize_keras_object(identifier)
    if callable(identifier):
        return identifier
    raise TypeError(f"Expected a quantizer, its alias or its config; got {identifier!r}.")


def serialize(quantizer):
    """The config of `quantizer` that `get` reads back (`None` for `None`)."""
    return None if quantizer is None else keras.saving.serialize_keras_object(quantizer)
