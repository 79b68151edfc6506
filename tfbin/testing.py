"""Helpers for tests and benchmarks of binarized models."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfbin.auxiliary import unwrap
from tfbin.export import flatbuffer as flatbuffer_lib


def randomize_batch_norm(model: tf.keras.Model, seed: int = 0) -> None:
    """Give every BatchNormalization layer non-trivial statistics and affine parameters.

    A freshly built model has BN at identity (γ=1, β=0, μ=0, σ²=1), which hides errors in the
    thresholds and multipliers LCE folds BN into; these values exercise them.
    """
    model = unwrap(model)  # a training model's BNs are those of the model it trains
    rng = np.random.default_rng(seed)
    draw = {
        "gamma": lambda shape: rng.uniform(0.5, 1.5, shape),
        "beta": lambda shape: rng.normal(0, 0.3, shape),
        "moving_mean": lambda shape: rng.normal(0, 0.3, shape),
        "moving_variance": lambda shape: rng.uniform(0.5, 2, shape),
    }
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            for weight in layer.weights:  # scale=False / center=False layers lack gamma / beta
                weight.assign(draw[weight.name.split("/")[-1].split(":")[0]](weight.shape))


def tflite_without_names(flatbuffer: bytes) -> bytes:
    """A TFLite flatbuffer with tensor, subgraph and signature names removed (see
    `tfbin.export.flatbuffer.without_names`): compare exports with their names stripped."""
    return flatbuffer_lib.without_names(flatbuffer)
