"""How far ABR's learned slopes move in a run of the accuracy benchmark: per bounded rectifier,
the smallest, median and largest slope `a` after each epoch, and the fraction of its inputs that
fall inside the gradient window `|v·a·x| < 1` at the end of training.

    python bench/abr_slopes.py [DATASET] [SEED]   # writes bench/results/abr_slopes.json

One run of `bench/accuracy_bench.py`'s protocol with the `abr` recipe's defaults (same seed, same
data order: its hard accuracy is that run's). Budget: one accuracy run (≈ 6–10 min on 2 cores).
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import tfbin  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import accuracy_bench as ab  # noqa: E402
from tfbin import _io, models  # noqa: E402
from tfbin.quantizers import BoundedRectifier  # noqa: E402

dataset = sys.argv[1] if len(sys.argv) > 1 else "fashion_mnist"
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
tf.keras.utils.set_random_seed(seed)
train, score = ab.splits(dataset, seed, 0, None)
model, callbacks = models.build("fmnist_small", "abr", epochs=3)
rectified = [l for l in model.layers if isinstance(getattr(l, "input_quantizer", None), BoundedRectifier)]
units = [(l.name, l.input_quantizer) for l in rectified]


def stats(a):
    return {"min": round(float(a.min()), 4), "median": round(float(np.median(a)), 4), "max": round(float(a.max()), 4)}


class Slopes(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append({name: stats(q.slope.numpy()) for name, q in units})


slopes = Slopes()
model.compile(tf.keras.optimizers.Adam(ab.LR), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(train, epochs=ab.EPOCHS, callbacks=[*callbacks, slopes], verbose=0)

# The inputs each rectifier sees at the end, on one training batch, in the deployed (hard) form.
images, _ = next(iter(train))
with tfbin.hard(model):
    seen = tf.keras.Model(model.inputs, [l.input for l in rectified])(images, training=False)
    hard = ab.accuracy(model, score)
window = {name: round(float(np.mean(np.abs(x.numpy() * q.effective_slope().numpy()) < 1.0)), 4)
          for (name, q), x in zip(units, seen)}
_io.write_text_atomic(os.path.join(ROOT, "bench", "results", "abr_slopes.json"), json.dumps({
    "command": "python bench/abr_slopes.py " + " ".join(sys.argv[1:]),
    "dataset": dataset, "seed": seed, "hard_accuracy": hard,
    "v_end": float(units[0][1].sharpness("v").numpy()),
    "slopes_after_epoch": slopes.epochs,
    "fraction_inside_gradient_window": window,
}, indent=1) + "\n")
