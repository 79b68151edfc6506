"""Step time of fmnist_small as a float net (no quantizers, no tfbin) on Keras 2 and Keras 3 (#40).

    python bench/keras3_float_step.py

The same net as bench/keras3_parity.py's pair (its `Keras2.float_net` / `Keras3.float_net`), Adam
1e-3, batch 128, 60 batches of uniform noise, 3 epochs, median step of epochs 2+: how much of the
Keras 3 / Keras 2 step ratio of the binary nets is the framework's own, and what XLA
(`jit_compile=True`) does to it on this CPU. Prints one line; run it on a quiet machine.
"""
import os, sys, statistics, warnings
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
warnings.simplefilter("ignore")
import keras3_parity as kp
import numpy as np, tensorflow as tf, keras
rng = np.random.default_rng(0)
x = rng.uniform(size=(128 * 60, 28, 28, 1)).astype("float32"); y = rng.integers(0, 10, len(x))
def timed(model, compile_fn, fit):
    compile_fn(model)
    t = kp.accuracy_bench.step_timer_class(fit)()
    model.fit(x, y, batch_size=128, epochs=3, verbose=0, callbacks=[t], shuffle=False)
    return statistics.median(t.times) * 1000
if __name__ == "__main__":
    k2 = timed(kp.Keras2.float_net(), lambda m: m.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy"), tf.keras.callbacks.Callback)
    k3 = timed(kp.Keras3.float_net(), lambda m: m.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy"), keras.callbacks.Callback)
    k3j = timed(kp.Keras3.float_net(), lambda m: m.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", jit_compile=True), keras.callbacks.Callback)
    print(f"float fmnist_small step ms: keras2 {k2:.1f}  keras3 {k3:.1f} ({k3/k2:.3f}x)  keras3 jit {k3j:.1f} ({k3j/k2:.3f}x)")
