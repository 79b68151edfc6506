"""larq's quantized layers as a layer family, and their exact lowering into LCE binary convolutions.

A larq `QuantConv2D` / `QuantDense` is binarized when its input and kernel quantizers both have
precision 1 (larq's, or tfbin's in their hard form). Each one is exported as a `BinaryConvExport`
layer computing, in the hard form,

    y = act( bconv(sign(x − θ), [m·S | 1]) [..., :O] + d · bconv(...)[..., O] + b' )

- **kernel**: the hard kernel is materialized; any kernel with at most two values per output
  channel `o` (`p_o`, `n_o`) is exactly `m_o·S + d_o` with `S ∈ {±1}`, `m = (p−n)/2`,
  `d = (p+n)/2`. Symmetric kernels (`±s_o`: larq's signs, IR-Net's Libra-PB, SBN) have `d = 0`
  and become one LCE binary conv whose scale folds into the output multiplier; DAB's two scales
  add 8 all-ones output channels to the same conv (a 1-channel binary conv fails in LCE's
  interpreter) whose sum, times `d_o`, is added back.
- **input**: a ±1 hard form equal to `sign(x)` is used as it is (`θ = 0`); the {0,1} form of
  `BoundedRectifier` is `(s + 1)/2` with `s = sign(x − θ)`, `θ = (0.5 − c)/(v·a)` per channel, so
  the kernel is halved and `½·Σ K_o` goes into the bias (exact with `pad_values=1` or 'valid').
- **dense**: a binarized `QuantDense` on `[batch, C]` becomes a 1×1 binary conv on `[batch, 1, 1, C]`.

Anything else that cannot be made exact is refused with the reason (`RewriteError`). This is the
default family (`tfbin.families.DEFAULT`): every layer no registered family owns is asked here.
"""
from __future__ import annotations

import larq as lq
import numpy as np
import tensorflow as tf

from tfbin.layer_family import LARQ_ARGUMENTS, LayerFamily, RewriteError, precision
from tfbin.quantizers import BoundedRectifier, DistributionAwareSign, SoftHardQuantizer, hard_forms

__all__ = ["BinaryConvExport", "LARQ", "LarqFamily", "export_layer", "input_threshold"]

_ONES_CHANNELS = 8  # LCE's interpreter fails on binary convs with a single output channel


class BinaryConvExport(tf.keras.layers.Layer):
    """Deployed form of one binarized layer (see the module docstring). Export-only."""

    def __init__(self, *, kernel, theta, offset_scale, bias, conv_config, dense, activation, **kwargs):
        super().__init__(**kwargs)
        self._kernel_value = np.asarray(kernel, np.float32)
        self._theta_value = None if theta is None else np.asarray(theta, np.float32)
        self._offset_value = None if offset_scale is None else np.asarray(offset_scale, np.float32)
        self._bias_value = None if bias is None else np.asarray(bias, np.float32)
        self.filters = int(self._kernel_value.shape[-1]) - (0 if offset_scale is None else _ONES_CHANNELS)
        self.dense = dense
        self.activation = tf.keras.activations.get(activation)
        self.conv = lq.layers.QuantConv2D(
            filters=self._kernel_value.shape[-1],
            kernel_size=self._kernel_value.shape[:2],
            input_quantizer="ste_sign",
            kernel_quantizer=None,
            use_bias=False,
            **conv_config,
        )

    def build(self, input_shape):
        def constant(name, value):
            return self.add_weight(name=name, shape=value.shape, initializer=tf.keras.initializers.Constant(value), trainable=False)

        channels = input_shape[-1]
        conv_input = (None, 1, 1, channels) if self.dense else input_shape
        self.conv.build(conv_input)
        self.conv.kernel.assign(self._kernel_value)
        self.theta = None if self._theta_value is None else constant("theta", self._theta_value)
        self.offset_scale = None if self._offset_value is None else constant("offset_scale", self._offset_value)
        self.folded_bias = None if self._bias_value is None else constant("folded_bias", self._bias_value)
        super().build(input_shape)

    def call(self, inputs):
        x = inputs
        if self.dense:
            x = tf.reshape(x, [-1, 1, 1, x.shape[-1]])
        if self.theta is not None:
            x = x - self.theta
        y = self.conv(x)
        if self.offset_scale is not None:
            y = y[..., : self.filters] + self.offset_scale * y[..., self.filters : self.filters + 1]
        if self.folded_bias is not None:
            y = y + self.folded_bias
        if self.dense:
            y = tf.reshape(y, [-1, self.filters])
        return self.activation(y)


def _hard_call(quantizer, x) -> np.ndarray:
    """`quantizer(x)` in its hard form (tfbin quantizers) or as it is (larq's, already hard)."""
    x = tf.convert_to_tensor(x)  # not a variable: larq's custom gradients refuse those
    if not isinstance(quantizer, SoftHardQuantizer):
        return tf.convert_to_tensor(quantizer(x)).numpy()
    with hard_forms([quantizer]):
        return quantizer(x).numpy()


def _two_levels(kernel, layer_name):
    """`(m, S, d)` with `kernel == m·S + d` per output channel, or RewriteError."""
    columns = kernel.reshape(-1, kernel.shape[-1])
    high, low = columns.max(0), columns.min(0)
    mid = (high + low) / 2.0
    signs = np.where(columns >= mid, 1.0, -1.0)
    m = (high - low) / 2.0
    rebuilt = m * signs + mid
    bad = np.where(~np.all(np.isclose(rebuilt, columns, rtol=1e-6, atol=1e-7 * np.abs(columns).max()), axis=0))[0]
    if bad.size:
        o = int(bad[0])
        raise RewriteError(
            f"Layer {layer_name!r}: its hard kernel has {len(np.unique(columns[:, o]))} distinct "
            f"values in output channel {o}; a binary conv needs at most two per channel."
        )
    return m, signs.reshape(kernel.shape), mid


def input_threshold(layer):
    """`(theta, zero_one)`: the input is `sign(x − theta)` (or `(1 + that)/2` when zero_one)."""
    quantizer = layer.input_quantizer
    if isinstance(quantizer, BoundedRectifier) and not quantizer.symmetric:
        return quantizer.step_threshold().numpy(), True
    channels = layer.input_shape[-1]
    probe = np.array([-3.0, -1.0, -1e-3, -1e-30, 0.0, 1e-30, 1e-3, 1.0, 3.0], np.float32)
    x = np.repeat(probe[:, None], channels, axis=1)
    if layer.kernel.shape.rank == 4:
        x = x[:, None, None, :]
    y = _hard_call(quantizer, x)
    if not np.array_equal(y, np.where(x >= 0, 1.0, -1.0)):
        raise RewriteError(
            f"Layer {layer.name!r}: its input quantizer {type(quantizer).__name__} does not compute "
            "sign(x) (with sign(0) = +1) in its hard form, and no exact rewrite for it is known."
        )
    return None, False


def _conv_config(layer, dense):
    """The binary conv's arguments: 'valid' 1×1 for a dense layer, else the layer's own."""
    if dense:
        return {"padding": "valid"}
    config = layer.get_config()
    if config["data_format"] != "channels_last":
        raise RewriteError(f"Layer {layer.name!r}: LCE needs channels_last.")
    return {k: config[k] for k in ("strides", "padding", "dilation_rate", "groups", "pad_values")}


def export_layer(layer) -> BinaryConvExport:
    """The `BinaryConvExport` equivalent of a binarized `QuantConv2D` / `QuantDense`."""
    dense = isinstance(layer, tf.keras.layers.Dense)
    if not dense and not isinstance(layer, lq.layers.QuantConv2D):
        raise RewriteError(f"Layer {layer.name!r} ({type(layer).__name__}): LCE has no binary op for it.")
    kernel = _hard_call(layer.kernel_quantizer, layer.kernel)
    if dense:
        kernel = kernel[None, None]
    conv_config = _conv_config(layer, dense)
    theta, zero_one = input_threshold(layer)
    m, signs, d = _two_levels(kernel, layer.name)
    bias = layer.bias.numpy() if layer.use_bias else np.zeros(kernel.shape[-1], np.float32)
    if zero_one:
        if conv_config.get("padding") == "same" and conv_config.get("pad_values") != 1.0:
            raise RewriteError(
                f"Layer {layer.name!r}: {{0,1}} inputs with 'same' zero padding have no exact ±1 "
                "form (padding would become −1, which LCE cannot pad); use pad_values=1 "
                "(tfbin.binarize does)."
            )
        # conv(q, K) with q = (s + 1)/2 is ½·conv(s, K) + ½·ΣK per output channel.
        bias = bias + 0.5 * kernel.reshape(-1, kernel.shape[-1]).sum(0)
        m, d = 0.5 * m, 0.5 * d
    main = m * signs
    offset = None
    if np.any(d != 0):
        ones = np.ones(kernel.shape[:-1] + (_ONES_CHANNELS,), np.float32)
        main = np.concatenate([main, ones], axis=-1)
        offset = d
    return BinaryConvExport(
        kernel=main,
        theta=theta,
        offset_scale=offset,
        bias=bias if np.any(bias != 0) else None,
        conv_config=conv_config,
        dense=dense,
        activation=layer.get_config()["activation"],
        name=f"{layer.name}_export",
    )


class LarqFamily(LayerFamily):
    """larq's `QuantConv2D` / `QuantDense` (and any layer with larq-style quantizers): binarized
    when both quantizers are 1-bit, made from a float layer with a recipe's quantizers,
    exported by `export_layer`."""

    name = "larq"
    conv, dense = lq.layers.QuantConv2D, lq.layers.QuantDense
    # The float layer of each larq quantized layer (the float twin's).
    FLOAT_CLASSES = {
        lq.layers.QuantConv2D: tf.keras.layers.Conv2D,
        lq.layers.QuantDense: tf.keras.layers.Dense,
        lq.layers.QuantDepthwiseConv2D: tf.keras.layers.DepthwiseConv2D,
    }

    def is_binarized(self, layer) -> bool:
        return precision(getattr(layer, "input_quantizer", None)) == 1 and precision(getattr(layer, "kernel_quantizer", None)) == 1

    def from_float(self, config: dict, dense: bool, **arguments):
        """A `QuantConv2D` / `QuantDense` from a float or larq layer's config with `arguments`
        (the recipe's `input_quantizer`, `kernel_quantizer`); a conv with 'same' padding pads
        its binary input with 1 (LCE's fast path, and exact at borders)."""
        config = {**config, **arguments}
        if not dense and config.get("padding") == "same":
            config["pad_values"] = 1.0
        return (self.dense if dense else self.conv)(**config)

    def float_layer(self, layer):
        """larq's quantized layer without its quantizers; None for any other layer (float already)."""
        cls = self.FLOAT_CLASSES.get(type(layer))
        return None if cls is None else cls(**{k: v for k, v in layer.get_config().items() if k not in LARQ_ARGUMENTS})

    def export(self, layer) -> BinaryConvExport:
        return export_layer(layer)

    def input_thresholds(self, layer):
        return input_threshold(layer)[0]

    def lce_runs_as(self, layer) -> str:
        if isinstance(layer, (tf.keras.layers.DepthwiseConv2D, tf.keras.layers.SeparableConv2D)):
            return "float: LCE has no binary depthwise/separable op"
        if isinstance(layer, tf.keras.layers.Dense):
            return "LceBconv2d (a 1x1 binary conv: tfbin.export's rewrite; LCE has no binary dense op)"
        if isinstance(layer.input_quantizer, BoundedRectifier) and not layer.input_quantizer.symmetric:
            return "LceBconv2d ({0,1} inputs rewritten to ±1 by tfbin.export)"
        if isinstance(layer.kernel_quantizer, DistributionAwareSign):
            return "LceBconv2d (two scales per filter: tfbin.export adds all-ones channels)"
        return "LceBconv2d"


LARQ = LarqFamily()
