"""Small full-precision architectures of the papers, binarized by a recipe in `tfbin.models.build`.

They are written with plain `Conv2D`/`Dense` layers: the recipe decides the quantizers, and its
`keep_full_precision=("first", "last")` keeps the stem and the classifier float, which is how
every one of these nets is binarized in its paper.
"""
from __future__ import annotations

import tensorflow as tf

from tfbin._registry import serializable


def _bn():
    return tf.keras.layers.BatchNormalization(momentum=0.9)


@serializable()
class HardTanh(tf.keras.layers.Layer):
    """`clip(x, -1, 1)` (PyTorch's Hardtanh), the activation of IR-Net's CIFAR nets."""

    # Bounded and centre-preserving: a BN before it still normalizes a binarized layer's input
    # (tfbin.binarize inserts none).
    keeps_normalization = True

    def call(self, inputs):
        return tf.clip_by_value(inputs, -1.0, 1.0)


@serializable()
class ZeroPadShortcut(tf.keras.layers.Layer):
    """ResNet shortcut "option A": `x[:, ::s, ::s, :]`, channels zero-padded to `filters`."""

    # A strided slice of a normalized tensor, zero-padded: still normalized for tfbin.binarize.
    keeps_normalization = True

    def __init__(self, filters: int, strides: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.strides = int(filters), int(strides)

    def call(self, inputs):
        x = inputs[:, :: self.strides, :: self.strides, :]
        extra = self.filters - inputs.shape[-1]
        return tf.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


def _activation(name):
    """`"hardtanh"` -> `HardTanh()`; any other name -> `tf.keras.layers.Activation(name)`."""
    return HardTanh() if name == "hardtanh" else tf.keras.layers.Activation(name)


def fmnist_small(input_shape=(28, 28, 1), num_classes: int = 10, activation: str | None = None) -> tf.keras.Model:
    """tfbin's Fashion-MNIST benchmark net: float 32-filter stem; convs 64 (+pool), 64,
    128 (+pool) and a Dense 256 (binarized by the recipe); float classifier.

    `activation`: None (default) is the form a recipe binarizes: no activation, the binarized
    layers' input quantizers are the net's nonlinearities (left float, the net is nearly
    linear: only its max-pools are not). A Keras activation name (`"relu"`) puts that
    activation after every hidden BatchNorm, the stem's included: the float net one would
    train and deploy, the float reference of the benchmarks."""
    act = (lambda x: x) if activation is None else (lambda x: _activation(activation)(x))
    inputs = tf.keras.Input(input_shape)
    x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(inputs)
    x = act(_bn()(x))
    x = tf.keras.layers.Conv2D(64, 3, padding="same", use_bias=False)(x)
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = act(_bn()(x))
    x = tf.keras.layers.Conv2D(64, 3, padding="same", use_bias=False)(x)
    x = act(_bn()(x))
    x = tf.keras.layers.Conv2D(128, 3, padding="same", use_bias=False)(x)
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = act(_bn()(x))
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(256, use_bias=False)(x)
    x = act(_bn()(x))
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs, name="fmnist_small")


def bnn_mlp(input_shape=(28, 28, 1), num_classes: int = 10, units: int = 1024, hidden: int = 3) -> tf.keras.Model:
    """The BinaryNet MLP (Courbariaux et al. 2016): `hidden` Dense layers of `units` + BN."""
    inputs = tf.keras.Input(input_shape)
    x = tf.keras.layers.Flatten()(inputs)
    for _ in range(hidden):
        x = tf.keras.layers.Dense(units, use_bias=False)(x)
        x = _bn()(x)
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs, name="bnn_mlp")


def lenet_bnn(input_shape=(28, 28, 1), num_classes: int = 10) -> tf.keras.Model:
    """LeNet-5 shaped net with BN: conv 32 (float), conv 64 (+pools), Dense 512, classifier."""
    inputs = tf.keras.Input(input_shape)
    x = tf.keras.layers.Conv2D(32, 5, padding="same", use_bias=False)(inputs)
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = _bn()(x)
    x = tf.keras.layers.Conv2D(64, 5, padding="same", use_bias=False)(x)
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = _bn()(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(512, use_bias=False)(x)
    x = _bn()(x)
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs, name="lenet_bnn")


def vgg_small(input_shape=(32, 32, 3), num_classes: int = 10, activation: str = "hardtanh") -> tf.keras.Model:
    """IR-Net's VGG-Small (official code htqin/IR-Net, CIFAR-10/VGG-Small): conv0 128 float; convs 128 (+pool), 256, 256 (+pool),
    512, 512 (+pool), each conv -> [pool] -> BN -> hardtanh; float classifier.

    `activation`: `"hardtanh"` (default) is the BNN form a recipe binarizes; `"relu"` in its
    place gives the float net of the papers' full-precision rows (any Keras activation name)."""
    inputs = tf.keras.Input(input_shape)
    x = inputs
    for filters, pool in [(128, False), (128, True), (256, False), (256, True), (512, False), (512, True)]:
        x = tf.keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        if pool:
            x = tf.keras.layers.MaxPooling2D(2)(x)
        x = _bn()(x)
        x = _activation(activation)(x)
    x = tf.keras.layers.Flatten()(x)
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs, name="vgg_small")


def resnet20(input_shape=(32, 32, 3), num_classes: int = 10, activation: str = "hardtanh") -> tf.keras.Model:
    """IR-Net's CIFAR ResNet-20 1w1a (official code htqin/IR-Net, CIFAR-10/ResNet20/1w1a): a shortcut around every conv,
    `out = hardtanh(BN(conv(x)) + shortcut(x))`; option-A shortcuts; stages 16/32/64 × 3 blocks.

    `activation`: `"hardtanh"` (default) is the BNN form a recipe binarizes; `"relu"` in its
    place gives a float net with the binary net's shortcut around every conv (any Keras activation
    name); the papers' float reference is He et al.'s ResNet-20, `float_resnet20`."""
    inputs = tf.keras.Input(input_shape)
    x = tf.keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = _activation(activation)(_bn()(x))
    in_filters = 16
    for stage, filters in enumerate([16, 32, 64]):
        for block in range(3):
            strides = 2 if stage > 0 and block == 0 else 1
            for conv in range(2):
                s = strides if conv == 0 else 1
                y = _bn()(tf.keras.layers.Conv2D(filters, 3, strides=s, padding="same", use_bias=False)(x))
                shortcut = ZeroPadShortcut(filters, s)(x) if (s != 1 or in_filters != filters) else x
                x = _activation(activation)(tf.keras.layers.Add()([y, shortcut]))
                in_filters = filters
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = _bn()(x)
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs, name="resnet20")


def float_resnet20(input_shape=(32, 32, 3), num_classes: int = 10) -> tf.keras.Model:
    """He et al.'s CIFAR ResNet-20, the float row the BNN papers compare with: blocks of
    `relu(BN(conv(relu(BN(conv(x))))) + shortcut(x))`, option-A shortcuts, stages 16/32/64 × 3
    blocks, global average pooling and a softmax classifier.

    `resnet20(activation="relu")` is not this net: it keeps the binary net's shortcut around every
    conv, which trains slower in float (see `bench/cifar_float_check.py`).

    # References
        - [He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, §4.2](
          https://arxiv.org/abs/1512.03385)
    """
    inputs = tf.keras.Input(input_shape)
    x = tf.keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = tf.keras.layers.ReLU()(_bn()(x))
    in_filters = 16
    for stage, filters in enumerate([16, 32, 64]):
        for block in range(3):
            strides = 2 if stage > 0 and block == 0 else 1
            y = tf.keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
            y = tf.keras.layers.ReLU()(_bn()(y))
            y = _bn()(tf.keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(y))
            shortcut = ZeroPadShortcut(filters, strides)(x) if (strides != 1 or in_filters != filters) else x
            x = tf.keras.layers.ReLU()(tf.keras.layers.Add()([y, shortcut]))
            in_filters = filters
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs, name="float_resnet20")
