"""Read and write the named sharpness values of a model's tfbin quantizers.

A sharpness value (SBN's `v`, EDE's `t` and `k`, ...) is a non-trainable scalar weight that a
quantizer creates in `build()` under a name; every quantizer of a model that uses the same name
holds its own copy, and these functions read or set all copies at once. The lookups themselves are
`tfbin.quantizer_forms`' (shared with `tfbin.keras3.sharpness`); this module finds the quantizers.
"""
from __future__ import annotations

import tensorflow as tf

from tfbin import quantizer_forms
from tfbin.quantizers import SoftHardQuantizer

__all__ = ["quantizers", "names", "variables", "get", "set"]


def quantizers(model: tf.Module) -> list[SoftHardQuantizer]:
    """Every tfbin quantizer inside `model` (nested layers and models included)."""
    found = [m for m in model.submodules if isinstance(m, SoftHardQuantizer)]
    if isinstance(model, SoftHardQuantizer):
        found.insert(0, model)
    return found


def names(model: tf.Module) -> list[str]:
    """The sharpness names used in `model`, sorted."""
    return quantizer_forms.sharpness_names_in(quantizers(model))


def variables(model: tf.Module, name: str) -> list[tf.Variable]:
    """All sharpness weights called `name` in `model`; a clear error if there is none."""
    return quantizer_forms.sharpness_variables(quantizers(model), name, model)


def get(model: tf.Module, name: str) -> float:
    """The value of sharpness `name` in `model`; an error if its copies disagree."""
    return quantizer_forms.sharpness_of(quantizers(model), name, model)


def set(model: tf.Module, name: str, value: float) -> None:  # noqa: A001 - mirrors `get`
    """Set every sharpness weight called `name` in `model` to `value`."""
    quantizer_forms.set_sharpness(quantizers(model), name, value, model)
