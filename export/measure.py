"""What both exporters measure beside parity, framework-neutral: the parity inputs and host latency.

`tfbin.export.convert` runs these for a Keras 2 model (`tfbin.export.converter`) and for a Keras 3
one (`tfbin.export.keras3_convert`) alike; they take flatbuffers and arrays, no Keras model, and
import neither larq nor any Keras.
"""
from __future__ import annotations

import statistics
import time
import warnings

import numpy as np
import tensorflow as tf

__all__ = ["sample_inputs", "latency", "median_ms", "float_interpreter"]


def sample_inputs(given, num_samples: int, input_shape: tuple) -> np.ndarray:
    """The parity check's inputs: those `given`, else `num_samples` uniform [0, 1] ones."""
    if given is None:
        rng = np.random.default_rng(0)
        given = rng.uniform(0.0, 1.0, size=(num_samples, *input_shape)).astype(np.float32)
    return np.asarray(given, np.float32)


def median_ms(run, repeats: int) -> float:
    """The median wall time of `run()` over `repeats` calls, in ms, after one warm-up call."""
    run()  # warm-up: first invocation allocates and packs weights
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return round(statistics.median(times), 3)


def float_interpreter(flatbuffer: bytes):
    """The stock TFLite interpreter for the float baseline: LiteRT's when installed, else
    `tf.lite.Interpreter`, whose deprecation warning (it points to LiteRT, an extra package
    tfbin does not require) is dropped here and nowhere else."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated", category=UserWarning)
            interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=1)
    else:
        interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def latency(flatbuffer: bytes, float_flatbuffer: bytes, x1: np.ndarray, repeats: int) -> dict:
    """The report's host latency: `flatbuffer` in LCE's interpreter (default and indirect-BGEMM
    kernels) and `float_flatbuffer` in the stock one, on the single input `x1`, one thread."""
    import larq_compute_engine as lce

    default = lce.testing.Interpreter(flatbuffer, num_threads=1)
    indirect = lce.testing.Interpreter(flatbuffer, num_threads=1, use_indirect_bgemm=True)
    float_interp = float_interpreter(float_flatbuffer)
    index = float_interp.get_input_details()[0]["index"]

    def run_float():
        float_interp.set_tensor(index, x1)
        float_interp.invoke()

    return {
        "lce_default_ms": median_ms(lambda: default.predict(x1), repeats),
        "lce_indirect_bgemm_ms": median_ms(lambda: indirect.predict(x1), repeats),
        "float_tflite_ms": median_ms(run_float, repeats),
        "repeats": repeats,
        "note": "x86 host, 1 thread, batch 1, median; LCE's optimized ARM kernels are not used "
        "here, so these figures do not stand for a phone or a Raspberry Pi.",
    }
