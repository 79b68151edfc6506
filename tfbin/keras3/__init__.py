"""tfbin on Keras 3: larq-style binary layers and tfbin's quantizers for `import keras`.

```python
import keras
import tfbin.keras3 as tb

model = keras.Sequential([
    keras.Input((28, 28, 1)),
    tb.QuantConv2D(32, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                   kernel_constraint="weight_clip", padding="same", pad_values=1.0, use_bias=False),
    keras.layers.BatchNormalization(),
    ...
])
flatbuffer = tb.convert(model)            # bytes of a .tflite with LceBconv2d ops
print(tb.op_histogram(flatbuffer))
```

This path needs Keras 3 on its TensorFlow backend and imports neither larq nor tf-keras, so it
works in a process where TensorFlow was imported with Keras 3; imported first, it leaves `tf.keras`
as Keras 3 (the Keras 2 API of `tfbin` then says it cannot load). Both paths share one process
when the Keras 2 side loads first (`import tfbin`, then `import tfbin.keras3`), as tfbin's tests do. The
math (`tfbin.formulas`) and each quantizer's definition (`tfbin.quantizer_forms`) are the Keras 2
path's; only the layer glue is Keras 3's.
"""
import keras

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        f"tfbin.keras3 needs Keras's TensorFlow backend; KERAS_BACKEND is {keras.backend.backend()!r}. "
        "Set KERAS_BACKEND=tensorflow before importing keras."
    )

from tfbin.keras3.binary_quantizers import (  # noqa: E402
    BoundedRectifier,
    DistributionAwareSign,
    EDESign,
    LibraSign,
    Quantizer,
    SelfBinarizingSign,
    SoftHardQuantizer,
    SteSign,
)
from tfbin.keras3.hard_form import hard, quantizers  # noqa: E402
from tfbin.keras3.lce_export import convert, op_histogram  # noqa: E402
from tfbin.keras3.quant_layers import QuantConv2D, QuantDense  # noqa: E402
from tfbin.keras3.weight_clip import WeightClip  # noqa: E402

__all__ = [
    "BoundedRectifier",
    "DistributionAwareSign",
    "EDESign",
    "LibraSign",
    "Quantizer",
    "SelfBinarizingSign",
    "SoftHardQuantizer",
    "SteSign",
    "QuantConv2D",
    "QuantDense",
    "WeightClip",
    "hard",
    "quantizers",
    "convert",
    "op_histogram",
]
