"""tfbin: train binary neural networks in Keras (larq) and ship them through Larq Compute Engine.

`import tfbin` selects Keras 2 (tf-keras) for `tf.keras` when TensorFlow is not imported yet,
then loads TensorFlow and larq (to register serializable objects) and nothing else heavy;
LCE, TFDS, keras-tuner and matplotlib load when first used.
"""
from tfbin import _quiet
from tfbin._keras2 import ensure_keras2 as _ensure_keras2

with _quiet.tensorflow_import():  # the `tfbin` command's log defaults; a no-op for `import tfbin`
    _ensure_keras2()

from tfbin import auxiliary, blrnet, callbacks, constraints, data, layers, losses, pbgnet, quantizers, recipes, saving, schedules, sharpness  # noqa: E402
from tfbin.auxiliary import TrainingModel, unwrap  # noqa: E402
from tfbin.batchnorm import recalibrate  # noqa: E402
from tfbin.binarize import Binarized, binarize  # noqa: E402
from tfbin.mode import hard  # noqa: E402

training = auxiliary  # its name before 0.2: `tfbin.training.TrainingModel` keeps working

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


def __getattr__(name):
    # The heavier subpackages load on first use: `tfbin.models`, `tfbin.export`, `tfbin.tuning`.
    if name in ("models", "export", "tuning"):
        import importlib

        return importlib.import_module(f"tfbin.{name}")
    raise AttributeError(f"module 'tfbin' has no attribute {name!r}")
