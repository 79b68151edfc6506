"""Accuracy at equal budget: every recipe against larq's `ste` baseline and full precision.

    python bench/accuracy_bench.py [--out bench/results/accuracy.json] [--seeds 0,1,2]
                                   [--datasets fashion_mnist,mnist] [--train-samples 5000]

`fmnist_small` (DESIGN.md §1), 3 epochs, batch 128, Adam 1e-3, the first `--train-samples`
training images (shuffled each epoch), the whole 10,000-image test set. Arms:

- `float`: the same net in full precision (no recipe);
- `ste`, `abr`, `self_binarizing`, `irnet`, `dab`, `irnet_cmim`: the recipes (schedules span
  the 3 epochs), scored by **hard** test accuracy (what the exported model computes);
- `irnet_kd`: `irnet` plus `tfbin.losses.Distillation` from the `float` arm of the same seed.

Per run it records soft and hard test accuracy and the median per-step time of epochs 2–3.
Results are written after every run (atomically) and a rerun skips the runs already done, so
an interrupted benchmark continues. Budget: 90 min (run it in the background).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tfbin  # noqa: E402
import tensorflow as tf  # noqa: E402
from tfbin import _io, data, losses, models  # noqa: E402
from tfbin.models import small  # noqa: E402

ARMS = ["float", "ste", "abr", "self_binarizing", "irnet", "dab", "irnet_cmim", "irnet_kd"]
EPOCHS, BATCH, LR = 3, 128, 1e-3


class StepTimer(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times, self.epoch = [], 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch >= 1:  # epoch 1 includes tracing
            self.times.append(time.perf_counter() - self.start)


def accuracy(model, test):
    return float(model.evaluate(test, verbose=0, return_dict=True)["accuracy"])


def run(arm, dataset, seed, train_samples, teachers):
    tf.keras.utils.set_random_seed(seed)
    train = data.load(dataset, "train").take(train_samples).cache().shuffle(train_samples, seed=seed).batch(BATCH).prefetch(2)
    test = data.load(dataset, "test").batch(1000).cache().prefetch(2)
    callbacks = []
    if arm == "float":
        model = small.fmnist_small()
    else:
        model, callbacks = models.build("fmnist_small", "irnet" if arm == "irnet_kd" else arm, epochs=EPOCHS)
        if arm == "irnet_kd":
            model = losses.Distillation(teachers[(dataset, seed)], temperature=4.0, weight=1.0).wrap(model)
    model.compile(tf.keras.optimizers.Adam(LR), "sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = StepTimer()
    start = time.time()
    model.fit(train, epochs=EPOCHS, callbacks=[*callbacks, timer], verbose=0)
    row = {
        "arm": arm, "dataset": dataset, "seed": seed,
        "train_seconds": round(time.time() - start, 1),
        "step_ms": round(1000 * statistics.median(timer.times), 2),
        "soft_accuracy": accuracy(model, test),
    }
    if arm == "float":
        teachers[(dataset, seed)] = model
    if not tfbin.sharpness.quantizers(model):  # float, or larq's ste_sign: one form only
        row["hard_accuracy"] = row["soft_accuracy"]
    else:
        with tfbin.hard(model):
            row["hard_accuracy"] = accuracy(model, test)
    return row


def summarize(rows):
    summary = {}
    for dataset in sorted({r["dataset"] for r in rows}):
        ste = [r["step_ms"] for r in rows if r["dataset"] == dataset and r["arm"] == "ste"]
        for arm in ARMS:
            mine = [r for r in rows if r["dataset"] == dataset and r["arm"] == arm]
            if not mine:
                continue
            hard = [r["hard_accuracy"] for r in mine]
            step = statistics.median(r["step_ms"] for r in mine)
            summary.setdefault(dataset, {})[arm] = {
                "runs": len(mine),
                "hard_mean": round(float(np.mean(hard)), 4),
                "hard_std": round(float(np.std(hard, ddof=1)) if len(hard) > 1 else 0.0, 4),
                "soft_mean": round(float(np.mean([r["soft_accuracy"] for r in mine])), 4),
                "step_ms_median": round(step, 1),
                "step_ratio_vs_ste": round(step / statistics.median(ste), 3) if ste else None,
            }
    return summary


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench/results/accuracy.json")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--datasets", default="fashion_mnist,mnist")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--train-samples", type=int, default=5_000)
    args = parser.parse_args()
    path = os.path.join(ROOT, args.out)
    previous = json.load(open(path)) if os.path.exists(path) else {}
    rows = [r for r in previous.get("runs", []) if previous.get("train_samples") == args.train_samples]
    done = {(r["arm"], r["dataset"], r["seed"]) for r in rows}
    started, teachers = time.time(), {}
    arms = args.arms.split(",")
    for seed in (int(s) for s in args.seeds.split(",")):
        for dataset in args.datasets.split(","):
            for arm in arms:
                needs_teacher = "irnet_kd" in arms and (arm == "float") and ("irnet_kd", dataset, seed) not in done
                if (arm, dataset, seed) in done and not needs_teacher:
                    continue
                row = run(arm, dataset, seed, args.train_samples, teachers)
                if (arm, dataset, seed) not in done:
                    rows.append(row)
                    done.add((arm, dataset, seed))
                print(f"seed {seed} {dataset} {arm}: hard {row['hard_accuracy']:.4f} soft {row['soft_accuracy']:.4f} "
                      f"{row['step_ms']:.0f} ms/step ({time.time() - started:.0f} s)", flush=True)
                result = {
                    "command": ("python bench/accuracy_bench.py " + " ".join(sys.argv[1:])).strip(),
                    "model": "fmnist_small", "epochs": EPOCHS, "batch_size": BATCH, "lr": LR,
                    "train_samples": args.train_samples, "test_samples": 10_000,
                    "host": {"cpus": os.cpu_count(), "machine": platform.machine()},
                    "versions": {"tensorflow": tf.__version__},
                    "wall_seconds_this_invocation": round(time.time() - started, 1),
                    "runs": rows,
                    "summary": summarize(rows),
                }
                _io.write_text_atomic(path, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
