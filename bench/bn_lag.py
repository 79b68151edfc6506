"""Why a binary net's moving BatchNorm statistics miss: sign flips per training step, and how
far each BN's moving statistics sit from those of the final network (`tfbin.recalibrate`).

    python bench/bn_lag.py ARM DATASET SEED > bench/results/bn_lag_ARM_DATASET_SEED.json

One run of `bench/accuracy_bench.py`'s protocol (same seed, same data order: its hard accuracy is
that run's). Flips: the fraction of each binarized kernel's signs that change in one step, at
steps 101, 501, 901 and over the last 60 steps. Per BN: |moving mean − recalibrated mean| in
recalibrated standard deviations (median and max over channels) and the ratio of the moving
variance to the recalibrated one. Budget: one accuracy run (≈ 6–10 min on 2 cores).
"""
import contextlib
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
from tfbin import models  # noqa: E402

arm, dataset, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
tf.keras.utils.set_random_seed(seed)
train, score = ab.splits(dataset, seed, 0, None)
model, callbacks = models.build("fmnist_small", arm, epochs=3)
kernels = [l.kernel for l in model.layers if getattr(l, "kernel_quantizer", None) is not None]
steps = 3 * int(train.cardinality())


class Flips(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.step, self.prev, self.flips = 0, None, []

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step >= steps - 60 or self.step in (100, 101, 500, 501, 900, 901):
            now = [np.sign(k.numpy()) for k in kernels]
            if self.prev is not None and self.prev[0] == self.step - 1:
                self.flips.append((self.step, [float((a != b).mean()) for a, b in zip(self.prev[1], now)]))
            self.prev = (self.step, now)


flips = Flips()
model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(train, epochs=3, callbacks=[*callbacks, flips], verbose=0)
norms = [l for l in model.layers if isinstance(l, tf.keras.layers.BatchNormalization)]
ema = [(b.moving_mean.numpy(), b.moving_variance.numpy()) for b in norms]
with tfbin.hard(model) if tfbin.sharpness.quantizers(model) else contextlib.nullcontext():
    hard = ab.accuracy(model, score)
tfbin.recalibrate(model, train, steps=100)
with tfbin.hard(model) if tfbin.sharpness.quantizers(model) else contextlib.nullcontext():
    recal = ab.accuracy(model, score)
out = {"arm": arm, "dataset": dataset, "seed": seed, "hard": hard, "recal": recal,
       "flips_per_step": [(s, [round(f, 5) for f in fl]) for s, fl in flips.flips]}
for b, (m, v) in zip(norms, ema):
    rm, rv = b.moving_mean.numpy(), b.moving_variance.numpy()
    z = np.abs(m - rm) / np.sqrt(rv + b.epsilon)
    out.setdefault("bn", []).append({"name": b.name, "mean_shift_in_sd_median": float(np.median(z)), "max": float(z.max()),
                                     "var_ratio_median": float(np.median(v / rv)), "var_ratio_min": float((v / rv).min()), "var_ratio_max": float((v / rv).max())})
out["command"] = "python bench/bn_lag.py " + " ".join(sys.argv[1:])
print(json.dumps(out, indent=1))
