"""Convert tfbin/larq models into binary TFLite models with Larq Compute Engine, and prove it.

```python
report = tfbin.export.convert(model, "model.tflite", sample_inputs=x_test[:1000])
print(report.to_markdown())
```

`convert` takes the model's **hard** form, applies exact rewrites so that every binarized layer
becomes an `LceBconv2d` (binary Dense -> 1x1 binary conv; {0,1} activations -> ±1 with the
offset in the bias; two-level kernels -> one binary conv with extra all-ones channels; see
`tfbin.export.rewrite`), converts with LCE, writes the file atomically, then verifies: which LCE
op each binarized layer became, the op histogram, size against the float TFLite of the same
architecture and the 1-bit limit, Keras-vs-TFLite parity, and host latency.
"""
from tfbin.export.converter import ExportError, convert, float_twin
from tfbin.export.evaluate import tflite_accuracy
from tfbin.export.flatbuffer import op_histogram
from tfbin.export.report import ExportReport
from tfbin.export.rewrite import RewriteError

__all__ = ["ExportError", "ExportReport", "RewriteError", "convert", "op_histogram", "float_twin", "tflite_accuracy"]
