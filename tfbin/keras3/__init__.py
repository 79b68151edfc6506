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
print(tb.verify(model, flatbuffer, x_test[:1000]))   # tie-aware parity with LCE's interpreter
```

Every binarized `QuantConv2D` and `QuantDense` becomes an `LceBconv2d` (a Dense as a 1×1 binary
conv, as on the Keras 2 path). `verify` is `tfbin.export.parity`'s tie-aware check (`margins`:
the same rule); `float_flatbuffer` and `one_bit_limit_bytes` give the sizes the Keras 2 export
report compares with.

This path needs Keras 3 on its TensorFlow backend and imports neither larq nor tf-keras, so it
works in a process where TensorFlow was imported with Keras 3; imported first, it leaves `tf.keras`
as Keras 3 (the Keras 2 API of `tfbin` then says it cannot load). Both paths share one process
when the Keras 2 side loads first (`import tfbin`, then `import tfbin.keras3`), as tfbin's tests do. The
math (`tfbin.formulas`) and each quantizer's definition (`tfbin.quantizer_forms`) are the Keras 2
path's; only the layer glue is Keras 3's.

Training a float Keras 3 model into a binary one is `binarize(model, recipe, epochs=...)` with
tfbin's built-in recipes (`tfbin.builtin_recipes`, the recipes of `tfbin.recipes`), which returns
the model and its callbacks (`SharpeningScheduler` driving the sharpness weights on
`tfbin.schedules`' schedules); `recalibrate` re-estimates BatchNorm statistics in the hard form.
None of it needs larq or tf-keras.
"""
import keras

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        f"tfbin.keras3 needs Keras's TensorFlow backend; KERAS_BACKEND is {keras.backend.backend()!r}. "
        "Set KERAS_BACKEND=tensorflow before importing keras."
    )

from tfbin.keras3.binary_quantizers import (  # noqa: E402
    ApproxSign,
    BoundedRectifier,
    DistributionAwareSign,
    EDESign,
    LibraSign,
    MagnitudeAwareSign,
    Quantizer,
    SelfBinarizingSign,
    SoftHardQuantizer,
    SteSign,
    SwishSign,
)
from tfbin.keras3 import sharpness_values as sharpness  # noqa: E402  (`tfbin.keras3.sharpness`, as `tfbin.sharpness`)
from tfbin.keras3.recalibration import recalibrate  # noqa: E402
from tfbin.keras3.sharpening import SharpeningScheduler  # noqa: E402
from tfbin.keras3.binarization import Binarized, binarize  # noqa: E402
from tfbin.keras3.hard_form import hard, quantizers  # noqa: E402
from tfbin.keras3.lce_export import convert, float_flatbuffer, op_histogram  # noqa: E402
from tfbin.keras3.quant_layers import QuantConv2D, QuantDense  # noqa: E402
from tfbin.keras3.verification import binarized_layers, margins, one_bit_limit_bytes, verify  # noqa: E402
from tfbin.keras3.kernel_constraints import MeanCenteredClip, WeightClip  # noqa: E402

__all__ = [
    "ApproxSign",
    "BoundedRectifier",
    "DistributionAwareSign",
    "EDESign",
    "LibraSign",
    "MagnitudeAwareSign",
    "Quantizer",
    "SelfBinarizingSign",
    "SoftHardQuantizer",
    "SteSign",
    "SwishSign",
    "QuantConv2D",
    "QuantDense",
    "WeightClip",
    "MeanCenteredClip",
    "SharpeningScheduler",
    "hard",
    "quantizers",
    "sharpness",
    "recalibrate",
    "binarize",
    "Binarized",
    "convert",
    "op_histogram",
    "float_flatbuffer",
    "binarized_layers",
    "margins",
    "one_bit_limit_bytes",
    "verify",
]
