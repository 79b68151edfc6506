"""tfbin: train binary neural networks in Keras (larq) and ship them through Larq Compute Engine.

`import tfbin` selects Keras 2 (tf-keras) for `tf.keras` when TensorFlow is not imported yet,
then loads TensorFlow and larq (to register serializable objects) and nothing else heavy;
LCE, TFDS, keras-tuner and matplotlib load when first used.

Two imports load nothing of Keras 2: `import tfbin.keras3` (the Keras 3 path, `import keras`;
it needs neither larq nor tf-keras) and `import tfbin` in a process whose TensorFlow was imported
with Keras 3. There the first use of the Keras 2 API raises an ImportError that says what to do.
"""
import importlib
import sys

from tfbin import _keras2, _quiet

__version__ = "0.1.0"
__all__ = [
    "Binarized",
    "TrainingModel",
    "auxiliary",
    "binarize",
    "blrnet",
    "callbacks",
    "constraints",
    "data",
    "hard",
    "layers",
    "losses",
    "pbgnet",
    "quantizers",
    "recalibrate",
    "recipes",
    "saving",
    "schedules",
    "sharpness",
    "training",
    "unwrap",
    "__version__",
]
_SUBPACKAGES = ("models", "export", "tuning", "keras3")  # loaded on first use


def _keras3_process() -> bool:
    """Whether this import serves Keras 3: TensorFlow came with Keras 3, or `import tfbin.keras3`
    is what imports this package (the import system holds that module's lock meanwhile; there is
    no public way to ask, and where the lock cannot be seen `import tfbin.keras3` still works,
    with `tf.keras` left as Keras 2)."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and getattr(tf, "_tf_uses_legacy_keras", True) is False:
        return True
    return "tfbin.keras3" in getattr(getattr(importlib, "_bootstrap", None), "_module_locks", {})


def _load_keras2_api():
    """Import the Keras 2 API into this package, registering every serializable class (larq's
    string aliases `"ede_sign"`, ... included); an ImportError says what to do under Keras 3."""
    with _quiet.tensorflow_import():  # the `tfbin` command's log defaults; a no-op for `import tfbin`
        _keras2.ensure_keras2()
    from tfbin import auxiliary, blrnet, callbacks, constraints, data, layers, losses, pbgnet, quantizers, recipes, saving, schedules, sharpness  # noqa: F401
    from tfbin.auxiliary import TrainingModel, unwrap  # noqa: F401
    from tfbin.batchnorm import recalibrate  # noqa: F401
    from tfbin.binarize import Binarized, binarize  # noqa: F401
    from tfbin.mode import hard  # noqa: F401

    training = auxiliary  # the module's first name (0.1.0 development): `tfbin.training.TrainingModel` keeps working
    globals().update({name: value for name, value in locals().items() if name in __all__})


if not _keras3_process():
    _load_keras2_api()


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"tfbin.{name}")
    if name in __all__:  # not loaded yet: a Keras 3 process
        _load_keras2_api()
        return globals()[name]
    raise AttributeError(f"module 'tfbin' has no attribute {name!r}")
