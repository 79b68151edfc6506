r"""ABC-Net layers: M binary weight bases × N binary activation bases per layer.

Lin, Zhao, Pan, "Towards Accurate Binary Convolutional Neural Network", NeurIPS 2017
(arXiv:1711.11294). One layer computes

\[
\operatorname{ABC}(W, R) = \sum_{m=1}^{M} \sum_{n=1}^{N} \alpha_m \beta_n \operatorname{conv}(B_m, A_n)
\]

**Weight bases.** \(B_i = \operatorname{sign}(W - \operatorname{mean}(W) + u_i \operatorname{std}(W))\)
with the paper's shifts \(u_i = -1 + (i-1)\,\frac{2}{M-1}\) (\(u = 0\) for \(M = 1\)), and \(\alpha\)
the least-squares fit \(\min_\alpha \lVert \operatorname{vec}(W) - \sum_i \alpha_i \operatorname{vec}(B_i)\rVert^2\),
recomputed from \(W\) at every step (no gradient through it). Mean, standard deviation and
\(\alpha\) are taken **per output channel**: this is what LCE deploys (one binary conv per base
with a per-channel multiplier, so per-channel \(\alpha\) costs nothing at inference) and what
later re-implementations of ABC-Net do; it reduces to the paper's per-layer form when a layer
has one output channel. The gradient reaches \(W\) straight through the sign, as the paper's
\(\partial c/\partial W = \sum_m \alpha_m\, \partial c/\partial B_m\): with \(K = \sum_m \alpha_m B_m\)
the effective kernel, \(\partial c/\partial W = (\sum_m \alpha_m)\, \partial c/\partial K\) per channel.

**Activation bases.** \(A_n = H_{v_n}(R)\) with \(h_v(x) = \operatorname{clip}(x + v, 0, 1)\) and
\(H_v(x) = 2\cdot\mathbb{1}[h_v(x) \ge 0.5] - 1 = \operatorname{sign}(x + v - 0.5)\) (\(\operatorname{sign}(0) = +1\)),
and \(R \approx \sum_n \beta_n A_n\) with trainable shifts \(v_n\) and scales \(\beta_n\) (one of each
per base, shared by the layer's channels). Backward, the straight-through estimator passes the
gradient inside the clip's window: \(\partial A_n/\partial x = \partial A_n/\partial v_n = \mathbb{1}[0 \le x + v_n \le 1]\).

Training computes the same sum as one float convolution of \(\sum_n \beta_n A_n\) with
\(\sum_m \alpha_m B_m\) (linearity); `tfbin.export` lowers each layer into the M·N binary
convolutions of the formula (`ABCExport`).

**The layer family** (`ABC`, recipe `layer_type="abc"`, registered in `tfbin.families`): every
ABC-Net layer is binarized, its output has the float layer's scale, it deploys M·N binary
convolutions with M bits per latent weight, and its input signs switch at the N thresholds
\(0.5 - v_n\).
"""
from __future__ import annotations

import larq as lq
import numpy as np
import tensorflow as tf

from tfbin._registry import serializable
from tfbin.layer_family import LayerFamily, RewriteError

__all__ = ["ABC", "ABCConv2D", "ABCDense", "ABCExport", "ABCFamily", "ABCLayer", "export_abc_layer", "weight_shifts", "weight_bases", "activation_bases"]


def _register(cls):
    return serializable(cls.__name__)(cls)


def _sign(x):
    """±1 with sign(0) = +1 (the paper's `2·1[· ≥ 0] − 1`, and what LCE computes)."""
    return lq.math.sign(x)


def weight_shifts(m: int) -> np.ndarray:
    """The paper's `u_i = −1 + (i − 1)·2/(M − 1)`, i = 1..M (`[0]` for M = 1)."""
    if m < 1:
        raise ValueError(f"weight_bases must be >= 1, got {m}.")
    return np.zeros(1, np.float32) if m == 1 else np.linspace(-1.0, 1.0, m).astype(np.float32)


def weight_bases(kernel, m: int):
    """`(B, alpha)`: B `[M, *kernel.shape]` (±1), alpha `[M, O]` (least squares per output channel).

    `B_i = sign(W − mean_o(W) + u_i·std_o(W))` with mean and (population) std over every axis
    but the last; `alpha[:, o]` minimizes `‖W[..., o] − Σ_i alpha[i, o]·B_i[..., o]‖²`, the
    minimum-norm solution when bases coincide (`pinv(BᵀB)·Bᵀw`, as `numpy.linalg.lstsq`).
    No gradient flows through either.
    """
    w = tf.stop_gradient(tf.convert_to_tensor(kernel, tf.float32))
    axes = list(range(w.shape.rank - 1))
    mean, variance = tf.nn.moments(w, axes, keepdims=True)
    std = tf.sqrt(variance)
    bases = tf.stack([_sign(w - mean + float(u) * std) for u in weight_shifts(m)])  # [M, ..., O]
    columns = tf.reshape(bases, [m, -1, w.shape[-1]])  # [M, K, O]
    target = tf.reshape(w, [-1, w.shape[-1]])  # [K, O]
    gram = tf.einsum("iko,jko->oij", columns, columns)  # [O, M, M]
    rhs = tf.einsum("iko,ko->oi", columns, target)[..., None]  # [O, M, 1]
    alpha = tf.matmul(tf.linalg.pinv(gram), rhs)[..., 0]  # [O, M]
    return bases, tf.transpose(alpha)


def activation_bases(x, shifts):
    """`[A_1, ..., A_N]`, `A_n = sign(x + v_n − 0.5)` forward, gradient `1[0 ≤ x + v_n ≤ 1]`
    to both `x` and `v_n` (straight through the clip window)."""
    out = []
    for n in range(shifts.shape[0]):
        z = x + shifts[n]
        hard = _sign(x + (shifts[n] - 0.5))  # x + c_n, c_n = v_n − 0.5: the deployed float op
        window = tf.cast((z >= 0.0) & (z <= 1.0), z.dtype)
        surrogate = z * tf.stop_gradient(window)
        out.append(hard + (surrogate - tf.stop_gradient(surrogate)))  # forward: exactly `hard`
    return out


class ABCLayer:
    """Mixin of `ABCConv2D` and `ABCDense`: the bases, the shifts `v` and the scales `beta`."""

    def _abc_init(self, weight_bases, activation_bases, threshold_spread):
        self.weight_bases = int(weight_bases)
        self.activation_bases = int(activation_bases)
        if self.weight_bases < 1 or self.activation_bases < 1:
            raise ValueError(f"{type(self).__name__}: weight_bases and activation_bases must be >= 1, got {weight_bases}, {activation_bases}.")
        self.threshold_spread = float(threshold_spread)

    def initial_shifts(self) -> np.ndarray:
        """`v_n = 0.5 − θ_n`: the thresholds `θ_n` of `A_n` on the input spread evenly over
        `[−s, s]` (`s = threshold_spread`; θ = 0 for N = 1, a plain sign), which for the
        normalized inputs these layers see covers the bulk of the distribution."""
        n = self.activation_bases
        thresholds = np.zeros(1) if n == 1 else np.linspace(-1.0, 1.0, n) * self.threshold_spread
        return (0.5 - thresholds).astype(np.float32)

    def _abc_build(self):
        self.shifts = self.add_weight(
            name="shifts", shape=(self.activation_bases,), trainable=True,
            initializer=tf.keras.initializers.Constant(self.initial_shifts()),
        )
        self.scales = self.add_weight(
            name="scales", shape=(self.activation_bases,), trainable=True,
            initializer=tf.keras.initializers.Constant(1.0 / self.activation_bases),
        )

    def binary_kernel(self):
        """`(B, alpha)` of the current kernel (see `weight_bases`)."""
        return weight_bases(self.kernel, self.weight_bases)

    def effective_kernel(self):
        """`K = Σ_m alpha_m·B_m` forward (exactly), `∂K/∂W = Σ_m alpha_m` per output channel backward."""
        bases, alpha = self.binary_kernel()
        alpha = tf.reshape(alpha, [self.weight_bases] + [1] * (bases.shape.rank - 2) + [-1])
        kernel = tf.reduce_sum(alpha * bases, axis=0)
        w = tf.convert_to_tensor(self.kernel)
        return kernel + tf.reduce_sum(alpha, axis=0) * (w - tf.stop_gradient(w))

    def binary_activations(self, x):
        return activation_bases(x, self.shifts)

    def _abc_config(self):
        return {"weight_bases": self.weight_bases, "activation_bases": self.activation_bases, "threshold_spread": self.threshold_spread}


def _same_padding(size, kernel, stride, dilation):
    """TensorFlow's 'same' padding (before, after) along one axis (`size` an int or a scalar tensor)."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = (out - 1) * stride + effective - size
    total = max(total, 0) if isinstance(total, int) else tf.maximum(total, 0)
    return total // 2, total - total // 2


@_register
class ABCConv2D(ABCLayer, tf.keras.layers.Conv2D):
    """ABC-Net's binary convolution (module docstring): `Conv2D` arguments plus

    # Arguments
        weight_bases: M, the number of binary weight bases.
        activation_bases: N, the number of binary activation bases.
        threshold_spread: initial thresholds of the activation bases on the input, evenly in
            `[−s, s]` (shifts `v_n = 0.5 − θ_n`).
        pad_values: value of each binary activation base in 'same' padding (1.0: LCE's fast
            path; 0.0: zero padding), as larq's `pad_values`.

    Only `channels_last` and `groups=1` (what LCE's binary conv runs).
    """

    def __init__(self, filters, kernel_size, weight_bases=3, activation_bases=3, threshold_spread=1.0, pad_values=0.0, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        self._abc_init(weight_bases, activation_bases, threshold_spread)
        self.pad_values = float(pad_values)
        if self.data_format != "channels_last" or self.groups != 1:
            raise ValueError("ABCConv2D supports channels_last and groups=1 only (LCE's binary conv).")
        if self.padding not in ("same", "valid"):
            raise ValueError(f"ABCConv2D: padding must be 'same' or 'valid', got {self.padding!r}.")

    def build(self, input_shape):
        super().build(input_shape)
        self._abc_build()

    def _pad(self, a):
        if self.padding != "same" or self.pad_values == 0.0:
            return a
        sizes = [a.shape[1 + i] if a.shape[1 + i] is not None else tf.shape(a)[1 + i] for i in range(2)]
        pads = [_same_padding(sizes[i], self.kernel_size[i], self.strides[i], self.dilation_rate[i]) for i in range(2)]
        return tf.pad(a, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]], constant_values=self.pad_values)

    def activation_approximation(self, x):
        """`Σ_n beta_n·A_n` (each `A_n` padded with `pad_values` first for 'same' padding)."""
        bases = self.binary_activations(x)
        return tf.add_n([self.scales[n] * self._pad(a) for n, a in enumerate(bases)])

    def call(self, inputs):
        x = self.activation_approximation(inputs)
        native = "VALID" if self.padding == "valid" or self.pad_values != 0.0 else "SAME"
        y = tf.nn.convolution(x, self.effective_kernel(), strides=self.strides, padding=native, dilations=self.dilation_rate)
        if self.use_bias:
            y = tf.nn.bias_add(y, self.bias)
        return self.activation(y) if self.activation is not None else y

    def get_config(self):
        return {**super().get_config(), **self._abc_config(), "pad_values": self.pad_values}


@_register
class ABCDense(ABCLayer, tf.keras.layers.Dense):
    """ABC-Net's binary dense layer (module docstring) on `[batch, features]` inputs: `Dense`
    arguments plus `weight_bases`, `activation_bases`, `threshold_spread` (see `ABCConv2D`).
    Exported as 1×1 binary convolutions."""

    def __init__(self, units, weight_bases=3, activation_bases=3, threshold_spread=1.0, **kwargs):
        super().__init__(units, **kwargs)
        self._abc_init(weight_bases, activation_bases, threshold_spread)

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"ABCDense needs [batch, features] inputs (flatten first), got shape {input_shape}.")
        super().build(input_shape)
        self._abc_build()

    def activation_approximation(self, x):
        return tf.add_n([self.scales[n] * a for n, a in enumerate(self.binary_activations(x))])

    def call(self, inputs):
        y = tf.matmul(self.activation_approximation(inputs), self.effective_kernel())
        if self.use_bias:
            y = tf.nn.bias_add(y, self.bias)
        return self.activation(y) if self.activation is not None else y

    def get_config(self):
        return {**super().get_config(), **self._abc_config()}


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


class ABCFamily(LayerFamily):
    """ABC-Net's layers as a layer family (module docstring): exported by `export_abc_layer`."""

    name = "abc"
    conv, dense = ABCConv2D, ABCDense
    arguments = ("weight_bases", "activation_bases", "threshold_spread")
    # Σ α_m·B_m fits the float kernel and Σ β_n·A_n the input, so the output has the float
    # layer's scale: `tfbin.binarize` adds no BatchNormalization after it (measured in its docstring).
    float_scaled_output = True

    def export(self, layer) -> ABCExport:
        return export_abc_layer(layer)

    def binary_convolutions(self, layer) -> int:
        return layer.weight_bases * layer.activation_bases

    def input_thresholds(self, layer) -> list:
        """The N thresholds `0.5 − v_n`: `A_n = sign(x + (v_n − 0.5))`."""
        return [-(v - np.float32(0.5)) for v in layer.shifts.numpy()]

    def kernel_bits(self, layer) -> int:
        return layer.weight_bases

    def lce_runs_as(self, layer) -> str:
        return (f"LceBconv2d ×{self.binary_convolutions(layer)} (ABC-Net: {layer.weight_bases} weight × "
                f"{layer.activation_bases} activation bases)")


ABC = ABCFamily()
