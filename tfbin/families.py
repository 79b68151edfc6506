"""The registered layer families (`tfbin.layer_family.LayerFamily`): a layer's family, and the
family of each recipe `layer_type`.

`tfbin.binarize`, `tfbin.introspect`, `tfbin.export` and its parity check ask a layer's family
(`family_of`) what it is; nothing else tests a layer's class. Built in: ABC-Net's (`"abc"`,
`tfbin.layers`) and BLRNet's (`"blrnet"`, `tfbin.blrnet_layers`), registered below, and larq's
quantized layers (`tfbin.larq_layers`), the `DEFAULT` family of every layer that no registered
family owns (float layers included: it says they are not binarized). A new family is one module
and one call:

```python
tfbin.families.register(ScaledSignFamily())
recipe = tfbin.recipes.Recipe("scaled_sign", None, None, layer_type="scaled_sign")
```
"""
from __future__ import annotations

from tfbin import blrnet_layers, larq_layers, layers
from tfbin.layer_family import LayerFamily

__all__ = ["DEFAULT", "family_of", "get", "names", "register", "unregister"]

DEFAULT = larq_layers.LARQ
_REGISTERED: dict[str, LayerFamily] = {}


def register(family: LayerFamily) -> LayerFamily:
    """Add `family` under `family.name` (a recipe's `layer_type`); returns it. A family that owns
    a layer another family owns too (a subclass of its layer) wins when registered later."""
    if not isinstance(family, LayerFamily):
        raise TypeError(f"register takes a LayerFamily instance, got {family!r}.")
    if not family.name or family.name == DEFAULT.name:
        raise ValueError(f"A layer family needs a name other than {DEFAULT.name!r}, got {family.name!r}.")
    if _REGISTERED.get(family.name, family) is not family:
        raise ValueError(f"Another layer family is registered as {family.name!r}; unregister it first.")
    _REGISTERED.pop(family.name, None)  # registered again: it becomes the latest
    _REGISTERED[family.name] = family
    return family


def unregister(name: str) -> LayerFamily:
    """Remove the family registered as `name`; returns it."""
    get(name)
    return _REGISTERED.pop(name)


def names() -> list[str]:
    """The registered families' names (the recipe `layer_type`s), sorted."""
    return sorted(_REGISTERED)


def get(name: str) -> LayerFamily:
    """The family registered as `name`; a ValueError naming the others if there is none."""
    if name not in _REGISTERED:
        raise ValueError(f"Unknown layer type {name!r}; the layer types are {names()}.")
    return _REGISTERED[name]


def family_of(layer) -> LayerFamily:
    """The family of `layer`: the latest registered one that owns it, else `DEFAULT`."""
    for family in reversed(_REGISTERED.values()):
        if family.owns(layer):
            return family
    return DEFAULT


register(layers.ABC)
register(blrnet_layers.BLRNET)
