"""Convert tfbin/larq models into binary TFLite models with Larq Compute Engine, and prove it.

```python
report = tfbin.export.convert(model, "model.tflite", sample_inputs=x_test[:1000])
print(report.to_markdown())
```

`convert` takes the model's **hard** form, applies exact rewrites so that every binarized layer
becomes an `LceBconv2d` (binary Dense -> 1x1 binary conv; {0,1} activations -> ±1 with the
offset in the bias; two-level kernels -> one binary conv with extra all-ones channels; see
`tfbin.export.rewrite`), converts with LCE, writes the file atomically, then verifies: which LCE
op each binarized layer became, the op histogram, size against the 1-bit limit and tie-aware
Keras-vs-TFLite parity. That is `verify="quick"`, the default, on a few inputs at a small share of
the conversion's cost; `verify="full"` also converts the float TFLite of the same architecture
for the size comparison, measures host latency and checks parity on more inputs.
"""
import importlib

__all__ = ["ExportError", "ExportReport", "RewriteError", "convert", "op_histogram", "float_twin", "tflite_accuracy"]

# Each name loads its module on first use: `tfbin.export.flatbuffer` (the TFLite reader, which
# `tfbin.keras3` uses) must import without the converter, which needs larq and Keras 2.
_MODULES = {
    "ExportError": "converter",
    "convert": "converter",
    "float_twin": "converter",
    "tflite_accuracy": "evaluate",
    "op_histogram": "flatbuffer",
    "ExportReport": "report",
    "RewriteError": "rewrite",
}


def __getattr__(name):
    if name in _MODULES:
        value = getattr(importlib.import_module(f"tfbin.export.{_MODULES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfbin.export' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
