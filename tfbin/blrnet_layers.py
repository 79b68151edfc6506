r"""BLRNet's probabilistic binary layers (`BLRConv2D`, `BLRDense`) and their layer family.

The method — logits per weight, the propagated moments, the relaxed sign activations, the
deployed form and the sampled-net ensembles — is described in `tfbin.blrnet`, which also gives
these names to users. Here: the layers with their kernel initializer `LogitUniform`, and `BLRNET`,
the layer family (recipe `layer_type="blrnet"`, registered in `tfbin.families`): a BLRNet layer
is binarized when its inputs are (`binary_inputs=True`); in its hard form it is a larq
`QuantConv2D` / `QuantDense` with sign inputs and `sign(θ)` weights, so larq's family
(`tfbin.larq_layers`) exports and verifies it; `tfbin.binarize` turns the copied float kernel
into logits (`from_float_kernel`). Its quantizers, `RelaxedSign` and `WeightMode`, are in
`tfbin.quantizers`. Peters & Welling, arXiv:1809.03368.
"""
from __future__ import annotations

import larq as lq
import numpy as np
import tensorflow as tf

from tfbin import _quiet
from tfbin._registry import serializable
from tfbin.formulas import BLRNET_LOGIT_SCALE
from tfbin.larq_layers import LARQ
from tfbin.layer_family import LayerFamily
from tfbin.quantizers import RelaxedSign, WeightMode, check_logit_scale

__all__ = ["BLRNET", "BLRNetFamily", "BLRLayer", "BLRConv2D", "BLRDense", "LogitUniform", "LOGIT_SCALE", "TRANSFER_CLIP"]

# The paper's PBNet-S transfer clips the initial weight means to ±0.9 (§2.3).
TRANSFER_CLIP = 0.9
# Added to σ² under the square root: keeps d√σ²/dσ² finite when every weight saturates.
_VARIANCE_FLOOR = 1e-6
LOGIT_SCALE = BLRNET_LOGIT_SCALE  # k of the kernel's θ/k parameterization (`tfbin.blrnet`'s docstring)


def _register(cls):
    return serializable(cls.__name__)(cls)


@_register
class LogitUniform(tf.keras.initializers.Initializer):
    r"""Scaled logits ϑ = atanh(u) / k, u ~ U(−limit, limit): weight means uniform in (−limit, limit),
    the paper's PBNet initialization (U(−1, 1), kept off ±1 where the logit is infinite); k is the
    layer's `logit_scale`."""

    def __init__(self, limit: float = TRANSFER_CLIP, seed=None, logit_scale: float = 1.0):
        if not 0.0 < float(limit) < 1.0:
            raise ValueError(f"LogitUniform limit must lie in (0, 1), got {limit}.")
        self.limit, self.seed, self.logit_scale = float(limit), seed, check_logit_scale(logit_scale)

    def __call__(self, shape, dtype=None, **kwargs):
        u = tf.random.stateless_uniform(shape, seed=[0, self.seed]) if self.seed is not None else tf.random.uniform(shape)
        return tf.cast(tf.atanh((2.0 * u - 1.0) * self.limit) / self.logit_scale, dtype or tf.float32)

    def get_config(self):
        return {"limit": self.limit, "seed": self.seed, "logit_scale": self.logit_scale}


class BLRLayer:
    """Mixin of `BLRConv2D` and `BLRDense`: logits in `kernel`, moments, sampling, hard form."""

    def _blr_init(self, binary_inputs, straight_through, temperature, input_quantizer, kernel_quantizer, logit_scale):
        self.binary_inputs = bool(binary_inputs)
        self.logit_scale = check_logit_scale(logit_scale)
        if input_quantizer is None and self.binary_inputs:
            input_quantizer = RelaxedSign(temperature, straight_through)
        elif input_quantizer is not None:
            input_quantizer = lq.quantizers.get(input_quantizer)
            if not self.binary_inputs:
                raise ValueError(f"{type(self).__name__}: binary_inputs=False takes real inputs; it has no input_quantizer.")
            if not isinstance(input_quantizer, RelaxedSign):
                raise ValueError(f"{type(self).__name__}: the input quantizer must be a RelaxedSign, got {type(input_quantizer).__name__}.")
            if (temperature, bool(straight_through)) not in (("tau", False), (input_quantizer.sharpness_names["tau"], input_quantizer.straight_through)):
                raise ValueError(f"{type(self).__name__}: temperature/straight_through contradict the given input_quantizer; pass one or the other.")
        kernel_quantizer = WeightMode(self.logit_scale) if kernel_quantizer is None else lq.quantizers.get(kernel_quantizer)
        if not isinstance(kernel_quantizer, WeightMode):
            raise ValueError(f"{type(self).__name__}: the kernel quantizer must be a WeightMode (the kernel holds logits), got {type(kernel_quantizer).__name__}.")
        if kernel_quantizer.logit_scale != self.logit_scale:
            raise ValueError(
                f"{type(self).__name__}: logit_scale={self.logit_scale} contradicts the kernel quantizer's "
                f"{kernel_quantizer.logit_scale}; pass one or the other."
            )
        return input_quantizer, kernel_quantizer

    @property
    def logit_variable(self) -> tf.Variable:
        """The trained variable, ϑ = θ / `logit_scale` (the latent kernel)."""
        kernel = self.kernel
        return getattr(kernel, "latent_variable", kernel)

    @property
    def logits(self) -> tf.Tensor:
        """θ = `logit_scale` · ϑ: `P(w = +1) = σ(2θ)`."""
        return self.logit_scale * tf.convert_to_tensor(self.logit_variable)

    def assign_logits(self, theta):
        """Set θ (stores θ / `logit_scale`)."""
        self.logit_variable.assign(tf.convert_to_tensor(theta, tf.float32) / self.logit_scale)

    def weight_moments(self):
        """`(μ_w, σ_w²) = (tanh θ, 1 − tanh² θ)`."""
        mean = tf.tanh(self.logits)
        return mean, 1.0 - tf.square(mean)

    def weight_probabilities(self) -> np.ndarray:
        """`P(w = +1) = σ(2θ)` per weight."""
        return tf.sigmoid(2.0 * self.logits).numpy()

    def from_float_kernel(self, clip: float = TRANSFER_CLIP):
        """Turn a float kernel copied into `kernel` into logits: `μ_w = clip(W/std(W), ±clip)`
        (the paper's PBNet-S transfer, §2.3; std over the whole layer). `tfbin.binarize` calls it."""
        if not 0.0 < clip < 1.0:
            raise ValueError(f"clip must lie in (0, 1), got {clip}.")
        w = tf.convert_to_tensor(self.logit_variable)
        std = tf.math.reduce_std(w)
        scaled = tf.where(std > 0, w / tf.maximum(std, 1e-30), w)
        self.assign_logits(tf.atanh(tf.clip_by_value(scaled, -clip, clip)))

    def is_hard(self) -> bool:
        return self.kernel_quantizer.hard_mode

    def moments(self, h):
        """`(μ_a, σ_a²)` of the pre-activation for an input `h` that is already binarized."""
        raise NotImplementedError

    def call(self, inputs, training=None):
        if self.is_hard():
            return super().call(inputs)  # the plain larq layer: sign inputs, sign(θ) kernel
        h = self.input_quantizer(inputs) if self.input_quantizer is not None else inputs
        mean, variance = self.moments(h)
        if training:
            outputs = mean + tf.sqrt(variance + _VARIANCE_FLOOR) * tf.random.normal(tf.shape(mean))
        else:
            outputs = mean
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs

    def _blr_config(self):
        return {"binary_inputs": self.binary_inputs, "logit_scale": self.logit_scale}

    @classmethod
    def from_config(cls, config):
        # Saved before logit_scale existed: the kernel holds θ itself (k = 1).
        return cls(**{"logit_scale": 1.0, **config})


@_register
class BLRConv2D(BLRLayer, lq.layers.QuantConv2D):
    r"""BLRNet's probabilistic binary convolution (module docstring): `Conv2D` arguments plus

    # Arguments
        binary_inputs: True (default): the input is binarized by `RelaxedSign` (training) /
            `sign` (deployed); False: real inputs (the paper's first layer), `μ = Σ μ_w x`,
            `σ² = Σ (1 − μ_w²) x²` — then not an LCE binary layer (float inputs).
        straight_through: the input's hard sample forward, relaxed gradient (PBNet-S).
        temperature: name of the input quantizer's temperature weight (default `"tau"`).
        logit_scale: k: the kernel holds θ/k, so that the optimizer's step in θ is k times its
            step in the variable (module docstring; default `LOGIT_SCALE`).
        pad_values: value of the binarized input in 'same' padding (1.0: LCE's fast path), as
            larq's; padded entries enter μ and σ² like any input.
        input_quantizer, kernel_quantizer: from a saved config (a `RelaxedSign`, a `WeightMode`);
            leave them out otherwise.

    The kernel holds the scaled logits θ/k (default initializer `LogitUniform`). Only `channels_last`
    and `groups=1` (what LCE's binary conv runs).
    """

    def __init__(self, filters, kernel_size, binary_inputs=True, straight_through=False, temperature="tau",
                 logit_scale=LOGIT_SCALE, input_quantizer=None, kernel_quantizer=None, kernel_initializer=None, **kwargs):
        input_quantizer, kernel_quantizer = self._blr_init(binary_inputs, straight_through, temperature, input_quantizer, kernel_quantizer, logit_scale)
        with _quiet.starved_weights_intended():
            super().__init__(filters, kernel_size, input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer,
                             kernel_initializer=kernel_initializer or LogitUniform(logit_scale=self.logit_scale), **kwargs)
        if self.data_format != "channels_last" or self.groups != 1:
            raise ValueError("BLRConv2D supports channels_last and groups=1 only (LCE's binary conv).")
        if self.padding not in ("same", "valid"):
            raise ValueError(f"BLRConv2D: padding must be 'same' or 'valid', got {self.padding!r}.")

    def moments(self, h):
        padding = self.padding.upper()
        if not self._is_native_padding:
            h = tf.pad(h, self._get_padding_same(h), constant_values=self.pad_values)
            padding = "VALID"
        mean_w, var_w = self.weight_moments()

        def conv(a, kernel):
            return tf.nn.convolution(a, kernel, strides=self.strides, padding=padding, dilations=self.dilation_rate)

        return conv(h, mean_w), conv(tf.square(h), var_w)

    def get_config(self):
        return {**super().get_config(), **self._blr_config()}


@_register
class BLRDense(BLRLayer, lq.layers.QuantDense):
    """BLRNet's probabilistic binary dense layer on `[batch, features]` inputs: `Dense`
    arguments plus `binary_inputs`, `straight_through`, `temperature`, `logit_scale` (see `BLRConv2D`).
    Exported as a 1×1 binary convolution."""

    def __init__(self, units, binary_inputs=True, straight_through=False, temperature="tau",
                 logit_scale=LOGIT_SCALE, input_quantizer=None, kernel_quantizer=None, kernel_initializer=None, **kwargs):
        input_quantizer, kernel_quantizer = self._blr_init(binary_inputs, straight_through, temperature, input_quantizer, kernel_quantizer, logit_scale)
        with _quiet.starved_weights_intended():
            super().__init__(units, input_quantizer=input_quantizer, kernel_quantizer=kernel_quantizer,
                             kernel_initializer=kernel_initializer or LogitUniform(logit_scale=self.logit_scale), **kwargs)

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"BLRDense needs [batch, features] inputs (flatten first), got shape {input_shape}.")
        super().build(input_shape)

    def moments(self, h):
        mean_w, var_w = self.weight_moments()
        return tf.matmul(h, mean_w), tf.matmul(tf.square(h), var_w)

    def get_config(self):
        return {**super().get_config(), **self._blr_config()}


class BLRNetFamily(LayerFamily):
    """BLRNet's layers as a layer family (module docstring). In its hard form a BLRNet layer is a
    larq quantized layer: larq's family (`tfbin.larq_layers.LARQ`) says whether it is binarized,
    exports it and gives its input thresholds."""

    name = "blrnet"
    conv, dense = BLRConv2D, BLRDense
    arguments = ("binary_inputs", "logit_scale")

    def is_binarized(self, layer) -> bool:
        return LARQ.is_binarized(layer)  # a real-input first layer (binary_inputs=False) is not

    def adopt_float_weights(self, layer) -> None:
        layer.from_float_kernel()  # the copied float kernel -> logits (the paper's PBNet-S transfer)

    def export(self, layer):
        return LARQ.export(layer)

    def input_thresholds(self, layer):
        return LARQ.input_thresholds(layer)

    def lce_runs_as(self, layer) -> str:
        return LARQ.lce_runs_as(layer)


BLRNET = BLRNetFamily()
