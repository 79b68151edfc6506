"""Soft->hard binary quantizers.

Every tfbin quantizer is a larq `Quantizer` with two forms:

- **soft** (training): differentiable, shaped by named *sharpness* values (non-trainable weights
  that `tfbin.callbacks.SharpeningScheduler` sets on a schedule);
- **hard** (evaluation and export): exactly what the deployed model computes, written with
  `larq.math.sign` (`tfbin.formulas.sign`) or a `tf.where` with scalar constants, so that Larq
  Compute Engine fuses it into binary ops.

The formulas themselves live in `tfbin.formulas`, shared with the Keras 3 path (`tfbin.keras3`);
what each quantizer is (docstring, arguments, soft and hard forms, config) is written once in
`tfbin.quantizer_forms`, also shared with the Keras 3 path, and the public classes are made from
those definitions by `tfbin.frameworks.quantizer_classes`, as the Keras 3 ones are; this module is
the Keras 2 (larq) glue.

Which form runs is decided when the model is traced: soft by default, hard inside
`with tfbin.hard(model):`. All quantizers here have `precision = 1` and work as
`input_quantizer` and/or `kernel_quantizer` of `larq.layers.QuantConv2D` / `QuantDense` by
object or by alias (`"ede_sign"`, ...).

BLRNet's quantizers (`RelaxedSign`, `WeightMode`) are here too: the layers of `tfbin.blrnet`
build them themselves, so they are not among the recipe quantizers of `__all__`.
"""
from __future__ import annotations

import contextlib

from tfbin._keras2 import ensure_keras2

ensure_keras2()  # imported in a Keras 3 process (no `import tfbin` first): say what to do before larq fails

import larq as lq  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfbin import frameworks  # noqa: E402
from tfbin._registry import serializable  # noqa: E402
from tfbin.formulas import dab_levels, dab_split  # noqa: E402,F401  (public here since 0.1)
from tfbin.quantizer_forms import SoftHardForms  # noqa: E402

__all__ = [
    "SoftHardQuantizer",
    "SelfBinarizingSign",
    "EDESign",
    "LibraSign",
    "BoundedRectifier",
    "DistributionAwareSign",
]


def register(alias):
    """Register a quantizer class under `tfbin>ClassName`, `ClassName` and `alias` (larq's string identifiers)."""

    def decorator(cls):
        cls = serializable(cls.__name__, alias)(cls)
        cls.alias = alias
        return cls

    return decorator


class SoftHardQuantizer(SoftHardForms, lq.quantizers.Quantizer):
    """Public base class of the Keras 2 (larq) quantizers with a soft and a hard form.

    `tfbin.quantizer_forms.SoftHardForms` as a larq `Quantizer`: subclasses implement `soft(x)`
    and `hard(x)` and list their sharpness roles in `sharpness_defaults`; `self.sharpness(role)`
    is the weight itself (a variable, which may be `.assign`ed), `self.sharpness_value(role)`
    its value as a tensor. `tfbin.export` verifies that `hard(x)` fused.

    ```python
    class ClippedTanhSign(tfbin.quantizers.SoftHardQuantizer):
        sharpness_defaults = {"v": 1.0}

        def soft(self, x):
            return tf.tanh(self.sharpness("v") * x)

        def hard(self, x):
            return lq.math.sign(x)
    ```

    # Arguments
        sharpness_names: `{role: weight name}` for the roles to rename.
    """

    def constant_initializer(self, value):
        return tf.keras.initializers.Constant(value)

    def sharpness(self, role: str) -> tf.Variable:
        """The sharpness weight that plays `role` (e.g. `"v"`, `"t"`) in this quantizer."""
        return self._sharpness_weights[role]


@contextlib.contextmanager
def hard_forms(quantizers):
    """Set the trace-time flag of `quantizers` (only; traced functions are left alone):
    inside the block they compute their hard forms (`tfbin.hard` does this for a whole model)."""
    previous = [q.hard_mode for q in quantizers]
    for q in quantizers:
        q.hard_mode = True
    try:
        yield
    finally:
        for q, was_hard in zip(quantizers, previous):
            q.hard_mode = was_hard


# One class per definition of tfbin.quantizer_forms (tfbin.frameworks.QUANTIZERS), as the Keras 3 path's.
SelfBinarizingSign, EDESign, LibraSign, BoundedRectifier, DistributionAwareSign = frameworks.quantizer_classes(
    SoftHardQuantizer, register, __name__, only_first_replica=tf.VariableAggregation.ONLY_FIRST_REPLICA
)


# --- BLRNet's quantizers (Peters & Welling, arXiv:1809.03368; the method: tfbin.blrnet) --------

# τ below this is treated as this (a temperature of 0 would divide by zero).
_MIN_TEMPERATURE = 1e-6


def check_logit_scale(scale) -> float:
    """BLRNet's `logit_scale` k as a float; a ValueError unless k > 0."""
    if not float(scale) > 0:
        raise ValueError(f"logit_scale must be > 0, got {scale!r}.")
    return float(scale)


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


@register("relaxed_sign")
class RelaxedSign(SoftHardQuantizer):
    r"""BLRNet's binary activation: a relaxed draw of \(\operatorname{sign}(x)\) with temperature τ.

    \[
    q_\text{soft}(x) = \tanh(x / \tau), \qquad q_\text{hard}(x) = \operatorname{sign}(x)
    \]

    For `x` a reparameterized Gaussian sample \(\hat\mu + \hat\sigma\epsilon\), `sign(x)` is a draw
    of \(\operatorname{Binary}(2\Phi(\hat\mu/\hat\sigma) - 1)\) and the soft form is its
    binary-Concrete-style relaxation (`tfbin.blrnet`'s docstring), which tends to it as τ → 0.
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


@register("blr_weight")
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
        self.logit_scale = check_logit_scale(logit_scale)

    def soft(self, x):
        return tf.tanh(self.logit_scale * x)

    def hard(self, x):
        return lq.math.sign(x)

    def get_config(self):
        return {**super().get_config(), "logit_scale": self.logit_scale}
