"""Keras 3 `QuantConv2D` and `QuantDense` with larq's argument names.

A larq model ports by changing the import: `input_quantizer`, `kernel_quantizer`,
`kernel_constraint` (`"weight_clip"` included) and `pad_values` mean what they mean in larq, and
the other arguments are Keras's `Conv2D` / `Dense` ones. Quantizers are objects of
`tfbin.keras3` (or any callable) or their aliases (`"ste_sign"`, `"ede_sign"`, ...).

While `tfbin.keras3.convert` exports a model, `export_form` switches what the layers compute
(`FORMS`); training and Keras inference never see it.
"""
from __future__ import annotations

import contextlib

import keras

from tfbin import formulas
from tfbin.keras3 import binary_quantizers, kernel_constraints

__all__ = ["FORMS", "QuantConv2D", "QuantDense", "export_form", "is_binarized", "lce_filter"]

# What a quant layer computes (its `export_form`, read when the layer is traced):
# - None: the layer itself (training, evaluation, `tfbin.keras3.hard`);
# - "lce": the same numbers in ops LCE fuses: a binarized `QuantDense` computes its product as a
#   1×1 convolution of `[batch, 1, 1, features]`, which LCE turns into an `LceBconv2d` (it has no
#   binary dense op; the Keras 2 exporter's rewrite does the same), bit-identical for ±1 inputs
#   and kernels (integer sums, exact in float32 up to 2^24); a kernel with two levels per output
#   channel (DAB's) and {0,1} inputs (`BoundedRectifier(symmetric=False)`) are rewritten as the
#   Keras 2 exporter does (`_lce_binary_conv`);
# - "float": no quantizers and zero padding, the plain Keras layer of the same weights (the float
#   TFLite model that `tfbin.keras3.float_flatbuffer` converts as the size baseline).
FORMS = (None, "lce", "float")


def is_binarized(layer) -> bool:
    """A quant layer whose input and kernel quantizers both have precision 1 (the Keras 2 path's
    `tfbin.introspect.is_binarized`): a layer LCE runs as a binary convolution."""
    return (isinstance(layer, (QuantConv2D, QuantDense))
            and getattr(layer.input_quantizer, "precision", None) == 1
            and getattr(layer.kernel_quantizer, "precision", None) == 1)


@contextlib.contextmanager
def export_form(layers, form):
    """Inside this block every `QuantConv2D` / `QuantDense` among `layers` computes `form`
    (`FORMS`) when traced; each gets its own form back on exit."""
    if form not in FORMS:
        raise ValueError(f"export_form: form must be one of {FORMS}, got {form!r}")
    found = [layer for layer in layers if isinstance(layer, (QuantConv2D, QuantDense))]
    previous = [layer.export_form for layer in found]
    for layer in found:
        layer.export_form = form
    try:
        yield
    finally:
        for layer, was in zip(found, previous):
            layer.export_form = was


def _build_quantizer(quantizer, shape):
    if isinstance(quantizer, keras.layers.Layer) and not quantizer.built:
        quantizer.build(tuple(shape))


def _quantized(quantizer, kernel):
    """`quantizer(kernel)` of the kernel's value (a tensor: the quantizers' custom gradients take
    tensors, not variables); the kernel itself without a quantizer."""
    return kernel if quantizer is None else quantizer(binary_quantizers.as_tensor(kernel))


_ONES_CHANNELS = 8  # as the Keras 2 rewrite: LCE's interpreter fails on binary convs with one output channel


def _rewritten_for_lce(layer) -> bool:
    """Whether the "lce" form of a binarized layer needs `_lce_binary_conv`: two kernel levels
    per output channel or {0,1} inputs (LCE fuses the other binarized layers as they are)."""
    return isinstance(layer.kernel_quantizer, binary_quantizers.DistributionAwareSign) or _zero_one_inputs(layer)


def _zero_one_inputs(layer) -> bool:
    quantizer = layer.input_quantizer
    return isinstance(quantizer, binary_quantizers.BoundedRectifier) and not quantizer.symmetric


def lce_filter(layer, kernel):
    """`(filter, d, b')`: the binary conv filter that the "lce" form of a binarized `layer`
    convolves its input signs with (`kernel`: its hard kernel, 4-D), the offset `d` per output
    channel (None: none) and the bias `b'` it adds, as the Keras 2 exporter's exact rewrite
    (`tfbin.larq_layers`) makes them:

        conv(s, [m·S | 1])[..., :O] + d · conv(s, ...)[..., O] + b'

    A kernel with two levels `p_o > n_o` per output channel (DAB's) is `m·S + d` (`m = (p − n)/2`,
    `d = (p + n)/2`, `S = ±1`), the all-ones channels summing the input signs for `d`. {0,1}
    inputs `q = (s + 1)/2` (`s = sign(x − θ)`, `BoundedRectifier.step_threshold`) halve the kernel
    and add `b' = ½·Σ K_o` (exact with `pad_values=1` or 'valid'). Other binarized layers: the
    kernel itself (LCE fuses it as it is), no offset, no bias."""
    if not _rewritten_for_lce(layer):
        return kernel, None, 0.0
    outputs = kernel.shape[-1]
    levels = keras.ops.reshape(kernel, (-1, outputs))
    high, low = keras.ops.max(levels, axis=0), keras.ops.min(levels, axis=0)
    m, d = (high - low) / 2.0, (high + low) / 2.0
    main, extra = m * formulas.sign(kernel - d), 0.0
    if _zero_one_inputs(layer):
        extra = 0.5 * keras.ops.sum(levels, axis=0)
        main, d = 0.5 * main, 0.5 * d
    if not isinstance(layer.kernel_quantizer, binary_quantizers.DistributionAwareSign):
        return main, None, extra  # a symmetric kernel: d = 0
    ones = keras.ops.ones((*kernel.shape[:-1], _ONES_CHANNELS), dtype=main.dtype)
    return keras.ops.concatenate([main, ones], axis=-1), d, extra


def _lce_binary_conv(layer, inputs, kernel, conv):
    """`conv(q(inputs), kernel)` in the form LCE runs as one binary conv (`lce_filter`);
    `conv(x, k)` pads and convolves as the layer does."""
    if _zero_one_inputs(layer):
        if getattr(layer, "padding", "valid") == "same" and layer.pad_values != 1.0:
            raise ValueError(
                f"Layer {layer.name!r}: {{0,1}} inputs with 'same' zero padding have no exact ±1 form (padding "
                "would become -1, which LCE cannot pad); use pad_values=1 (tfbin.keras3.binarize does)."
            )
        signs = formulas.sign(inputs - layer.input_quantizer.step_threshold())
    else:
        signs = layer.input_quantizer(inputs)
    filters, d, extra = lce_filter(layer, kernel)
    y = conv(signs, filters)
    outputs = kernel.shape[-1]
    return (y if d is None else y[..., :outputs] + d * y[..., outputs:outputs + 1]) + extra


def _same_padding(size, stride, dilation, kernel):
    """larq's `padding="same"` split `[before, after]` of one spatial axis (sizes may be tensors)."""
    effective = (kernel - 1) * dilation + 1
    total = ((size + stride - 1) // stride - 1) * stride + effective - size
    total = max(total, 0) if isinstance(total, int) else keras.ops.maximum(total, 0)
    return [total // 2, total - total // 2]


@keras.saving.register_keras_serializable(package="tfbin")
class QuantConv2D(keras.layers.Conv2D):
    """A 2D convolution of quantized inputs with a quantized kernel (larq's `QuantConv2D`).

    `outputs = activation(conv(input_quantizer(inputs), kernel_quantizer(kernel)) + bias)`, the
    latent `kernel` kept float for training. With `padding="same"` and `pad_values != 0` the
    input is padded with `pad_values` before a "valid" convolution (for ±1 inputs,
    `pad_values=1.0` is what LCE's binary convolution does fastest).

    # Arguments
        filters, kernel_size, strides, padding, data_format, dilation_rate, groups, activation,
            use_bias, *_initializer, *_regularizer, bias_constraint: as `keras.layers.Conv2D`.
        pad_values: the value of the padding when `padding="same"` (default 0.0).
        input_quantizer: quantizer of the inputs (default None: float inputs).
        kernel_quantizer: quantizer of the kernel (default None: float kernel).
        kernel_constraint: constraint of the latent kernel; `"weight_clip"` is larq's.
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", pad_values=0.0, data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True, input_quantizer=None,
                 kernel_quantizer=None, kernel_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, groups=groups, activation=activation, use_bias=use_bias,
                         kernel_constraint=kernel_constraints.get(kernel_constraint), **kwargs)
        self.input_quantizer = binary_quantizers.get(input_quantizer)
        self.kernel_quantizer = binary_quantizers.get(kernel_quantizer)
        self.pad_values = float(pad_values)
        self.export_form = None  # FORMS; set by `export_form`

    def build(self, input_shape):
        super().build(input_shape)
        _build_quantizer(self.input_quantizer, input_shape)
        _build_quantizer(self.kernel_quantizer, self.kernel.shape)

    def _padded(self, inputs):
        """`(inputs, padding)` for the convolution: explicitly padded with `pad_values` if needed."""
        if self.padding != "same" or self.pad_values == 0.0 or self.export_form == "float":
            return inputs, self.padding
        shape = keras.ops.shape(inputs)
        spatial = shape[1:-1] if self.data_format == "channels_last" else shape[2:]
        pads = [_same_padding(*args) for args in zip(spatial, self.strides, self.dilation_rate, self.kernel_size)]
        widths = [[0, 0], *pads, [0, 0]] if self.data_format == "channels_last" else [[0, 0], [0, 0], *pads]
        return keras.ops.pad(inputs, widths, constant_values=self.pad_values), "valid"

    def _conv(self, inputs, kernel):
        inputs, padding = self._padded(inputs)
        return keras.ops.conv(inputs, kernel, strides=self.strides, padding=padding,
                              data_format=self.data_format, dilation_rate=self.dilation_rate)

    def call(self, inputs):
        quantized = self.export_form != "float"
        kernel = _quantized(self.kernel_quantizer if quantized else None, self.kernel)
        if self.export_form == "lce" and is_binarized(self) and _rewritten_for_lce(self):
            outputs = _lce_binary_conv(self, inputs, kernel, self._conv)
        else:
            if self.input_quantizer is not None and quantized:
                inputs = self.input_quantizer(inputs)
            outputs = self._conv(inputs, kernel)
        if self.use_bias:
            shape = (1, 1, 1, self.filters) if self.data_format == "channels_last" else (1, self.filters, 1, 1)
            outputs = keras.ops.add(outputs, keras.ops.reshape(self.bias, shape))
        return outputs if self.activation is None else self.activation(outputs)

    def get_config(self):
        return {
            **super().get_config(),
            "pad_values": self.pad_values,
            "input_quantizer": binary_quantizers.serialize(self.input_quantizer),
            "kernel_quantizer": binary_quantizers.serialize(self.kernel_quantizer),
        }


@keras.saving.register_keras_serializable(package="tfbin")
class QuantDense(keras.layers.Dense):
    """A densely connected layer of quantized inputs with a quantized kernel (larq's `QuantDense`).

    `outputs = activation(input_quantizer(inputs) · kernel_quantizer(kernel) + bias)`, the
    latent `kernel` kept float for training.

    # Arguments
        units, activation, use_bias, *_initializer, *_regularizer, bias_constraint: as
            `keras.layers.Dense`.
        input_quantizer: quantizer of the inputs (default None: float inputs).
        kernel_quantizer: quantizer of the kernel (default None: float kernel).
        kernel_constraint: constraint of the latent kernel; `"weight_clip"` is larq's.
    """

    def __init__(self, units, activation=None, use_bias=True, input_quantizer=None, kernel_quantizer=None,
                 kernel_constraint=None, **kwargs):
        super().__init__(units, activation=activation, use_bias=use_bias,
                         kernel_constraint=kernel_constraints.get(kernel_constraint), **kwargs)
        self.input_quantizer = binary_quantizers.get(input_quantizer)
        self.kernel_quantizer = binary_quantizers.get(kernel_quantizer)
        self.export_form = None  # FORMS; set by `export_form`

    def build(self, input_shape):
        super().build(input_shape)
        _build_quantizer(self.input_quantizer, input_shape)
        _build_quantizer(self.kernel_quantizer, self.kernel.shape)

    def call(self, inputs, training=None):
        if self.export_form == "lce" and is_binarized(self):
            outputs = self._binary_conv(inputs)
        elif self.export_form == "float":
            outputs = keras.ops.matmul(inputs, self.kernel)
        else:
            if self.input_quantizer is not None:
                inputs = self.input_quantizer(inputs)
            outputs = keras.ops.matmul(inputs, _quantized(self.kernel_quantizer, self.kernel))
        if self.bias is not None:
            outputs = keras.ops.add(outputs, self.bias)
        return outputs if self.activation is None else self.activation(outputs)

    def _binary_conv(self, inputs):
        """The product as a 1×1 convolution (the "lce" form): `[..., features]` reshaped to
        `[n, 1, 1, features]` and quantized, the quantized kernel to `[1, 1, features, units]`,
        the result back to `[..., units]`."""
        shape = keras.ops.shape(inputs)
        pixels = keras.ops.reshape(inputs, (-1, 1, 1, shape[-1]))
        kernel = _quantized(self.kernel_quantizer, self.kernel)
        kernel = keras.ops.reshape(kernel, (1, 1, *kernel.shape))
        if _rewritten_for_lce(self):
            outputs = _lce_binary_conv(self, pixels, kernel, lambda x, k: keras.ops.conv(x, k, padding="valid"))
        else:
            outputs = keras.ops.conv(self.input_quantizer(pixels), kernel, padding="valid")
        return keras.ops.reshape(outputs, (*shape[:-1], self.units))

    def get_config(self):
        return {
            **super().get_config(),
            "input_quantizer": binary_quantizers.serialize(self.input_quantizer),
            "kernel_quantizer": binary_quantizers.serialize(self.kernel_quantizer),
        }
