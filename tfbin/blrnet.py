r"""BLRNet: probabilistic binary networks trained without straight-through sign gradients.

Peters & Welling, "Probabilistic Binary Neural Networks" (arXiv:1809.03368; v1 "BLRNet", the
ICLR 2019 submission "PBNet"). Every weight is a random variable on {−1, +1}; training
propagates the distribution of the pre-activations instead of one binary net.

**Weights.** One logit \(\theta\) per weight, \(P(w = +1) = \sigma(2\theta)\), so
\(\mathbb{E}[w] = \mu_w = \tanh\theta\) and \(\mathbb{V}[w] = 1 - \mu_w^2\). (The paper
parameterizes the mean \(\mu_w \in [-1, 1]\) directly; the logit is the same family without a
clip.) The kernel variable holds \(\vartheta = \theta / k\), `logit_scale` \(k\) (default 100):
Adam moves a variable by about its learning rate per step whatever the gradient's scale, and a
logit of order 1 then needs ~1,000 steps at lr 1e-3 to change a weight's sign, where a latent
STE weight of Glorot scale (~0.05) needs ~50 — at \(k = 1\) the probabilistic weights learned
far slower than every other recipe's at the same optimizer. With \(k\) the step in \(\theta\) is
\(k\) times larger: a learning-rate multiplier for the logits only (as Hubara et al.'s per-layer
learning rates for BNNs), which leaves the float first and last layers at the user's rate.
The default \(k\) was chosen on a sweep of \(k\) on a validation split: see
docs/benchmarks.md#blrnet. From a float kernel \(W\), `from_float_kernel` applies the paper's
transfer (§2.3, "PBNet-S"):
\(\mu_w = \operatorname{clip}(W / \operatorname{std}(W_\text{layer}), \pm 0.9)\).

**Moments (local reparameterization, CLT).** For an input \(h\) (binary \(\pm1\), relaxed
values in \((-1, 1)\), or real for a first layer) the pre-activation \(a = \sum_d w_d h_d\) has

\[
\mu_a = \sum_d \mu_{w,d}\, h_d, \qquad \sigma_a^2 = \sum_d (1 - \mu_{w,d}^2)\, h_d^2
\]

exactly (independent weights); for \(h \in \{\pm1\}\) the variance is \(\sum_d (1 - \mu_{w,d}^2)\).
By the central limit theorem \(a \approx \mathcal{N}(\mu_a, \sigma_a^2)\) (paper Eq. 4, Alg. 1).
In training a layer outputs the reparameterized sample \(a = \mu_a + \sigma_a \epsilon\),
\(\epsilon \sim \mathcal{N}(0, 1)\) (Kingma, Salimans, Welling 2015), so gradients reach
\(\theta\) through \(\mu_a\) and \(\sigma_a\); outside training it outputs \(\mu_a\).

**Stochastic batch norm and max-pool.** The model's own `BatchNormalization` and
`MaxPooling2D` layers then act on the sample. BN's batch statistics of the sample are unbiased
Monte-Carlo estimates of the paper's stochastic BN statistics (Eqs. 9–10,
`stochastic_batch_norm`): \(\mathbb{E}[\hat m] = \frac1M\sum_i \mu_i\) and
\(\mathbb{E}[\hat v] = \frac1M\big[\sum_i (\mu_i - \bar\mu)^2 + (1 - \frac1M)\sum_i \sigma_i^2\big]\),
the paper's value up to Bessel's \(O(1/M)\) factor; given them, the normalized sample is
distributed as \(\mathcal{N}(\hat\mu, \hat\sigma^2)\) with \(\hat\mu = \gamma(\mu - m)/\sqrt{v + \varepsilon} + \beta\),
\(\hat\sigma^2 = \gamma^2\sigma^2/(v + \varepsilon)\) (Eq. 11). Max-pool over the sample is the
paper's stochastic max-pool (Eq. 12: draw, take the argmax per window); the paper then
re-draws from the winner's Gaussian, this passes the winning draw itself.

**Binary activations.** The next layer binarizes its input \(x\) (the normalized sample) with
`RelaxedSign`: \(\operatorname{sign}(x)\) is exactly a draw of the paper's
\(h \sim \operatorname{Binary}(2\Phi(\hat\mu/\hat\sigma) - 1)\) (Eq. 6), and training uses its
relaxation \(\tanh(x/\tau)\) with temperature \(\tau\) — the binary-Concrete / Gumbel-sigmoid
construction (Maddison et al.; Jang et al. 2017: noise added to a location, then a tempered
sigmoid, \(2\sigma(2z/\tau) - 1 = \tanh(z/\tau)\)) with the pre-activation's own Gaussian noise
in place of logistic noise on \(\operatorname{logit} p\). As \(\tau \to 0\) it is the sign. \(\tau\)
is a sharpness value named `"tau"`, annealed by `SharpeningScheduler` (recipe `blrnet`).
`straight_through=True` is the paper's PBNet-S choice (§2.1.1: the hard sample forward, the
relaxation's gradient backward, static \(\tau = 1\)).

**Deployment.** The hard form (`tfbin.hard`) of a `BLRConv2D` / `BLRDense` is an ordinary larq
`QuantConv2D` / `QuantDense`: the most probable weights \(\operatorname{sign}(\theta)\) and sign
activations, which `tfbin.export` lowers to `LceBconv2d` like any recipe. The paper re-estimates
BN statistics on the deterministic net (§2.4): run `tfbin.recalibrate(model, data)` first.
`ensemble_predict` averages nets whose weights are sampled from \(q(w)\) (the paper's anytime
ensemble, "PBNet-x").
"""
from __future__ import annotations

import larq as lq
import numpy as np
import tensorflow as tf

from tfbin import _quiet
from tfbin._registry import serializable
from tfbin.auxiliary import unwrap
from tfbin.batchnorm import recalibrate
from tfbin.introspect import all_layers
from tfbin.layers import LAYER_TYPES
from tfbin.mode import hard
from tfbin.quantizers import SoftHardQuantizer, register as _register_quantizer

__all__ = [
    "RelaxedSign",
    "WeightMode",
    "LogitUniform",
    "BLRLayer",
    "BLRConv2D",
    "BLRDense",
    "stochastic_batch_norm",
    "ensemble_predict",
    "TRANSFER_CLIP",
    "LOGIT_SCALE",
]

# The paper's PBNet-S transfer clips the initial weight means to ±0.9 (§2.3).
TRANSFER_CLIP = 0.9
# Added to σ² under the square root: keeps d√σ²/dσ² finite when every weight saturates.
_VARIANCE_FLOOR = 1e-6
# τ below this is treated as this (a temperature of 0 would divide by zero).
_MIN_TEMPERATURE = 1e-6
# k of the kernel's θ/k parameterization (module docstring): chosen by measurement.
LOGIT_SCALE = 100.0


def _check_scale(scale) -> float:
    if not float(scale) > 0:
        raise ValueError(f"logit_scale must be > 0, got {scale!r}.")
    return float(scale)


def _register(cls):
    return serializable(cls.__name__)(cls)


def _relaxed_sign(x, tau, straight_through):
    r"""`tanh(x/τ)`; with `straight_through`, `sign(x)` forward and `tanh(x/τ)`'s gradient."""
    tau = tf.maximum(tau, _MIN_TEMPERATURE)
    if not straight_through:
        return tf.tanh(x / tau)

    @tf.custom_gradient
    def _call(x):
        def grad(dy):
            return tf.raw_ops.TanhGrad(y=tf.tanh(x / tau), dy=dy / tau)

        return lq.math.sign(x), grad

    return _call(x)


@_register_quantizer("relaxed_sign")
class RelaxedSign(SoftHardQuantizer):
    r"""BLRNet's binary activation: a relaxed draw of \(\operatorname{sign}(x)\) with temperature τ.

    \[
    q_\text{soft}(x) = \tanh(x / \tau), \qquad q_\text{hard}(x) = \operatorname{sign}(x)
    \]

    For `x` a reparameterized Gaussian sample \(\hat\mu + \hat\sigma\epsilon\), `sign(x)` is a draw
    of \(\operatorname{Binary}(2\Phi(\hat\mu/\hat\sigma) - 1)\) and the soft form is its
    binary-Concrete-style relaxation (module docstring), which tends to it as τ → 0.
    `straight_through=True`: `sign(x)` forward, \(\frac{1}{\tau}(1 - \tanh^2(x/\tau))\) backward
    (the paper's PBNet-S hard sample). Peters & Welling, arXiv:1809.03368.

    # Arguments
        tau: name of the temperature weight (initial value 1.0), set by `SharpeningScheduler`.
        straight_through: hard forward, relaxed gradient.
    """

    sharpness_defaults = {"tau": 1.0}

    def __init__(self, tau: str = "tau", straight_through: bool = False, **kwargs):
        kwargs.setdefault("sharpness_names", {"tau": tau})
        super().__init__(**kwargs)
        self.straight_through = bool(straight_through)

    def soft(self, x):
        return _relaxed_sign(x, tf.convert_to_tensor(self.sharpness("tau")), self.straight_through)

    def hard(self, x):
        return lq.math.sign(x)

    def get_config(self):
        return {**super().get_config(), "straight_through": self.straight_through}


@_register_quantizer("blr_weight")
class WeightMode(SoftHardQuantizer):
    r"""Kernel quantizer of BLRNet layers, whose kernel holds the scaled logits \(\vartheta = \theta/k\).

    \[
    q_\text{soft}(\vartheta) = \tanh(k\vartheta) = \mathbb{E}[w], \qquad
    q_\text{hard}(\vartheta) = \operatorname{sign}(\vartheta) = \arg\max_w q(w)
    \]

    The layers read the logits themselves in training (mean and variance); this quantizer gives
    the kernel its deployed form, the most probable binary weights (paper §2.4, "MAP").

    # Arguments
        logit_scale: k, the layer's `logit_scale`.
    """

    def __init__(self, logit_scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.logit_scale = _check_scale(logit_scale)

    def soft(self, x):
        return tf.tanh(self.logit_scale * x)

    def hard(self, x):
        return lq.math.sign(x)

    def get_config(self):
        return {**super().get_config(), "logit_scale": self.logit_scale}


@_register
class LogitUniform(tf.keras.initializers.Initializer):
    r"""Scaled logits ϑ = atanh(u) / k, u ~ U(−limit, limit): weight means uniform in (−limit, limit),
    the paper's PBNet initialization (U(−1, 1), kept off ±1 where the logit is infinite); k is the
    layer's `logit_scale`."""

    def __init__(self, limit: float = TRANSFER_CLIP, seed=None, logit_scale: float = 1.0):
        if not 0.0 < float(limit) < 1.0:
            raise ValueError(f"LogitUniform limit must lie in (0, 1), got {limit}.")
        self.limit, self.seed, self.logit_scale = float(limit), seed, _check_scale(logit_scale)

    def __call__(self, shape, dtype=None, **kwargs):
        u = tf.random.stateless_uniform(shape, seed=[0, self.seed]) if self.seed is not None else tf.random.uniform(shape)
        return tf.cast(tf.atanh((2.0 * u - 1.0) * self.limit) / self.logit_scale, dtype or tf.float32)

    def get_config(self):
        return {"limit": self.limit, "seed": self.seed, "logit_scale": self.logit_scale}


def stochastic_batch_norm(mean, variance, axes, gamma=1.0, beta=0.0, epsilon=1e-3):
    r"""The paper's stochastic batch norm of Gaussians \(\mathcal{N}(\mu_i, \sigma_i^2)\) (Eqs. 9–11).

    \[
    m = \tfrac1M \sum_i \mu_i, \quad
    v = \tfrac{1}{M-1}\Big[\sum_i \sigma_i^2 + \sum_i (\mu_i - m)^2\Big], \quad
    \hat\mu = \gamma\frac{\mu - m}{\sqrt{v + \varepsilon}} + \beta, \quad
    \hat\sigma^2 = \frac{\gamma^2 \sigma^2}{v + \varepsilon}
    \]

    over the `M` entries along `axes` (batch and spatial). Returns `(m, v, μ̂, σ̂²)`. A reference:
    BLRNet layers get this from Keras' `BatchNormalization` on their reparameterized sample
    (module docstring), which `tests/test_blrnet.py` checks against it.
    """
    mean, variance = tf.convert_to_tensor(mean, tf.float32), tf.convert_to_tensor(variance, tf.float32)
    count = tf.cast(tf.reduce_prod([tf.shape(mean)[a] for a in axes]), tf.float32)
    if mean.shape.is_fully_defined() and int(np.prod([mean.shape[a] for a in axes])) < 2:
        raise ValueError("stochastic_batch_norm needs at least 2 entries along axes.")
    m = tf.reduce_mean(mean, axes, keepdims=True)
    v = (tf.reduce_sum(variance, axes, keepdims=True) + tf.reduce_sum(tf.square(mean - m), axes, keepdims=True)) / (count - 1.0)
    scale = gamma / tf.sqrt(v + epsilon)
    return tf.squeeze(m, axes), tf.squeeze(v, axes), scale * (mean - m) + beta, tf.square(scale) * variance


class BLRLayer:
    """Mixin of `BLRConv2D` and `BLRDense`: logits in `kernel`, moments, sampling, hard form."""

    def _blr_init(self, binary_inputs, straight_through, temperature, input_quantizer, kernel_quantizer, logit_scale):
        self.binary_inputs = bool(binary_inputs)
        self.logit_scale = _check_scale(logit_scale)
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


LAYER_TYPES["blrnet"] = (BLRConv2D, BLRDense)


def blr_layers(model) -> list:
    """The `BLRLayer`s of `model` (nested models flattened; a `TrainingModel` unwrapped)."""
    return [layer for layer in all_layers(unwrap(model)) if isinstance(layer, BLRLayer)]


def ensemble_predict(model, x, samples: int = 8, recalibration_data=None, recalibration_steps: int = 20,
                     seed: int | None = 0, batch_size: int = 256) -> np.ndarray:
    r"""The paper's ensemble of sampled binary nets ("PBNet-x", §2.4): the mean of the outputs of
    `samples` deterministic binary nets, each with every weight drawn from \(q(w)\),
    \(P(w = +1) = \sigma(2\theta)\), and sign activations (the hard form).

    Each sampled net is itself deployable (`tfbin.export` it while its weights are set). With
    `recalibration_data`, every BN's statistics are re-estimated for each sampled net
    (`tfbin.recalibrate`, `recalibration_steps` batches), as the paper does. The model's
    logits and BN statistics are restored afterwards. For a softmax output this averages class
    probabilities. Cost: `samples` × (recalibration + prediction).
    """
    if int(samples) != samples or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}.")
    model = unwrap(model)
    layers = blr_layers(model)
    if not layers:
        raise ValueError(f"Model {model.name!r} has no BLRNet layers (BLRConv2D / BLRDense) to sample.")
    x = np.asarray(x, np.float32)
    rng = np.random.default_rng(seed)
    saved = [layer.logit_variable.numpy() for layer in layers]
    norms = [m for m in model.submodules if isinstance(m, tf.keras.layers.BatchNormalization)]
    saved_norms = [bn.get_weights() for bn in norms]
    total = None
    try:
        for _ in range(int(samples)):
            for layer, variable in zip(layers, saved):
                theta = layer.logit_scale * variable.astype(np.float64)
                p = 1.0 / (1.0 + np.exp(-2.0 * theta))
                # sign(±1) = ±1: the hard form deploys exactly the drawn weights
                layer.assign_logits(np.where(rng.random(theta.shape) < p, 1.0, -1.0).astype(np.float32))
            if recalibration_data is not None:
                recalibrate(model, recalibration_data, steps=recalibration_steps)
            with hard(model):
                # eager calls: `predict` would retrace for every sampled net (hard() drops its trace)
                out = np.concatenate([np.asarray(model(x[i : i + batch_size], training=False), np.float64) for i in range(0, len(x), batch_size)])
            total = out if total is None else total + out
    finally:
        for layer, variable in zip(layers, saved):
            layer.logit_variable.assign(variable)
        for bn, weights in zip(norms, saved_norms):
            bn.set_weights(weights)
    return (total / samples).astype(np.float32)
