"""tfbin's binary quantizers as Keras 3 layers: larq's sign quantizers and every soft->hard quantizer.

Each soft->hard class is the Keras 3 glue (registration, initializers, how a sharpness weight is
read) around a mixin of `tfbin.quantizer_forms` (docstring, arguments, soft and hard forms, config)
and the formulas of `tfbin.formulas`, which the Keras 2 classes of `tfbin.quantizers` share; both
sets of classes are made from those definitions by `tfbin.frameworks.quantizer_classes`. On the
same inputs and sharpness values both compute the same numbers. The hard forms are written so that Larq
Compute Engine fuses them (`sign(x) = tf.sign(tf.sign(x) + 0.1)`, scalar `tf.where`).

larq's sign quantizers that tfbin's recipes use (`LARQ_TWINS`: `SteSign`, `ApproxSign`, `SwishSign`,
`MagnitudeAwareSign`, the quantizers of the recipes `ste`, `approx_sign`, `swish_sign`, `bireal`)
have Keras 3 twins here that compute larq's numbers op for op, forward and backward, under larq's
aliases and class names, so that a recipe's larq config makes its twin (`get`).

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
    "ApproxSign",
    "SwishSign",
    "MagnitudeAwareSign",
    "SelfBinarizingSign",
    "EDESign",
    "LibraSign",
    "BoundedRectifier",
    "DistributionAwareSign",
    "ALIASES",
    "LARQ_TWINS",
    "class_of",
    "get",
    "serialize",
    "as_tensor",
]

ALIASES: dict[str, type] = {}  # alias -> class, the same strings as the Keras 2 path's
# The aliases of larq's quantizers twinned here (larq's `lq.quantizers`, not tfbin's `tfbin.quantizers`).
LARQ_TWINS = ("ste_sign", "approx_sign", "swish_sign", "magnitude_aware_sign")


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


def _approx_sign(x):
    """`sign(x)` forward (`formulas.sign`: +1 at 0, LCE's form), Bi-Real Net's `2 − 2|x|` on
    `|x| ≤ 1` (else 0) backward: larq's `approx_sign`, op for op."""

    @keras.ops.custom_gradient
    def _call(x):
        def grad(dy):
            abs_x = keras.ops.abs(x)
            return keras.ops.where(keras.ops.less_equal(abs_x, 1.0), (1 - abs_x) * 2 * dy, keras.ops.zeros_like(dy))

        return formulas.sign(x), grad

    return _call(x)


def _swish_sign(x, beta):
    """`sign(x)` forward, the SignSwish derivative `β(2 − βx·tanh(βx/2)) / (1 + cosh(βx))`
    backward: larq's `swish_sign`, op for op."""

    @keras.ops.custom_gradient
    def _call(x):
        def grad(dy):
            b_x = beta * x
            return dy * beta * (2 - b_x * keras.ops.tanh(b_x * 0.5)) / (1 + keras.ops.cosh(b_x))

        return formulas.sign(x), grad

    return _call(x)


@_register("approx_sign")
class ApproxSign(Quantizer):
    r"""The sign with Bi-Real Net's ApproxSign gradient (larq's `approx_sign`).

    \[
    q(x) = \begin{cases} -1 & x < 0 \\ 1 & x \ge 0 \end{cases}, \qquad
    \frac{\partial q}{\partial x} = \begin{cases} 2 - 2|x| & |x| \le 1 \\ 0 & |x| > 1 \end{cases}
    \]

    The gradient is the derivative of Bi-Real Net's piecewise quadratic approximation of the
    sign. The activation quantizer of the recipes `approx_sign` and `bireal`.

    # References
        - Liu, Wu, Luo, Yang, Liu, Cheng, [Bi-Real Net: Enhancing the Performance of 1-bit CNNs
          With Improved Representational Capability and Advanced Training
          Algorithm](https://arxiv.org/abs/1808.00278), ECCV 2018
    """

    precision = 1

    def call(self, inputs):
        return _approx_sign(inputs)

    def get_config(self):
        return super().get_config()  # no arguments, as larq's (and not Keras's automatic config)


@_register("swish_sign")
class SwishSign(Quantizer):
    r"""The sign with the SignSwish gradient of BNN+ (larq's `swish_sign`).

    \[
    q(x) = \begin{cases} -1 & x < 0 \\ 1 & x \ge 0 \end{cases}, \qquad
    \frac{\partial q}{\partial x} = \frac{\beta\,\bigl(2 - \beta x \tanh(\beta x / 2)\bigr)}{1 + \cosh(\beta x)}
    \]

    the derivative of the SignSwish `2·σ(βx)·(1 + βx·(1 − σ(βx))) − 1`; β is a constant, as in
    larq (BNN+'s trainable β and its regularizers are not part of the quantizer). The
    activation quantizer of the recipe `swish_sign`.

    # Arguments
        beta: the SignSwish's sharpness (default 5.0, larq's); larger values approximate the
            sign's derivative more closely.

    # References
        - Darabi, Belbahri, Courbariaux, Partovi Nia, [BNN+: Improved Binary Network
          Training](https://arxiv.org/abs/1812.11800), 2018
    """

    precision = 1

    def __init__(self, beta: float = 5.0, **kwargs):
        super().__init__(**kwargs)
        self.beta = beta

    def call(self, inputs):
        return _swish_sign(inputs, self.beta)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}


@_register("magnitude_aware_sign")
class MagnitudeAwareSign(Quantizer):
    r"""Bi-Real Net's magnitude-aware sign of the weights (larq's `magnitude_aware_sign`).

    \[
    q(W)_{\cdot o} = \operatorname{sg}\bigl(\operatorname{mean}|W_{\cdot o}|\bigr)\,\operatorname{sign}(W_{\cdot o}),
    \qquad
    \frac{\partial q(W)_{\cdot o}}{\partial W_{\cdot o}} = \operatorname{sg}\bigl(\operatorname{mean}|W_{\cdot o}|\bigr)\,
    \mathbb 1\bigl[|W_{\cdot o}| \le \texttt{clip_value}\bigr]
    \]

    per output channel `o` (the mean of `|W|` over all axes but the last, `sg` a stopped
    gradient), `sign(0) = +1` and `sign`'s gradient the straight-through estimator of `SteSign`.
    The kernel quantizer of the recipe `bireal`: LCE folds the per-channel scale into the binary
    convolution's output multiplier, so a layer with it still runs as one `LceBconv2d`.

    # Arguments
        clip_value: the sign's gradient is zero where `|W|` exceeds it (default 1.0); `None`:
            no clip.

    # References
        - Liu, Wu, Luo, Yang, Liu, Cheng, [Bi-Real Net: Enhancing the Performance of 1-bit CNNs
          With Improved Representational Capability and Advanced Training
          Algorithm](https://arxiv.org/abs/1808.00278), ECCV 2018 (section 3.3)
    """

    precision = 1

    def __init__(self, clip_value: float | None = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.clip_value = clip_value

    def call(self, inputs):
        axes = list(range(len(inputs.shape) - 1))
        scale = keras.ops.stop_gradient(keras.ops.mean(keras.ops.abs(inputs), axis=axes))
        return scale * formulas.ste_sign(inputs, self.clip_value)

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
    else None. The Keras 2 path's names map to their Keras 3 twins, larq's (`LARQ_TWINS`: `SteSign`,
    `ApproxSign`, `SwishSign`, `MagnitudeAwareSign`) included."""
    return _BY_NAME.get(name) if isinstance(name, str) else None


def get(identifier):
    """A quantizer from an alias (`"ede_sign"`, ...), a class name, a serialized config (the
    Keras 2 path's configs of tfbin's quantizers and of larq's `LARQ_TWINS` included: they make
    the Keras 3 twin), a quantizer or any callable; `None` stays `None`."""
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
