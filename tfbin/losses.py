"""Auxiliary training losses that live inside the model (`model.add_loss`)."""
from __future__ import annotations

import tensorflow as tf

from tfbin.quantizers import BoundedRectifier

__all__ = ["SlopeGrowth"]


@tf.keras.utils.register_keras_serializable(package="tfbin")
class SlopeGrowth:
    r"""ABR's "weight growing" term on the slopes of every `BoundedRectifier` of a model.

    \[
    \mathcal L_\text{grow} = \lambda \cdot \operatorname{mean}_{\text{all slopes}} \frac{1}{a}
    \]

    The paper (Wu, Lin, Tang, arXiv:1511.06201) encourages binary units "by a weight growing
    constraint over these slope parameters (opposite to weight decay)"; its exact form was not
    available. `λ·mean(1/a)` is chosen because, unlike `−λ·Σa²` (literally the opposite of weight
    decay), it is bounded below by 0 (the total loss stays interpretable), its push
    `∂/∂a = −λ/(n·a²)` is strongest for shallow slopes and fades as a unit approaches a step
    (so growth does not run away exponentially), and it does not depend on the number of units.

    ```python
    tfbin.losses.SlopeGrowth(1e-3).attach(model)   # then model.fit as usual
    ```

    # Arguments
        weight: λ (≥ 0).
    """

    def __init__(self, weight: float = 1e-3):
        weight = float(weight)
        if not weight >= 0:
            raise ValueError(f"SlopeGrowth weight must be >= 0, got {weight}.")
        self.weight = weight

    def slopes(self, model: tf.keras.Model) -> list[tf.Variable]:
        return [m.slope for m in model.submodules if isinstance(m, BoundedRectifier) and m.built]

    def __call__(self, model: tf.keras.Model) -> tf.Tensor:
        slopes = self.slopes(model)
        if not slopes:
            raise ValueError(
                f"SlopeGrowth found no built BoundedRectifier in {model.name!r}; use the abr recipe "
                "(or BoundedRectifier input quantizers) and build the model first."
            )
        inverse = tf.concat([tf.reshape(1.0 / s, [-1]) for s in slopes], axis=0)
        return self.weight * tf.reduce_mean(inverse)

    def attach(self, model: tf.keras.Model) -> tf.keras.Model:
        """Add the term to `model`'s losses (it then shows in `fit`'s total loss)."""
        self(model)  # fail now, not at the first step, if there is nothing to grow
        model.add_loss(lambda: self(model))
        return model

    def get_config(self) -> dict:
        return {"weight": self.weight}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
