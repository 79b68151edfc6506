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

**Where things live.** This module gives every name of the method: the layers, their initializer
and their layer family are `tfbin.blrnet_layers`', the quantizers `RelaxedSign` and `WeightMode`
`tfbin.quantizers`'; `stochastic_batch_norm` and `ensemble_predict` are this module's own.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfbin.auxiliary import unwrap
from tfbin.batchnorm import recalibrate
from tfbin.blrnet_layers import LOGIT_SCALE, TRANSFER_CLIP, BLRConv2D, BLRDense, BLRLayer, LogitUniform
from tfbin.introspect import all_layers
from tfbin.mode import hard
from tfbin.quantizers import RelaxedSign, WeightMode

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
