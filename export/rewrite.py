"""Exact rewrites that turn every binarized layer into ops LCE runs as binary convolutions.

Each binarized layer (`QuantConv2D` / `QuantDense` whose input and kernel quantizers have
precision 1) is replaced by a `BinaryConvExport` layer computing, in the hard form,

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
- **ABC-Net** (`tfbin.layers.ABCConv2D` / `ABCDense`): `ABCExport`, M·N binary convs
  `conv(sign(x + v_n − 0.5), α_m β_n B_m)` summed (see `export_abc_layer`).

Anything else that cannot be made exact is refused with the reason (`RewriteError`).
"""
from __future__ import annotations

import larq as lq
import numpy as np
import tensorflow as tf

from tfbin import _graph
from tfbin.introspect import is_binarized
from tfbin.layers import ABCLayer
from tfbin.mode import hard_forms
from tfbin.quantizers import BoundedRectifier, DistributionAwareSign, SoftHardQuantizer

_ONES_CHANNELS = 8  # LCE's interpreter fails on binary convs with a single output channel


class RewriteError(ValueError):
    """A binarized layer has no exact form made of LCE binary ops; the message says why."""


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


def lce_runs_as(layer) -> str:
    """How LCE 0.16 runs a layer after `tfbin.export` (the rules this module implements; `models.summary` shows them)."""
    if not is_binarized(layer):
        return "float" if isinstance(layer, (tf.keras.layers.Conv2D, tf.keras.layers.Dense)) else ""
    if isinstance(layer, ABCLayer):
        return f"LceBconv2d ×{layer.weight_bases * layer.activation_bases} (ABC-Net: {layer.weight_bases} weight × {layer.activation_bases} activation bases)"
    if isinstance(layer, (tf.keras.layers.DepthwiseConv2D, tf.keras.layers.SeparableConv2D)):
        return "float: LCE has no binary depthwise/separable op"
    if isinstance(layer, tf.keras.layers.Dense):
        return "LceBconv2d (a 1x1 binary conv: tfbin.export's rewrite; LCE has no binary dense op)"
    if isinstance(layer.input_quantizer, BoundedRectifier) and not layer.input_quantizer.symmetric:
        return "LceBconv2d ({0,1} inputs rewritten to ±1 by tfbin.export)"
    if isinstance(layer.kernel_quantizer, DistributionAwareSign):
        return "LceBconv2d (two scales per filter: tfbin.export adds all-ones channels)"
    return "LceBconv2d"


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
        return (0.5 - quantizer.offset) / quantizer.effective_slope().numpy(), True
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


def export_layer(layer) -> BinaryConvExport:
    """The `BinaryConvExport` equivalent of a binarized `QuantConv2D` / `QuantDense`."""
    dense = isinstance(layer, tf.keras.layers.Dense)
    if not dense and not isinstance(layer, lq.layers.QuantConv2D):
        raise RewriteError(f"Layer {layer.name!r} ({type(layer).__name__}): LCE has no binary op for it.")
    kernel = _hard_call(layer.kernel_quantizer, layer.kernel)
    if dense:
        kernel = kernel[None, None]
        conv_config = {"padding": "valid"}
    else:
        config = layer.get_config()
        if config["data_format"] != "channels_last":
            raise RewriteError(f"Layer {layer.name!r}: LCE needs channels_last.")
        conv_config = {k: config[k] for k in ("strides", "padding", "dilation_rate", "groups", "pad_values")}
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


class ABCExport(tf.keras.layers.Layer):
    """Deployed form of one ABC-Net layer: `act(Σ_n Σ_m bconv(sign(x + c_n), s_mn·B_m) + b)`
    with `c_n = v_n − 0.5` and `s_mn = α_m·β_n` per output channel. Each term is a larq
    `QuantConv2D` with the `ste_sign` input quantizer and a fixed kernel of ±s per output
    channel, which LCE converts into one `LceBconv2d` with `s` as its output multiplier; the
    M convs of one activation base share the shifted input. Export-only."""

    def __init__(self, *, kernels, offsets, bias, conv_config, dense, activation, **kwargs):
        super().__init__(**kwargs)
        self._kernel_values = [np.asarray(k, np.float32) for k in kernels]  # [n][m] flattened as n*M + m
        self._offset_values = np.asarray(offsets, np.float32)
        self._bias_value = None if bias is None else np.asarray(bias, np.float32)
        self.activation_bases = len(self._offset_values)
        self.weight_bases = len(self._kernel_values) // self.activation_bases
        self.filters = int(self._kernel_values[0].shape[-1])
        self.dense = dense
        self.activation = tf.keras.activations.get(activation)
        self.convs = [
            lq.layers.QuantConv2D(
                filters=self.filters, kernel_size=k.shape[:2], input_quantizer="ste_sign", kernel_quantizer=None,
                use_bias=False, name=f"bconv_a{i // self.weight_bases}_w{i % self.weight_bases}", **conv_config,
            )
            for i, k in enumerate(self._kernel_values)
        ]

    def build(self, input_shape):
        conv_input = (None, 1, 1, input_shape[-1]) if self.dense else input_shape
        for conv, value in zip(self.convs, self._kernel_values):
            conv.build(conv_input)
            conv.kernel.assign(value)
        self.offsets = self.add_weight(name="offsets", shape=self._offset_values.shape, initializer=tf.keras.initializers.Constant(self._offset_values), trainable=False)
        self.folded_bias = None if self._bias_value is None else self.add_weight(
            name="folded_bias", shape=self._bias_value.shape, initializer=tf.keras.initializers.Constant(self._bias_value), trainable=False)
        super().build(input_shape)

    def call(self, inputs):
        x = inputs
        if self.dense:
            x = tf.reshape(x, [-1, 1, 1, x.shape[-1]])
        terms = []
        for n in range(self.activation_bases):
            shifted = x + self.offsets[n]  # the same float32 sum as ABCLayer's x + (v_n − 0.5)
            terms += [self.convs[n * self.weight_bases + m](shifted) for m in range(self.weight_bases)]
        y = tf.add_n(terms) if len(terms) > 1 else terms[0]
        if self.folded_bias is not None:
            y = y + self.folded_bias
        if self.dense:
            y = tf.reshape(y, [-1, self.filters])
        return self.activation(y)


def export_abc_layer(layer) -> ABCExport:
    """The `ABCExport` equivalent of an `ABCConv2D` / `ABCDense` (exact up to float summation order)."""
    dense = isinstance(layer, tf.keras.layers.Dense)
    bases, alpha = (t.numpy() for t in layer.binary_kernel())  # [M, ..., O], [M, O]
    beta = layer.scales.numpy()
    offsets = layer.shifts.numpy() - np.float32(0.5)
    if dense:
        bases = bases[:, None, None]
        conv_config = {"padding": "valid"}
    else:
        config = layer.get_config()
        conv_config = {k: config[k] for k in ("strides", "padding", "dilation_rate", "pad_values")}
    kernels = []
    for n in range(len(beta)):
        for m in range(len(bases)):
            scale = alpha[m] * beta[n]
            if np.any(scale == 0):
                raise RewriteError(
                    f"Layer {layer.name!r}: α_{m + 1}·β_{n + 1} is 0 in some output channel; a binary conv needs a non-zero scale."
                )
            kernels.append(bases[m] * scale)
    return ABCExport(
        kernels=kernels,
        offsets=offsets,
        bias=layer.bias.numpy() if layer.use_bias and np.any(layer.bias.numpy() != 0) else None,
        conv_config=conv_config,
        dense=dense,
        activation=layer.get_config()["activation"],
        name=f"{layer.name}_export",
    )


def export_model(model: tf.keras.Model) -> tuple[tf.keras.Model, dict, dict]:
    """The model LCE converts: every binarized layer rewritten into a `BinaryConvExport`.

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
            new = export_abc_layer(layer) if isinstance(layer, ABCLayer) else export_layer(layer)
        except RewriteError as err:
            refused[layer.name] = str(err)
            return None
        mapping[layer.name] = new.name
        return new

    return _graph.rebuild(model, replace, share=True), mapping, refused
