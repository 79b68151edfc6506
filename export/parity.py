"""Keras-vs-TFLite parity that tells threshold ties from real mismatches, for tfbin/larq models.

A binary net's output depends on the sign of every binarized layer's input; a pre-sign value
within a few float32 rounding units of its threshold can take a different sign in Keras and in
TFLite, and such a sample says nothing about the exporter. The rule — per sample the **margin**,
the smallest distance of any binarized layer's pre-sign input to its threshold in units of
float32 rounding (`eps32 · max|x|` of that layer's values and of the float sum a clip in
front of it hides: `tfbin.export.ties.rounding_sources`); *tie-free* above `TIE_ULPS`; an
**unexplained mismatch** is a tie-free sample on which Keras and TFLite disagree — is
`tfbin.export.ties`', shared with the Keras 3 path (`tfbin.keras3.verify`), and its `parity`
and `TIE_ULPS` are this module's too. Here: which layers of a Keras 2 model have sign inputs and
at which thresholds (`margins`).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfbin.families import family_of
from tfbin.introspect import binarized_layers, binary_activation_layers
from tfbin.layer_family import RewriteError
from tfbin.export.ties import TIE_ULPS, parity, probe_margins, rounding_sources

__all__ = ["TIE_ULPS", "margins", "parity"]


def margins(model: tf.keras.Model, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Per sample: min over binarized layers (and binary-activation layers with float weights,
    whose input signs decide their output just the same) and their input values of
    `|x − θ| / (eps32 · m)` (`m`: the largest magnitude of those values and of their rounding
    sources, `tfbin.export.ties.rounding_sources`; θ: the sign's threshold as the layer's family gives it —
    0 except for {0,1} rectifiers; the nearest of an ABC-Net layer's N thresholds `0.5 − v_n`),
    computed with the model in its hard form (the caller's responsibility)."""
    layers, thresholds = [], []
    for layer in binarized_layers(model) + binary_activation_layers(model):
        try:
            thresholds.append(family_of(layer).input_thresholds(layer))
        except RewriteError:
            continue  # no binary op for it: Keras' own ops run it in the converted model too
        layers.append(layer)
    if not layers:
        return np.full(len(x), np.inf)
    sources = [rounding_sources(layer.input) for layer in layers]
    probe = tf.keras.Model(model.inputs, [t for layer, extra in zip(layers, sources) for t in (layer.input, *extra)])
    return probe_margins(probe, thresholds, x, batch_size, [len(extra) for extra in sources])
