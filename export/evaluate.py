"""A `.tflite` scored on a whole dataset with LCE's interpreter, beside the Keras model it came from."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfbin.mode import hard


def tflite_accuracy(flatbuffer: bytes, dataset: tf.data.Dataset, keras_model: tf.keras.Model, batch_size: int = 512) -> dict:
    """Accuracy of `flatbuffer` on the unbatched `(image, label)` `dataset` (LCE interpreter,
    its optimized kernels), its argmax agreement with the hard `keras_model` on the same images,
    and the hard Keras model's accuracy: `{"tflite_accuracy", "agreement", "keras_accuracy", "images"}`."""
    import larq_compute_engine as lce

    interpreter = lce.testing.Interpreter(flatbuffer, num_threads=2, use_reference_bconv=False)
    correct, agree, keras_correct, total = 0, 0, 0, 0
    with hard(keras_model):
        for x, y in dataset.batch(batch_size):
            x, y = x.numpy(), y.numpy()
            lite = np.asarray(interpreter.predict(x)).reshape(len(x), -1).argmax(-1)
            keras = keras_model.predict_on_batch(x).argmax(-1)
            correct += int((lite == y).sum())
            agree += int((lite == keras).sum())
            keras_correct += int((keras == y).sum())
            total += len(x)
    return {"tflite_accuracy": correct / total, "agreement": agree / total, "keras_accuracy": keras_correct / total, "images": total}
