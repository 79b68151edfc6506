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
"""
from __future__ import annotations

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


# One class per definition of tfbin.quantizer_forms (tfbin.frameworks.QUANTIZERS), as the Keras 3 path's.
SelfBinarizingSign, EDESign, LibraSign, BoundedRectifier, DistributionAwareSign = frameworks.quantizer_classes(
    SoftHardQuantizer, register, __name__, only_first_replica=tf.VariableAggregation.ONLY_FIRST_REPLICA
)
