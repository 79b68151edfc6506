"""The training regimen `tfbin train`, `tfbin tune` and the benchmarks share: Adam, its learning
rate over the run, and the BatchNorm recalibration a trained binary net gets before it ships.

A recipe says how a model is binarized, not how it is optimized. What a search chose for the
optimizer travels beside the recipe's own parameters, in `recipe.params["training"]`
(`{"lr": .., "lr_decay": ..}`), and `optimizer_settings` reads it back.

```python
lr, decay = tfbin.regimen.optimizer_settings(recipe)            # a searched recipe's, else 1e-3, constant
model.compile(tfbin.regimen.adam(lr, decay, total_steps=epochs * steps_per_epoch), loss, metrics)
model.fit(train_batches, epochs=epochs)
report = tfbin.regimen.recalibrate_if_it_helps(model, train_batches)   # report["applied"]
```
"""
from __future__ import annotations

import tensorflow as tf

from tfbin.batchnorm import batch_norms, recalibrate

__all__ = [
    "LR", "LR_DECAYS", "learning_rate", "adam", "optimizer_settings",
    "RECALIBRATION_BATCHES", "CHECK_IMAGES", "recalibrate_if_it_helps",
]

# Adam's own default rate (Kingma & Ba, ICLR 2015).
LR = 1e-3

# How Adam's learning rate moves over a run: held, or cosine-decayed to 0 (Loshchilov & Hutter,
# "SGDR", ICLR 2017, without restarts), as IR-Net's code trains.
LR_DECAYS = ("constant", "cosine")

# A binary net's moving BatchNorm statistics lag its flipping signs and were gathered largely on
# soft activations; these many batches re-estimate them in the hard form.
RECALIBRATION_BATCHES = 100
# Training images (never the scored ones) on which the recalibrated statistics must not lose
# hard accuracy to be kept.
CHECK_IMAGES = 2000
_CHECK_BATCH = 512


def learning_rate(lr: float, decay: str = "constant", total_steps: int | None = None):
    """Adam's learning rate for a run of `total_steps` optimizer steps: `lr` itself (`"constant"`),
    or `tf.keras.optimizers.schedules.CosineDecay(lr, total_steps)` (`"cosine"`: to 0 at the end).
    A searched recipe keeps both in `params["training"]` (`{"lr": .., "lr_decay": ..}`)."""
    if decay not in LR_DECAYS:
        raise ValueError(f"Unknown learning-rate decay {decay!r}; choose one of {list(LR_DECAYS)}.")
    if not lr > 0:
        raise ValueError(f"The learning rate must be > 0, got {lr}.")
    if decay == "constant":
        return float(lr)
    if total_steps is None or int(total_steps) < 1:
        raise ValueError(
            f"A cosine decay needs the run's number of steps (epochs x batches per epoch), got {total_steps!r}: "
            "give the training data a known length (tf.data cardinality, e.g. no repeat())."
        )
    return tf.keras.optimizers.schedules.CosineDecay(float(lr), int(total_steps))


def adam(lr: float = LR, decay: str = "constant", total_steps: int | None = None) -> tf.keras.optimizers.Adam:
    """The optimizer tfbin trains with: Adam at `learning_rate(lr, decay, total_steps)`."""
    return tf.keras.optimizers.Adam(learning_rate(lr, decay, total_steps))


def optimizer_settings(recipe, lr: float | None = None, lr_decay: str | None = None) -> tuple[float, str]:
    """`(lr, lr_decay)` for a run of `recipe`: each as given, else what a search stored in
    `recipe.params["training"]`, else `LR` held constant."""
    searched = recipe.params.get("training", {})
    if lr is None:
        lr = float(searched.get("lr", LR))
    if lr_decay is None:
        lr_decay = str(searched.get("lr_decay", "constant"))
    if lr_decay not in LR_DECAYS:
        raise ValueError(f"Unknown lr_decay {lr_decay!r}; choose one of {list(LR_DECAYS)}.")
    return lr, lr_decay


def recalibrate_if_it_helps(model: tf.keras.Model, batches: tf.data.Dataset, check: tf.data.Dataset | None = None) -> dict:
    """`tfbin.recalibrate` `model`'s BatchNorm statistics in the hard form on the first
    `RECALIBRATION_BATCHES` batches of `batches`, kept only if the hard accuracy on `CHECK_IMAGES`
    training images does not drop: the model `tfbin train` ships and `tfbin tune` scores.

    # Arguments
        model: the trained model (a `TrainingModel` is unwrapped).
        batches: batched, labelled training data `(x, y)`.
        check: labelled batches of the training images that decide; default the first
            `CHECK_IMAGES` images of `batches`. Never the scored images: it would choose on them.

    # Returns
        `tfbin.recalibrate`'s report (`"applied"`: whether the new statistics were kept), or
        `{"applied": False, "reason": "no BatchNormalization"}` for a model without any.
    """
    if not batch_norms(model):
        return {"applied": False, "reason": "no BatchNormalization"}
    if check is None:
        check = batches.unbatch().take(CHECK_IMAGES).batch(_CHECK_BATCH)
    return recalibrate(model, batches, steps=RECALIBRATION_BATCHES, check=check)
