"""Keras 3 `QuantConv2D` and `QuantDense` with larq's argument names.

A larq model ports by changing the import: `input_quantizer`, `kernel_quantizer`,
`kernel_constraint` (`"weight_clip"` included) and `pad_values` mean what they mean in larq, and
the other arguments are Keras's `Conv2D` / `Dense` ones. Quantizers are objects of
`tfbin.keras3` (or any callable) or their aliases (`"ste_sign"`, `"ede_sign"`, ...).
"""
from __future__ import annotations

import keras

from tfbin.keras3 import binary_quantizers, weight_clip

__all__ = ["QuantConv2D", "QuantDense"]


def _build_quantizer(quantizer, shape):
    if isinstance(quantizer, keras.layers.Layer) and not quantizer.built:
        quantizer.build(tuple(shape))


def _quantized(quantizer, kernel):
    """`quantizer(kernel)` of the kernel's value (a tensor: the quantizers' custom gradients take
    tensors, not variables); the kernel itself without a quantizer."""
    return kernel if quantizer is None else quantizer(binary_quantizers.as_tensor(kernel))


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
                         kernel_constraint=weight_clip.get(kernel_constraint), **kwargs)
        self.input_quantizer = binary_quantizers.get(input_quantizer)
        self.kernel_quantizer = binary_quantizers.get(kernel_quantizer)
        self.pad_values = float(pad_values)

    def build(self, input_shape):
        super().build(input_shape)
        _build_quantizer(self.input_quantizer, input_shape)
        _build_quantizer(self.kernel_quantizer, self.kernel.shape)

    def _padded(self, inputs):
        """`(inputs, padding)` for the convolution: explicitly padded with `pad_values` if needed."""
        if self.padding != "same" or self.pad_values == 0.0:
            return inputs, self.padding
        shape = keras.ops.shape(inputs)
        spatial = shape[1:-1] if self.data_format == "channels_last" else shape[2:]
        pads = [_same_padding(*args) for args in zip(spatial, self.strides, self.dilation_rate, self.kernel_size)]
        widths = [[0, 0], *pads, [0, 0]] if self.data_format == "channels_last" else [[0, 0], [0, 0], *pads]
        return keras.ops.pad(inputs, widths, constant_values=self.pad_values), "valid"

    def call(self, inputs):
        if self.input_quantizer is not None:
            inputs = self.input_quantizer(inputs)
        inputs, padding = self._padded(inputs)
        kernel = _quantized(self.kernel_quantizer, self.kernel)
        outputs = keras.ops.conv(inputs, kernel, strides=self.strides, padding=padding,
                                 data_format=self.data_format, dilation_rate=self.dilation_rate)
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
                         kernel_constraint=weight_clip.get(kernel_constraint), **kwargs)
        self.input_quantizer = binary_quantizers.get(input_quantizer)
        self.kernel_quantizer = binary_quantizers.get(kernel_quantizer)

    def build(self, input_shape):
        super().build(input_shape)
        _build_quantizer(self.input_quantizer, input_shape)
        _build_quantizer(self.kernel_quantizer, self.kernel.shape)

    def call(self, inputs, training=None):
        if self.input_quantizer is not None:
            inputs = self.input_quantizer(inputs)
        kernel = _quantized(self.kernel_quantizer, self.kernel)
        outputs = keras.ops.matmul(inputs, kernel)
        if self.bias is not None:
            outputs = keras.ops.add(outputs, self.bias)
        return outputs if self.activation is None else self.activation(outputs)

    def get_config(self):
        return {
            **super().get_config(),
            "input_quantizer": binary_quantizers.serialize(self.input_quantizer),
            "kernel_quantizer": binary_quantizers.serialize(self.kernel_quantizer),
        }
