"""The one way tfbin registers its serializable classes with Keras."""
import tensorflow as tf


def serializable(*names):
    """Register a class under `tfbin>ClassName` (what the `.keras` format writes) and under each of
    `names` (the bare class name for the legacy `.h5`/SavedModel configs larq writes, a quantizer's
    string alias). Bare names are opt-in: a schedule called `Constant` must not shadow Keras's
    initializer of that name."""

    def decorator(cls):
        cls = tf.keras.utils.register_keras_serializable(package="tfbin")(cls)
        for name in names:
            tf.keras.utils.get_custom_objects()[name] = cls
        return cls

    return decorator
