r"""PBGNet: PAC-Bayesian binary-activated networks trained on their generalization bound.

Letarte, Germain, Guedj, Laviolette, "Dichotomize and Generalize: PAC-Bayesian Binary Activated
Deep Neural Networks", NeurIPS 2019 (arXiv:1905.10259); formulas as in the paper and its
official code (github.com/gletarte/dichotomize-and-generalize, `pbgdeep/networks.py`, `utils.py`).

**Model.** A fully connected net for binary classification, labels \(y \in \{-1, +1\}\), with
sign activations and one output in \([-1, 1]\). The weights \(\theta\) (kernels and biases) are the
mean of a Gaussian posterior \(Q = \mathcal N(\theta, I)\); the prior is \(P = \mathcal N(\theta_0, I)\)
with \(\theta_0\) the initial weights (`prior="init"`, data-free), zero (`prior="zero"`), or the
weights of a PBGNet trained on other data (`train(..., prior="pretrain", prior_data=...)`, the
paper's PBGNet_pre: its code trains 20 epochs on the linear loss on half of the training set and
bounds on the other half; a prior near the posterior makes the KL, and the bound, small). The
network computes the posterior's expected output \(F(x) = \mathbb E_{w \sim Q}\, f_w(x)\) of the
sign network \(f_w\).

- **First layer** (`PBGErfDense`), exact: for a sign unit with weights \(v \sim \mathcal N(w, I)\),
  \(\mathbb E\,\operatorname{sgn}(v \cdot x + b) = \operatorname{erf}\!\big((w \cdot x + b)/(\sqrt2\,\lVert x\rVert)\big)\).
  As the paper's code, the bias enters as its mean (no bias noise in the forward), while the KL
  below charges the biases as Gaussian parameters too.
- **Hidden and output layers** (`PBGSampledDense`), Monte Carlo: the previous layer's output
  \(e \in [-1, 1]^d\) is the mean of independent \(\pm1\) units, so with \(T\) shared samples
  \(s^t \in \{-1, +1\}^d\), \(P(s^t_i = +1) = (1 + e_i)/2\),
  \[
  F_k(e) \approx \frac1T \sum_{t=1}^T \operatorname{erf}\!\Big(\frac{W s^t + b}{\sqrt{2d}}\Big)
  \]
  (\(\lVert s\rVert = \sqrt d\)); the exact value is the same sum over all \(2^d\) sign vectors weighted by
  \(\prod_i (1 + s_i e_i)/2\). The gradient with respect to \(W, b\) is that of the sampled sum; the
  gradient with respect to \(e\) is the paper's score-function estimator
  \[
  \frac{\partial F_k}{\partial e_i} \approx \frac1T \sum_t \operatorname{erf}\!\Big(\frac{W s^t + b}{\sqrt{2d}}\Big)\,
  \frac{s^t_i}{2\,p(s^t_i)}, \qquad p(s_i) = \frac{1 + s_i e_i}2,
  \]
  unbiased (no baseline, as the official code). Sampling happens in evaluation too: \(F\) is the
  aggregate the bound is about, estimated with \(T\) samples (`sample_size`, default 100).

**Objective** (the paper's Theorem 3, code `utils.bound`). Linear loss \(\ell = (1 - y F(x))/2 \in [0, 1]\),
\(\hat L\) its mean over the \(n\) training examples, and for \(C > 0\) and \(\delta \in (0, 1)\), with
probability \(\ge 1 - \delta\) over the training sample,
\[
L(F) \le B = \frac{1 - \exp\!\big(-C \hat L - \frac{\mathrm{KL}(Q\|P) + \ln(2\sqrt n/\delta)}{n}\big)}{1 - e^{-C}},
\qquad
\mathrm{KL}(Q\|P) = \tfrac12 \sum_{k} c_k \big(\lVert W_k - W^0_k\rVert^2 + \lVert b_k - b^0_k\rVert^2\big),
\]
\(c_k = \prod_{j > k} d_j\) the product of the widths (output units) of the layers above layer \(k\)
(\(c = 1\) for the output layer and the last hidden layer): the paper's network is a tree in which
layer \(k\) appears once per path above it (Eq. 17, `PBGNet.compute_kl`). \(C = e^t\) is learned with the
weights (\(t_0 = 0\)), \(\delta = 0.05\). The batch value of \(B\) is the training loss. \(B\) relaxes
the kl bound \(\mathrm{kl}(\hat L \| L) \le (\mathrm{KL} + \ln(2\sqrt n/\delta))/n\) through the variational form
\(\mathrm{kl}(q\|p) \ge -Cq - \ln(1 - p(1 - e^{-C}))\), which holds for every \(C\) at once, so learning
\(C\) costs nothing in the bound. Two caveats of the paper's procedure that this module keeps: \(\hat L\)
is itself a \(T\)-sample Monte-Carlo estimate (unbiased, not an upper bound; `evaluate_bound` can use a
larger \(T\)), and selecting epochs or hyperparameters by the bound adds no union bound.

**Deployment.** The bound covers the aggregate \(F\), which needs erf and sampling. `deploy(model)`
returns the mean-weight sign network \(\operatorname{sgn}(W_L \operatorname{sgn}(\dots \operatorname{sgn}(W_1 x + b_1) \dots) + b_L)\)
(the official code's `bin_test`; the bound does not cover it: measure its error separately) as larq
`QuantDense` layers with `ste_sign` inputs and real weights. LCE has no binary op for real
weights, so `tfbin.export` converts them to float `FULLY_CONNECTED` ops and says so in its report.

PBGNet is a trainer, not a `tfbin.recipes` recipe: a recipe swaps the quantizers of a user's
model, whereas PBGNet fixes the architecture and the objective (the bound needs the layer
structure, the training-set size and the prior).

```python
model = tfbin.pbgnet.PBGNet(hidden=(10,), n_examples=len(x_train))
model.compile(tf.keras.optimizers.Adam(1e-3))
model.fit(x_train, y_train, batch_size=32, epochs=20)       # logs linear_loss, error, kl, C, bound
tfbin.pbgnet.evaluate_bound(model, x_train, y_train)        # {'bound': ..., 'linear_loss': ..., ...}
sign_net = tfbin.pbgnet.deploy(model)                       # -> tfbin.export.convert(sign_net, ...)
```
"""
from __future__ import annotations

import math

import larq as lq
import numpy as np
import tensorflow as tf

from tfbin._registry import serializable

__all__ = [
    "PBGErfDense",
    "PBGSampledDense",
    "PBGNet",
    "erf_expectation",
    "sampled_erf",
    "linear_loss",
    "bound",
    "kl_coefficients",
    "evaluate_bound",
    "deploy",
    "train",
]

PRIORS = ("init", "zero")
OBJECTIVES = ("bound", "linear_loss")


def _register(cls):
    return serializable(cls.__name__)(cls)


def _xavier_normal():
    # The official code's torch.nn.init.xavier_normal_: an untruncated normal with
    # std = sqrt(2 / (fan_in + fan_out)) (Keras' GlorotNormal truncates).
    return tf.keras.initializers.VarianceScaling(1.0, "fan_avg", "untruncated_normal")


def erf_expectation(x, kernel, bias):
    r"""\(\operatorname{erf}((x W + b)/(\sqrt2\,\lVert x\rVert))\): the expected sign of each unit under
    weights \(\mathcal N(W, I)\) (bias at its mean), for `x` `[batch, d]`.

    A zero input row gives \(\operatorname{sgn}(b)\) (the norm is floored at the smallest normal
    float32), which is the limit of the formula and the sign unit's value there."""
    x = tf.convert_to_tensor(x, tf.float32)
    norm = tf.maximum(tf.norm(x, axis=-1, keepdims=True), np.finfo(np.float32).tiny)
    return tf.math.erf((tf.matmul(x, kernel) + bias) / (math.sqrt(2.0) * norm))


def sampled_erf(e, kernel, bias, uniform):
    r"""The sampled layer's forward and its score-function gradient (module docstring).

    # Arguments
        e: `[batch, d]`, means of the ±1 inputs, in [−1, 1].
        kernel, bias: `[d, units]`, `[units]`.
        uniform: `[batch, T, d]` uniform [0, 1) draws; `s = +1` where `uniform < (1 + e)/2`.
            The same T sign vectors feed every unit of the layer (as the official code).

    # Returns
        `[batch, units]`: \(\frac1T \sum_t \operatorname{erf}((s^t W + b)/\sqrt{2d})\). Gradients:
        exact for `kernel` and `bias` (of the sampled sum), the estimator
        \(\frac1T \sum_t \operatorname{erf}(\cdot)\, s^t_i/(1 + s^t_i e_i)\) (\(= s_i/(2p(s_i))\)) for `e`.
    """
    e = tf.convert_to_tensor(e, tf.float32)
    kernel = tf.convert_to_tensor(kernel, tf.float32)
    bias = tf.convert_to_tensor(bias, tf.float32)
    uniform = tf.convert_to_tensor(uniform, tf.float32)
    d = e.shape[-1]
    if d is None:
        raise ValueError("sampled_erf needs a known input width d (the scale is 1/sqrt(2d)).")
    scale = 1.0 / math.sqrt(2.0 * d)

    @tf.custom_gradient
    def forward(e, kernel, bias):
        s = tf.where(uniform < 0.5 * (1.0 + e[:, None, :]), 1.0, -1.0)  # [B, T, d]
        z = (tf.einsum("btd,du->btu", s, kernel) + bias) * scale  # [B, T, U]
        values = tf.math.erf(z)
        samples = tf.cast(tf.shape(s)[1], tf.float32)

        def grad(upstream):  # upstream: [B, U]
            # d erf(z)/dz = 2/sqrt(pi) exp(-z^2), times dz/dW = s/sqrt(2d)
            dz = (2.0 / math.sqrt(math.pi)) * tf.exp(-tf.square(z)) * upstream[:, None, :] * (scale / samples)
            g_kernel = tf.einsum("btd,btu->du", s, dz)
            g_bias = tf.reduce_sum(dz, axis=[0, 1])
            weighted = tf.einsum("btu,bu->bt", values, upstream) / samples  # [B, T]
            # A drawn s_i always has p(s_i) > 0, so 1 + s_i·e_i > 0 where it is used.
            score = s / (1.0 + s * e[:, None, :])  # s_i / (2 p(s_i))
            g_e = tf.einsum("bt,btd->bd", weighted, score)
            return g_e, g_kernel, g_bias

        return tf.reduce_mean(values, axis=1), grad

    return forward(e, kernel, bias)


class _PBGLayer(tf.keras.__internal__.layers.BaseRandomLayer):
    """Kernel `[d, units]`, bias `[units]` (the posterior mean) and their prior (non-trainable:
    the initial values for `prior="init"`, zeros for `prior="zero"`)."""

    def __init__(self, units, prior="init", kernel_initializer=None, bias_initializer="zeros", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"{type(self).__name__}: units must be a positive integer, got {units!r}.")
        if prior not in PRIORS:
            raise ValueError(f"{type(self).__name__}: prior must be one of {PRIORS}, got {prior!r}.")
        self.units = int(units)
        self.prior = prior
        self.seed = seed
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer or _xavier_normal())
        self.bias_initializer = tf.keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 2 or input_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} needs [batch, features] inputs with known features (flatten first), got {input_shape}.")
        d = int(input_shape[-1])
        with tf.init_scope():  # one draw serves as both the initial weights and the prior
            kernel0 = tf.convert_to_tensor(self.kernel_initializer((d, self.units)), tf.float32)
            bias0 = tf.convert_to_tensor(self.bias_initializer((self.units,)), tf.float32)
        self.kernel = self.add_weight("kernel", (d, self.units), initializer=lambda *a, **k: kernel0)
        self.bias = self.add_weight("bias", (self.units,), initializer=lambda *a, **k: bias0)
        zero = self.prior == "zero"
        self.kernel_prior = self.add_weight(
            "kernel_prior", (d, self.units), trainable=False, initializer="zeros" if zero else (lambda *a, **k: kernel0)
        )
        self.bias_prior = self.add_weight(
            "bias_prior", (self.units,), trainable=False, initializer="zeros" if zero else (lambda *a, **k: bias0)
        )
        super().build(input_shape)

    def distance(self):
        """\(\lVert W - W^0\rVert^2 + \lVert b - b^0\rVert^2\)."""
        return tf.reduce_sum(tf.square(self.kernel - self.kernel_prior)) + tf.reduce_sum(tf.square(self.bias - self.bias_prior))

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.units])

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "prior": self.prior,
            "seed": self.seed,
            "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": tf.keras.initializers.serialize(self.bias_initializer),
        }


@_register
class PBGErfDense(_PBGLayer):
    r"""PBGNet's first layer: \(\operatorname{erf}((x W + b)/(\sqrt2\,\lVert x\rVert))\), the exact expected
    sign of each unit under \(\mathcal N(W, I)\) weights (`erf_expectation`; module docstring).

    # Arguments
        units: output width.
        prior: `"init"` (the prior mean is the initial weights) or `"zero"`.
        kernel_initializer: default Xavier normal (untruncated, as the official code); biases 0.
    """

    def call(self, inputs):
        return erf_expectation(inputs, self.kernel, self.bias)


@_register
class PBGSampledDense(_PBGLayer):
    r"""PBGNet's hidden and output layers: \(\frac1T \sum_t \operatorname{erf}((s^t W + b)/\sqrt{2d})\) with
    \(s^t\) drawn with \(P(s^t_i = +1) = (1 + e_i)/2\) from the input means \(e\), and the paper's
    score-function gradient to \(e\) (`sampled_erf`; module docstring). Samples are drawn in
    training and in evaluation.

    # Arguments
        units: output width (1 for the output layer).
        sample_size: T, the number of sign vectors per example (the paper's default 100).
        prior, kernel_initializer: as `PBGErfDense`.
        seed: seed of this layer's random generator (None: TensorFlow's global seed).
    """

    def __init__(self, units, sample_size=100, **kwargs):
        super().__init__(units, **kwargs)
        if isinstance(sample_size, bool) or not isinstance(sample_size, (int, np.integer)) or sample_size < 1:
            raise ValueError(f"PBGSampledDense: sample_size must be a positive integer, got {sample_size!r}.")
        self.sample_size = int(sample_size)

    def call(self, inputs):
        inputs = tf.convert_to_tensor(inputs, tf.float32)
        shape = tf.stack([tf.shape(inputs)[0], self.sample_size, tf.shape(inputs)[1]])
        uniform = self._random_generator.random_uniform(shape)
        return sampled_erf(inputs, self.kernel, self.bias, uniform)

    def get_config(self):
        return {**super().get_config(), "sample_size": self.sample_size}


def linear_loss(y_true, y_pred):
    """The linear loss `(1 − y·ŷ)/2` per example (labels ±1; `[batch]`)."""
    y_true = tf.reshape(tf.cast(y_true, tf.float32), [-1])
    return 0.5 * (1.0 - y_true * tf.reshape(tf.cast(y_pred, tf.float32), [-1]))


def bound(linear_loss_value, kl, n, C, delta=0.05):
    r"""\(B = (1 - \exp(-C \hat L - (\mathrm{KL} + \ln(2\sqrt n/\delta))/n)) / (1 - e^{-C})\) (module
    docstring). Tensors or numbers; broadcasts (e.g. over a grid of C)."""
    if not n >= 1:
        raise ValueError(f"bound: n (the number of training examples) must be >= 1, got {n}.")
    if not 0 < delta < 1:
        raise ValueError(f"bound: delta must lie in (0, 1), got {delta}.")
    confidence = math.log(2.0 * math.sqrt(n) / delta)
    C = tf.convert_to_tensor(C, tf.float32)
    exponent = -C * tf.convert_to_tensor(linear_loss_value, tf.float32) - (tf.convert_to_tensor(kl, tf.float32) + confidence) / n
    return (1.0 - tf.exp(exponent)) / (1.0 - tf.exp(-C))


def kl_coefficients(widths) -> list[int]:
    r"""\(c_k = \prod_{j > k} d_j\) for layers with output widths `widths` (first to output layer)."""
    widths = [int(w) for w in widths]
    return [int(np.prod(widths[k + 1 :], dtype=np.int64)) for k in range(len(widths))]


def _labels(y):
    """±1 labels `[batch]`; 0 reads as −1 so that {0, 1} labels work too. Anything else fails."""
    y = tf.reshape(tf.cast(y, tf.float32), [-1])
    valid = tf.reduce_all((y == 1.0) | (y == -1.0) | (y == 0.0))
    tf.debugging.Assert(valid, ["PBGNet labels must be ±1 (or 0/1 for −1/+1); got values", y], summarize=8)
    return tf.where(y > 0, 1.0, -1.0)


def _error(y, y_pred):
    """0-1 error of sgn(ŷ) with sgn(0) = +1 (the deployed sign's convention)."""
    predicted = tf.where(tf.reshape(y_pred, [-1]) >= 0, 1.0, -1.0)
    return tf.cast(tf.not_equal(predicted, y), tf.float32)


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"PBGNet: {name} must be a positive integer, got {value!r}.")
    return int(value)


@_register
class PBGNet(tf.keras.Model):
    r"""PBGNet (module docstring): `PBGErfDense` → `PBGSampledDense` per further hidden layer →
    `PBGSampledDense(1)`, trained with `model.fit` on the PAC-Bayes bound.

    `compile(optimizer)` needs no loss (the bound is the loss; a `loss` passed to compile is
    not used). `fit` logs per epoch `loss` (the mean batch bound), `linear_loss` and `error`
    (of the running weights, averaged over the epoch), `kl`, `C` and `bound` — the bound with the
    epoch's mean linear loss and the current KL and C, as the official code's logger; the figure
    to report is `evaluate_bound` on the whole training set after training. `evaluate` gives
    `linear_loss` and `error` of the aggregate F (sign with sgn(0) = +1).

    # Arguments
        hidden: widths of the hidden layers (at least one).
        n_examples: n, the size of the training set the bound is about.
        sample_size: T of the sampled layers (the paper's default 100).
        delta: δ of the bound (0.05).
        prior: `"init"` (the initial weights, data-free) or `"zero"`; `use_as_prior` replaces it
            with a trained network's weights.
        seed: seeds the sampled layers' generators (layer k gets `seed + k`); None: global seed.
        objective: `"bound"` (the paper's PBGNet) or `"linear_loss"` (the empirical linear loss
            alone, no KL: the paper's `pbgnet_ll` without weight decay, and how its code
            trains a prior).

    Labels: ±1 (0 is read as −1, so 0/1 labels work); sample weights are not supported.
    """

    def __init__(self, hidden=(10,), n_examples=None, sample_size=100, delta=0.05, prior="init", seed=None, objective="bound", **kwargs):
        super().__init__(**kwargs)
        if objective not in OBJECTIVES:
            raise ValueError(f"PBGNet: objective must be one of {OBJECTIVES}, got {objective!r}.")
        self.objective = objective
        hidden = [hidden] if isinstance(hidden, (int, np.integer)) else list(hidden)
        if not hidden:
            raise ValueError("PBGNet: hidden must name at least one hidden layer width.")
        self.hidden = [_positive_int("every hidden width", h) for h in hidden]
        if n_examples is None:
            raise ValueError("PBGNet: n_examples (the number of training examples, n in the bound) is required.")
        self.n_examples = _positive_int("n_examples", n_examples)
        self.sample_size = _positive_int("sample_size", sample_size)
        if not 0 < float(delta) < 1:
            raise ValueError(f"PBGNet: delta must lie in (0, 1), got {delta}.")
        self.delta = float(delta)
        if prior not in PRIORS:
            raise ValueError(f"PBGNet: prior must be one of {PRIORS}, got {prior!r}.")
        self.prior = prior
        self.seed = seed
        seeded = lambda k: None if seed is None else int(seed) + k  # noqa: E731
        self.pbg_layers = [PBGErfDense(self.hidden[0], prior=prior, name="pbg_erf")]
        for k, width in enumerate(self.hidden[1:] + [1], start=1):
            name = "pbg_output" if k == len(self.hidden) else f"pbg_hidden_{k}"
            self.pbg_layers.append(PBGSampledDense(width, sample_size=self.sample_size, prior=prior, seed=seeded(k), name=name))
        self.log_c = self.add_weight("log_c", (), initializer="zeros")  # t, C = exp(t), t0 = 0
        self._make_trackers()

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def _make_trackers(self):
        # Untracked: running means are not model weights (saved files and `weights` hold the
        # posterior, the prior and t only).
        self._objective_tracker = tf.keras.metrics.Mean(name="loss")
        self._linear_tracker = tf.keras.metrics.Mean(name="linear_loss")
        self._error_tracker = tf.keras.metrics.Mean(name="error")

    def call(self, inputs, training=None):
        x = tf.convert_to_tensor(inputs, tf.float32)
        for layer in self.pbg_layers:
            x = layer(x)
        return x

    def kl(self):
        r"""\(\tfrac12 \sum_k c_k (\lVert W_k - W^0_k\rVert^2 + \lVert b_k - b^0_k\rVert^2)\)."""
        coefficients = kl_coefficients([layer.units for layer in self.pbg_layers])
        return 0.5 * tf.add_n([float(c) * layer.distance() for c, layer in zip(coefficients, self.pbg_layers)])

    @property
    def C(self):
        return tf.exp(self.log_c)

    def bound_of(self, linear_loss_value):
        """The bound for a mean linear loss with the current KL and C."""
        return bound(linear_loss_value, self.kl(), self.n_examples, self.C, self.delta)

    def use_as_prior(self, source: "PBGNet") -> None:
        """Make the posterior means of `source` (a built PBGNet of the same architecture, trained
        on data disjoint from this model's training set) this model's prior means and initial
        weights (the paper's PBGNet_pre). The bound stays valid because the prior does not depend
        on the examples it is evaluated on. The prior is kept in the weights (saved with them)."""
        if not isinstance(source, PBGNet) or not source.built or not self.built:
            raise ValueError("use_as_prior needs two built PBGNets (call them on data first).")
        if source.hidden != self.hidden or source.pbg_layers[0].kernel.shape != self.pbg_layers[0].kernel.shape:
            raise ValueError(
                f"use_as_prior: the prior network's architecture (input {source.pbg_layers[0].kernel.shape[0]}, hidden "
                f"{source.hidden}) differs from this one's (input {self.pbg_layers[0].kernel.shape[0]}, hidden {self.hidden})."
            )
        for mine, theirs in zip(self.pbg_layers, source.pbg_layers):
            for variable in (mine.kernel, mine.kernel_prior):
                variable.assign(theirs.kernel)
            for variable in (mine.bias, mine.bias_prior):
                variable.assign(theirs.bias)

    def set_sample_size(self, sample_size: int) -> None:
        """Change T of every sampled layer (e.g. a larger T for the final estimate)."""
        sample_size = _positive_int("sample_size", sample_size)
        self.sample_size = sample_size
        for layer in self.pbg_layers[1:]:
            layer.sample_size = sample_size
        for attr in ("train_function", "test_function", "predict_function"):
            setattr(self, attr, None)  # T is fixed at trace time

    def train_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError("PBGNet: sample weights are not supported (the bound is about the unweighted mean loss).")
        y = _labels(y)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            losses = linear_loss(y, y_pred)
            objective = self.bound_of(tf.reduce_mean(losses)) if self.objective == "bound" else tf.reduce_mean(losses)
        # C only enters the bound: the linear loss alone leaves it where it is.
        variables = self.trainable_variables if self.objective == "bound" else [v for v in self.trainable_variables if v is not self.log_c]
        self.optimizer.minimize(objective, variables, tape=tape)
        batch = tf.cast(tf.shape(y)[0], tf.float32)
        self._objective_tracker.update_state(objective)
        self._linear_tracker.update_state(tf.reduce_mean(losses), sample_weight=batch)
        self._error_tracker.update_state(_error(y, y_pred))
        kl = self.kl()
        return {
            "loss": self._objective_tracker.result(),
            "linear_loss": self._linear_tracker.result(),
            "error": self._error_tracker.result(),
            "kl": kl,
            "C": self.C,
            "bound": bound(self._linear_tracker.result(), kl, self.n_examples, self.C, self.delta),
        }

    def test_step(self, data):
        x, y, _ = tf.keras.utils.unpack_x_y_sample_weight(data)
        y = _labels(y)
        y_pred = self(x, training=False)
        self._linear_tracker.update_state(linear_loss(y, y_pred))
        self._error_tracker.update_state(_error(y, y_pred))
        return {"linear_loss": self._linear_tracker.result(), "error": self._error_tracker.result()}

    @property
    def metrics(self):
        return [self._objective_tracker, self._linear_tracker, self._error_tracker]

    def get_config(self):
        return {
            "name": self.name,
            "hidden": list(self.hidden),
            "n_examples": self.n_examples,
            "sample_size": self.sample_size,
            "delta": self.delta,
            "prior": self.prior,
            "seed": self.seed,
            "objective": self.objective,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


def evaluate_bound(model: PBGNet, x, y, batch_size: int = 256, sample_size: int | None = None) -> dict:
    """The bound of a trained `PBGNet` on its training set `(x, y)` (`len(x)` must be the model's
    `n_examples`): `{'bound', 'linear_loss', 'error', 'kl', 'C', 'n', 'delta', 'sample_size'}`.

    `linear_loss` (\\(\\hat L\\)) and `error` are of the aggregate F, each estimated with T
    samples per example (`sample_size`: T for this evaluation only, default the model's)."""
    if not isinstance(model, PBGNet):
        raise ValueError(f"evaluate_bound needs a PBGNet, got {type(model).__name__}.")
    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    if len(x) != model.n_examples or len(y) != len(x):
        raise ValueError(
            f"evaluate_bound: the bound is about the n = {model.n_examples} training examples the model was "
            f"built for; got {len(x)} inputs and {len(y)} labels."
        )
    previous = model.sample_size
    if sample_size is not None:
        model.set_sample_size(sample_size)
    try:
        forward = tf.function(lambda inputs: model(inputs, training=False))
        labels = _labels(y).numpy()
        losses, errors = [], []
        for start in range(0, len(x), batch_size):
            out = forward(x[start : start + batch_size])
            losses.append(linear_loss(labels[start : start + batch_size], out).numpy())
            errors.append(_error(labels[start : start + batch_size], out).numpy())
    finally:
        if sample_size is not None:
            model.set_sample_size(previous)
    empirical = float(np.mean(np.concatenate(losses)))
    kl = float(model.kl().numpy())
    C = float(model.C.numpy())
    return {
        "bound": float(bound(empirical, kl, model.n_examples, C, model.delta).numpy()),
        "linear_loss": empirical,
        "error": float(np.mean(np.concatenate(errors))),
        "kl": kl,
        "C": C,
        "n": model.n_examples,
        "delta": model.delta,
        "sample_size": sample_size or previous,
    }


def deploy(model: PBGNet, name: str = "pbgnet_sign_net") -> tf.keras.Model:
    """The mean-weight sign network of a built `PBGNet` as a Keras model (module docstring):
    `Dense(W_1, b_1)` on the input, then per further layer a larq `QuantDense` with `ste_sign`
    inputs and real weights (no kernel quantizer). The output is the real score
    `W_L·sgn(·) + b_L`; the predicted label is its sign (+1 at 0, as `lq.math.sign`)."""
    if not isinstance(model, PBGNet) or not model.built:
        raise ValueError("deploy needs a built PBGNet (call it on data or fit it first).")
    first, *rest = model.pbg_layers
    d = first.kernel.shape[0]
    layers = [tf.keras.Input((d,)), tf.keras.layers.Dense(first.units, name="dense_0")]
    for k, layer in enumerate(rest, start=1):
        layers.append(lq.layers.QuantDense(layer.units, input_quantizer="ste_sign", kernel_quantizer=None, name=f"sign_dense_{k}"))
    net = tf.keras.Sequential(layers, name=name)
    for source, target in zip(model.pbg_layers, net.layers):
        target.set_weights([source.kernel.numpy(), source.bias.numpy()])
    return net


def train(
    x,
    y,
    hidden=(10,),
    epochs: int = 20,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    sample_size: int = 100,
    delta: float = 0.05,
    prior: str = "init",
    seed: int | None = 0,
    verbose: int = 0,
    callbacks=None,
    prior_data=None,
    prior_epochs: int = 20,
):
    """Build a `PBGNet` for `(x, y)` (n = `len(x)`), train it on the bound with Adam, and return
    `(model, history)`. The official setup: Adam, batch 32, lr in {0.1, 0.01, 0.001}, up to 150
    epochs with the learning rate halved after 5 epochs without progress of the bound (add
    `tf.keras.callbacks.ReduceLROnPlateau("bound", 0.5, 5)` to `callbacks` for that).

    `prior="pretrain"` is the paper's PBGNet_pre: a PBGNet of the same architecture first trains
    `prior_epochs` epochs on the linear loss on `prior_data` `(x_prior, y_prior)` — examples that
    must not be in `(x, y)` (the paper's code: half of the training set) — and its weights become
    the prior and the initial weights (`PBGNet.use_as_prior`); the bound is then about `(x, y)`."""
    x = np.asarray(x, np.float32)
    if x.ndim != 2:
        raise ValueError(f"pbgnet.train needs [examples, features] inputs (flatten images first), got shape {x.shape}.")
    if (prior == "pretrain") != (prior_data is not None):
        raise ValueError(
            'pbgnet.train: prior="pretrain" needs prior_data=(x_prior, y_prior), examples disjoint from (x, y); '
            f"other priors take none (got prior={prior!r}, prior_data {'given' if prior_data is not None else 'missing'})."
        )
    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    model = PBGNet(hidden, n_examples=len(x), sample_size=sample_size, delta=delta, prior="init" if prior == "pretrain" else prior, seed=seed)
    if prior == "pretrain":
        x_prior, y_prior = np.asarray(prior_data[0], np.float32), np.asarray(prior_data[1])
        if x_prior.ndim != 2 or x_prior.shape[1] != x.shape[1] or len(y_prior) != len(x_prior):
            raise ValueError(f"pbgnet.train: prior_data must be (x, y) with [examples, {x.shape[1]}] inputs, got {x_prior.shape} and {len(y_prior)} labels.")
        source = PBGNet(hidden, n_examples=len(x_prior), sample_size=sample_size, delta=delta, seed=seed, objective="linear_loss")
        source.compile(tf.keras.optimizers.Adam(learning_rate))
        source.fit(x_prior, y_prior, batch_size=batch_size, epochs=_positive_int("prior_epochs", prior_epochs), verbose=verbose, shuffle=True)
        model(x[:1])
        model.use_as_prior(source)
    model.compile(tf.keras.optimizers.Adam(learning_rate))
    history = model.fit(x, np.asarray(y), batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks, shuffle=True)
    return model, history
