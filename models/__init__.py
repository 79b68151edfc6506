"""Model architectures with any tfbin recipe: every larq-zoo model and the papers' small nets.

```python
binarized = tfbin.models.build("quicknet_small", recipe="irnet", epochs=10,
                               input_shape=(64, 64, 3), num_classes=10)
tfbin.models.summary(binarized.model)
```
"""
from __future__ import annotations

import inspect

from typing import Callable

import larq as lq
import tensorflow as tf

from tfbin.binarize import Binarized, binarize
from tfbin.export.rewrite import lce_runs_as
from tfbin.introspect import is_binarized
from tfbin.models import small
from tfbin.models.small import HardTanh, ZeroPadShortcut
from tfbin.models.zoo import ZOO, build_zoo
from tfbin.auxiliary import unwrap

__all__ = ["available", "build", "default_input_shape", "summary", "HardTanh", "ZeroPadShortcut"]

SMALL: dict[str, Callable[..., tf.keras.Model]] = {
    "fmnist_small": small.fmnist_small,
    "bnn_mlp": small.bnn_mlp,
    "lenet_bnn": small.lenet_bnn,
    "vgg_small": small.vgg_small,
    "resnet20": small.resnet20,
}


def available() -> list[str]:
    """Names of all buildable models (larq-zoo and small architectures)."""
    return sorted([*ZOO, *SMALL])


def build(
    name: str,
    recipe="irnet",
    *,
    input_shape=None,
    num_classes: int = 10,
    weights=None,
    epochs=None,
    insert_batch_norm="auto",
    **recipe_overrides,
) -> Binarized:
    """Build model `name` with the recipe's quantizers in every binarized layer.

    # Arguments
        name: one of `available()`.
        recipe: a recipe name, config or `tfbin.recipes.Recipe` (default `irnet`).
        input_shape: `(H, W, C)`; defaults to the architecture's own (28×28×1 for the 28-pixel
            nets, 32×32×3 for `vgg_small`/`resnet20`, 224×224×3 for the zoo).
        num_classes: classifier width.
        weights: zoo models only: None (random, the default: works offline), a local weights
            file, or "imagenet" (downloads; fails offline with a clear error).
        epochs: length of the recipe's schedules (needed by recipes that sharpen).
        insert_batch_norm: `tfbin.binarize`'s: `"auto"` (the small nets come out as their papers
            wrote them, with no BatchNormalization added), `"always"` (one directly in front of
            every binarized layer that has none there) or `"never"`.
        **recipe_overrides: parameters of a named recipe (e.g. `t_min=0.01`).
    """
    if name in SMALL:
        if weights is not None:
            raise ValueError(f"{name} has no pretrained weights; use weights=None.")
        kwargs = {"num_classes": num_classes}
        if input_shape is not None:
            kwargs["input_shape"] = tuple(input_shape)
        model = SMALL[name](**kwargs)
    elif name in ZOO:
        model = build_zoo(name, input_shape=input_shape, num_classes=num_classes, weights=weights)
    else:
        raise ValueError(f"Unknown model {name!r}; the models are {available()}.")
    return binarize(model, recipe, epochs=epochs, insert_batch_norm=insert_batch_norm, **recipe_overrides)


def default_input_shape(name: str) -> tuple:
    """The `(H, W, C)` model `name` is built for when no `input_shape` is given."""
    if name in SMALL:
        # The builder's own default, read without building a model.
        return tuple(inspect.signature(SMALL[name]).parameters["input_shape"].default)
    if name in ZOO:
        return (224, 224, 3)
    raise ValueError(f"Unknown model {name!r}; the models are {available()}.")


def summary(model: tf.keras.Model, print_fn=print) -> dict:
    """`lq.models.summary` plus, per layer, whether LCE will run it as a binary op.

    Returns the figures as a dict: parameter count, model size in bytes (larq's bit count of
    each weight's precision), binarized MAC ratio, and per-layer rows.
    """
    model = unwrap(model)
    profile = lq.models.ModelProfile(model)
    if print_fn is not None:
        lq.models.summary(model, print_fn=print_fn)
    rows = []
    for layer in model.layers:
        runs_as = lce_runs_as(layer)
        if runs_as:
            rows.append({"layer": layer.name, "type": type(layer).__name__, "binarized": is_binarized(layer), "lce": runs_as})
    total_macs = profile.op_count("mac") or 0
    result = {
        "name": model.name,
        "params": profile.weight_count(),
        "model_size_bytes": profile.memory / 8,
        "float32_size_bytes": profile.fp_equivalent_memory / 8,
        "binarized_mac_ratio": (profile.op_count("mac", 1) or 0) / max(1, total_macs),
        "macs": total_macs,
        "binarized_layers": sum(r["binarized"] for r in rows),
        "lce_binary_layers": sum(r["lce"].startswith("LceBconv2d") for r in rows),
        "layers": rows,
    }
    if print_fn is not None:
        width = max([len(r["layer"]) for r in rows] + [5])
        print_fn(f"{'layer':<{width}}  binarized  LCE runs it as")
        for r in rows:
            print_fn(f"{r['layer']:<{width}}  {'yes' if r['binarized'] else 'no':<9}  {r['lce']}")
        print_fn(
            f"{result['lce_binary_layers']} of {result['binarized_layers']} binarized layers run as LCE binary ops."
        )
    return result
