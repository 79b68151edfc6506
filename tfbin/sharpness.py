"""Read and write the named sharpness values of a model's tfbin quantizers.

A sharpness value (SBN's `v`, EDE's `t` and `k`, ...) is a non-trainable scalar weight that a
quantizer creates in `build()` under a name; every quantizer of a model that uses the same name
holds its own copy, and these functions read or set all copies at once.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

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
    return sorted({name for q in quantizers(model) for name in q.sharpness_weights})


def variables(model: tf.Module, name: str) -> list[tf.Variable]:
    """All sharpness weights called `name` in `model`; a clear error if there is none."""
    unbuilt = [q.name for q in quantizers(model) if not q.built]
    found = [w for q in quantizers(model) for n, w in q.sharpness_weights.items() if n == name]
    if not found:
        known = names(model)
        hint = f" Quantizers not built yet (call the model once first): {unbuilt}." if unbuilt else ""
        raise KeyError(
            f"No sharpness value named {name!r} in {getattr(model, 'name', model)!r}; "
            f"it has {known or 'none'}.{hint}"
        )
    return found


def get(model: tf.Module, name: str) -> float:
    """The value of sharpness `name` in `model`; an error if its copies disagree."""
    values = {float(np.float32(v.numpy())) for v in variables(model, name)}
    if len(values) != 1:
        raise ValueError(f"Sharpness {name!r} has different values in {model.name!r}: {sorted(values)}.")
    return values.pop()


def set(model: tf.Module, name: str, value: float) -> None:  # noqa: A001 - mirrors `get`
    """Set every sharpness weight called `name` in `model` to `value`."""
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"Sharpness {name!r} must be finite, got {value}.")
    for variable in variables(model, name):
        variable.assign(value)
