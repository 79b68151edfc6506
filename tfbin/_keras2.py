"""Make sure `tf.keras` is Keras 2 (tf-keras) before larq is imported.

larq 0.14, larq-zoo 2.4 and LCE 0.16 are Keras-2 code. On TensorFlow >= 2.16, `tf.keras` is
Keras 3 unless `TF_USE_LEGACY_KERAS=1` is set before TensorFlow is imported: TensorFlow decides
at import time where `tensorflow.keras` points, so setting the variable afterwards is too late.
"""
import importlib.util
import os
import sys

_HOW_TO_FIX = (
    "tfbin (like larq, larq-zoo and Larq Compute Engine) needs Keras 2: `tf.keras` must be "
    "tf-keras. Either `import tfbin` before TensorFlow is imported, or set the environment "
    "variable TF_USE_LEGACY_KERAS=1 before starting Python (and `pip install tf-keras` matching "
    "your TensorFlow minor version). With Keras 3, use `tfbin.keras3` instead."
)


def ensure_keras2():
    """Select tf-keras for `tf.keras`, or raise ImportError saying what to do."""
    missing = [name for name in ("tf_keras", "larq") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"tfbin's Keras 2 API needs {' and '.join(missing)}, which this environment lacks. Install the Keras 2 "
            "path with `pip install 'tfbin[larq]'` (tf-keras, larq, larq-zoo, keras-tuner; TensorFlow <= 2.19), "
            "or use the Keras 3 path, `import tfbin.keras3`, which needs neither."
        )
    tf_module = sys.modules.get("tensorflow")
    if tf_module is None:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    elif getattr(tf_module, "_tf_uses_legacy_keras", True) is False:
        raise ImportError("TensorFlow was imported with Keras 3 before tfbin. " + _HOW_TO_FIX)
    import tensorflow as tf

    try:
        origin = tf.keras.Model.__module__
    except (ImportError, AttributeError) as err:
        raise ImportError(f"tf.keras could not be loaded ({err}). " + _HOW_TO_FIX) from err
    if not origin.startswith(("tf_keras.", "keras.src.engine")):  # tf-keras, or Keras 2.15
        raise ImportError(f"tf.keras is Keras 3 ({origin}). " + _HOW_TO_FIX)
