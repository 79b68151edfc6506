"""Switch a Keras 3 model's tfbin quantizers between their soft (training) and hard (deployed) forms."""
from __future__ import annotations

import contextlib

import keras

from tfbin.keras3.binary_quantizers import SoftHardQuantizer

__all__ = ["layers", "quantizers", "hard"]


def _walk(layer, seen):
    """`layer` and every layer inside it (model layers and layer attributes), each once."""
    if id(layer) in seen:
        return
    seen.add(id(layer))
    yield layer
    children = list(getattr(layer, "layers", None) or [])
    children += [value for value in vars(layer).values() if isinstance(value, keras.layers.Layer)]
    for child in children:
        yield from _walk(child, seen)


def layers(model) -> list:
    """`model` and every layer inside it (nested models, layer attributes such as a layer's
    quantizers), each once: the Keras 3 stand-in for `tf.Module.submodules`."""
    return list(_walk(model, set()))


def quantizers(model) -> list[SoftHardQuantizer]:
    """Every tfbin soft->hard quantizer inside `model` (a Keras 3 model, layer or quantizer)."""
    return [layer for layer in layers(model) if isinstance(layer, SoftHardQuantizer)]


@contextlib.contextmanager
def hard(model):
    """Inside this block every tfbin quantizer of the Keras 3 `model` computes its hard form.

    ```python
    with tfbin.keras3.hard(model):
        hard_loss, hard_accuracy = model.evaluate(test_data)
    ```

    It flips a trace-time flag and drops the model's traced train/test/predict functions on
    entry and on exit; it never copies the model or changes a weight. Blocks may nest. A model
    whose quantizers are all `SteSign` is already in its deployed form and passes through.
    """
    found = quantizers(model)
    previous = [q.hard_mode for q in found]
    for q in found:
        q.hard_mode = True
    _reset_compiled_functions(model)
    try:
        yield model
    finally:
        for q, was_hard in zip(found, previous):
            q.hard_mode = was_hard
        _reset_compiled_functions(model)


def _reset_compiled_functions(model):
    # Keras caches traced train/test/predict functions; the form is chosen at trace time.
    for attr in ("train_function", "test_function", "predict_function"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)
