"""Loading Keras model files that someone else wrote, without running code they contain.

A Keras `Lambda` layer stores its function as Python bytecode (`function_type: "lambda"`), and
loading the model runs it. Keras's own `safe_mode` refuses such a file only in the `.keras`
format; `.h5` files and SavedModel directories load it silently. `load_model` reads the
architecture first (the JSON in the `.h5` file, `keras_metadata.pb` in a SavedModel) and refuses
a file that holds one, unless the caller trusts the file (`safe_mode=False`, `tfbin export --unsafe`).
"""
from __future__ import annotations

import json
import os

import tensorflow as tf

__all__ = ["UnsafeModelError", "load_model", "code_holding_layers"]

# What Keras deserializes by running stored bytecode: the Lambda layer, and any object whose
# config says `function_type: "lambda"` (tf-keras's `func_dump`) or names `__lambda__` (.keras).
_CODE_CLASSES = ("Lambda", "__lambda__")


class UnsafeModelError(ValueError):
    """The model file holds code that loading it would run; the message names the layers."""


def _walk(config, where, found):
    if isinstance(config, dict):
        name = config.get("config", {}).get("name") if isinstance(config.get("config"), dict) else None
        if config.get("class_name") in _CODE_CLASSES or config.get("function_type") == "lambda":
            found.append(name or where or config.get("class_name", "?"))
        for key, value in config.items():
            _walk(value, name or where, found)
    elif isinstance(config, (list, tuple)):
        for value in config:
            _walk(value, where, found)


def _h5_configs(path: str) -> list:
    import h5py

    with h5py.File(path, "r") as f:
        config = f.attrs.get("model_config")
    if config is None:
        return []  # a weights-only file: Keras refuses it as a model anyway
    return [json.loads(config.decode("utf-8") if isinstance(config, bytes) else config)]


def _saved_model_configs(path: str) -> list:
    from tf_keras.protobuf import saved_metadata_pb2

    metadata_path = os.path.join(path, "keras_metadata.pb")
    if not os.path.exists(metadata_path):
        return []  # not written by Keras: no layer configs to deserialize
    metadata = saved_metadata_pb2.SavedMetadata()
    with open(metadata_path, "rb") as f:
        metadata.ParseFromString(f.read())
    return [json.loads(node.metadata) for node in metadata.nodes if node.metadata]


def code_holding_layers(path: str | os.PathLike) -> list[str]:
    """Names of the layers in the model file at `path` whose loading would run stored code
    (a `Lambda` and the like); `[]` for a file that holds none. Reads the architecture only."""
    path = os.fspath(path)
    if os.path.isdir(path):
        configs = _saved_model_configs(path)
    elif path.endswith(".keras"):
        import zipfile

        with zipfile.ZipFile(path) as archive:
            configs = [json.loads(archive.read("config.json"))]
    else:
        configs = _h5_configs(path)
    found = []
    for config in configs:
        _walk(config, None, found)
    return sorted(set(found))


def load_model(path: str | os.PathLike, *, safe_mode: bool = True, compile: bool = False) -> tf.keras.Model:
    """`tf.keras.models.load_model(path)` for `.keras`, `.h5` and SavedModel, refusing a file
    that would run code on load unless `safe_mode=False`.

    # Arguments
        path: a `.keras` or `.h5` file or a SavedModel directory.
        safe_mode: refuse files with `Lambda` layers (or other stored bytecode); pass `False`
            only for files you trust, as for Keras's own `safe_mode`.
        compile: passed to Keras (tfbin's jobs compile the model themselves).

    # Raises
        UnsafeModelError: the file holds code and `safe_mode` is on.
    """
    path = os.fspath(path)
    if safe_mode:
        unsafe = code_holding_layers(path)
        if unsafe:
            raise UnsafeModelError(
                f"{path} holds layers whose loading runs stored Python code ({', '.join(unsafe)}: Lambda); "
                "tfbin did not load it. If you trust the file, load it with safe_mode=False (CLI: --unsafe)."
            )
    return tf.keras.models.load_model(path, compile=compile, safe_mode=safe_mode)
