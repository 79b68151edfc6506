"""Small architectures for 28×28 data."""
from __future__ import annotations

import larq as lq
import tensorflow as tf


def _fresh(quantizer):
    """A new quantizer for each layer: sharpness and slope weights must not be shared by accident."""
    if isinstance(quantizer, tf.keras.layers.Layer):
        return type(quantizer).from_config(quantizer.get_config())
    return quantizer


def fmnist_small(
    input_quantizer="ste_sign",
    kernel_quantizer="ste_sign",
    kernel_constraint="weight_clip",
    *,
    input_shape=(28, 28, 1),
    num_classes: int = 10,
    name: str = "fmnist_small",
) -> tf.keras.Model:
    """The Fashion-MNIST net of DESIGN.md §1.

    Full-precision 32-filter first conv; binarized convs 64 (+max-pool), 64, 128 (+max-pool);
    a binarized Dense 256; a full-precision classifier. BatchNorm after every conv and dense.
    Binarized layers use `pad_values=1` so that 'same' padding stays binary (LCE's fast path).
    """

    def binary(layer, *args, **kwargs):
        return layer(
            *args,
            input_quantizer=_fresh(input_quantizer),
            kernel_quantizer=_fresh(kernel_quantizer),
            kernel_constraint=kernel_constraint,
            use_bias=False,
            **kwargs,
        )

    inputs = tf.keras.Input(input_shape)
    x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(inputs)
    x = tf.keras.layers.BatchNormalization(momentum=0.9)(x)
    x = binary(lq.layers.QuantConv2D, 64, 3, padding="same", pad_values=1.0)(x)
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = tf.keras.layers.BatchNormalization(momentum=0.9)(x)
    x = binary(lq.layers.QuantConv2D, 64, 3, padding="same", pad_values=1.0)(x)
    x = tf.keras.layers.BatchNormalization(momentum=0.9)(x)
    x = binary(lq.layers.QuantConv2D, 128, 3, padding="same", pad_values=1.0)(x)
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = tf.keras.layers.BatchNormalization(momentum=0.9)(x)
    x = tf.keras.layers.Flatten()(x)
    x = binary(lq.layers.QuantDense, 256)(x)
    x = tf.keras.layers.BatchNormalization(momentum=0.9)(x)
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs, name=name)
