"""Read and write the named sharpness values of a Keras 3 model's tfbin quantizers.

`tfbin.sharpness` for Keras 3, reached as `tfbin.keras3.sharpness`: the same functions with the same errors (the lookups are
`tfbin.quantizer_forms`', shared by both paths); only the walk that finds the quantizers differs
(Keras 3 layers have no `tf.Module.submodules`; `tfbin.keras3.quantizers` walks model layers
and layer attributes).
"""
from __future__ import annotations

from tfbin import quantizer_forms
from tfbin.keras3.hard_form import quantizers

__all__ = ["quantizers", "names", "variables", "get", "set"]


def names(model) -> list[str]:
    """The sharpness names used in `model`, sorted."""
    return quantizer_forms.sharpness_names_in(quantizers(model))


def variables(model, name: str) -> list:
    """All sharpness weights called `name` in `model`; a clear error if there is none."""
    return quantizer_forms.sharpness_variables(quantizers(model), name, model)


def get(model, name: str) -> float:
    """The value of sharpness `name` in `model`; an error if its copies disagree."""
    return quantizer_forms.sharpness_of(quantizers(model), name, model)


def set(model, name: str, value: float) -> None:  # noqa: A001 - mirrors `get`
    """Set every sharpness weight called `name` in `model` to `value`."""
    quantizer_forms.set_sharpness(quantizers(model), name, value, model)
