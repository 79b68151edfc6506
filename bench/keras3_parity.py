"""Keras 3 against Keras 2: the same recipes on the same net, data and optimizer (issue #40).

    python bench/keras3_parity.py [--recipes ste,irnet,self_binarizing] [--seeds 0,1,2] [--epochs 3]
                                  [--train-images N] [--out bench/results/keras3_parity.json]

For every recipe and seed, `fmnist_small` is trained twice in one process, back to back: on the
Keras 2 path (`tfbin.binarize` of `tfbin.models.small.fmnist_small`, tf-keras + larq) and on the
Keras 3 path (`tfbin.keras3.binarize` of the same architecture written layer for layer in Keras 3,
`fmnist_small_keras3` below). The protocol is `bench/accuracy_bench.py`'s: Fashion-MNIST's whole
60,000-image training set (or its first `--train-images`), shuffled each epoch with the seed,
batch 128, Adam 1e-3, 3 epochs (the recipes' schedules span them), scored on the whole test set.
The pair is *paired*: the Keras 3 net starts from the Keras 2 net's initial weights (copied layer
by layer before binarizing) and reads the same shuffled batches, so what differs is the framework.

Per run it records the hard test accuracy (what the exported model computes), the deployed one
(after `recalibrate` with the keep-if-it-helps check of `tfbin.regimen`: 100 training batches,
kept if the hard accuracy on the first 2,000 training images does not drop), the median step time
of epochs 2+, the op histogram of the exported flatbuffer (Keras 2: `tfbin.export.convert`;
Keras 3: `tfbin.keras3.convert`) and the agreement of that flatbuffer (LCE's interpreter) with the
hard Keras model on the test images: raw argmax agreement, and the tie-aware figures of
`tfbin.export.parity` (a sample is tie-free when every binarized layer's pre-sign input is more
than 64 eps32 x its largest magnitude from the threshold; on the Keras 3 path the margins are
`tfbin.keras3.margins`, the same rule).

The summary per recipe checks #40's targets: |mean hard accuracy, Keras 3 - Keras 2| within the
Keras 2 path's seed standard deviation; the same op histogram; tie-free agreement 1.000; and the
Keras 3 step time at most 1.05x the Keras 2 one (median over seeds of each pair's ratio).
Results are written after every run (atomically); a rerun skips the pairs already done (a pair
with one run missing is run again whole, so that its step ratio compares runs of one process).
Budget: like accuracy_bench, ≈ 6–10 min per run on 2 cores plus ≈ 1 min of export and parity:
18 runs, ≈ 2.5–3.5 hours.
"""
import argparse
from importlib import metadata
import json
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tfbin  # noqa: E402  (first: selects Keras 2 for tf.keras)
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402  (Keras 3)
import larq_compute_engine as lce  # noqa: E402

import tfbin.keras3 as k3  # noqa: E402
import accuracy_bench  # noqa: E402  (bench/, the script's folder)
from tfbin import _io, data, export, regimen  # noqa: E402
from tfbin.export import parity as parity_lib  # noqa: E402
from tfbin.models import small  # noqa: E402

RECIPES = ["ste", "irnet", "self_binarizing"]
PATHS = ["keras2", "keras3"]
DATASET = "fashion_mnist"
TRAIN_IMAGES = 60_000
EPOCHS, BATCH, LR = 3, 128, 1e-3
STEP_TARGET = 1.05  # #40: Keras 3 step time at most this times the Keras 2 one


# ---------------------------------------------------------------------------------------------
# The two nets


def fmnist_small_keras3(input_shape=(28, 28, 1), num_classes: int = 10) -> keras.Model:
    """`tfbin.models.small.fmnist_small()` (the form a recipe binarizes: no activation), layer
    for layer in Keras 3: float 32-filter stem; convs 64 (+pool), 64, 128 (+pool) and a Dense
    256, each followed by BatchNormalization(momentum=0.9); float softmax classifier."""
    L = keras.layers
    bn = lambda: L.BatchNormalization(momentum=0.9)  # noqa: E731
    inputs = keras.Input(input_shape)
    x = bn()(L.Conv2D(32, 3, padding="same", use_bias=False)(inputs))
    x = L.Conv2D(64, 3, padding="same", use_bias=False)(x)
    x = bn()(L.MaxPooling2D(2)(x))
    x = bn()(L.Conv2D(64, 3, padding="same", use_bias=False)(x))
    x = L.Conv2D(128, 3, padding="same", use_bias=False)(x)
    x = bn()(L.MaxPooling2D(2)(x))
    x = bn()(L.Dense(256, use_bias=False)(L.Flatten()(x)))
    outputs = L.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="fmnist_small")


def _weighted(model):
    return [layer for layer in model.layers if layer.weights]


def initial_weights(model) -> list:
    """`[(layer class, its weights)]` of every layer with weights, in order: a float net's start."""
    return [(type(layer).__name__, layer.get_weights()) for layer in _weighted(model)]


def copy_weights(weights, model3):
    """Give the Keras 3 twin the Keras 2 net's `initial_weights`, layer by layer; refuses a different net."""
    layers3 = _weighted(model3)
    described = lambda pairs: [(name, [tuple(w.shape) for w in ws]) for name, ws in pairs]  # noqa: E731
    if described(weights) != described(initial_weights(model3)):
        raise ValueError(f"The Keras 3 twin is not the Keras 2 net:\n{described(weights)}\n{described(initial_weights(model3))}")
    for (_, values), layer3 in zip(weights, layers3):
        layer3.set_weights(values)


# ---------------------------------------------------------------------------------------------
# Training and scoring, the same code for both paths where the frameworks allow


def train_batches(seed, train_images):
    """accuracy_bench.splits' training batches: the first `train_images`, cached, shuffled with
    the seed each epoch, batch 128."""
    return data.load(DATASET, "train").take(train_images).cache().shuffle(train_images, seed=seed).batch(BATCH).prefetch(2)


def test_arrays():
    x, y = next(iter(data.load(DATASET, "test").batch(100_000)))
    return x.numpy(), y.numpy()


def predictions(model, x):
    return np.asarray(model.predict(x, batch_size=1000, verbose=0))


def agreement(flatbuffer, expected, x, y, sample_margins):
    """The flatbuffer in LCE's interpreter (one thread, as tfbin.export's parity check) against the
    hard Keras outputs `expected` on `x`: `tfbin.export.parity`'s figures (tie-aware when
    `sample_margins` is given) and the TFLite accuracy."""
    got = np.asarray(lce.testing.Interpreter(flatbuffer, num_threads=1).predict(x)).reshape(len(x), -1)
    if sample_margins is None:
        found = {"samples": len(x), "argmax_agreement": float(np.mean(expected.argmax(1) == got.argmax(1))),
                 "max_abs_diff": float(np.abs(expected - got).max()), "tie_free_agreement": None}
    else:
        found = parity_lib.parity(expected, got, sample_margins)
    found["tflite_accuracy"] = float(np.mean(got.argmax(1) == y))
    return found


class Keras2:
    """tf-keras + larq: `tfbin.binarize` of `small.fmnist_small`, as accuracy_bench trains it."""
    name = "keras2"
    Callback = tf.keras.callbacks.Callback

    @staticmethod
    def float_net():
        return small.fmnist_small()

    @staticmethod
    def binarize(model, recipe, epochs):
        return tfbin.binarize(model, recipe, epochs=epochs)

    @staticmethod
    def compile(model, steps):
        model.compile(regimen.adam(LR, "constant", steps), "sparse_categorical_crossentropy", metrics=["accuracy"])

    hard = staticmethod(tfbin.hard)

    @staticmethod
    def recalibrate(model, batches, check):
        return regimen.recalibrate_if_it_helps(model, batches, check=check)

    @staticmethod
    def export(model, x):
        """(flatbuffer, margins of `x`); `tfbin.export.convert`'s own parity check on 16 test images."""
        report = export.convert(model, sample_inputs=x[:16], latency=False)
        with tfbin.hard(model):
            return report.flatbuffer, parity_lib.margins(model, x)


class Keras3:
    """Keras 3: `tfbin.keras3.binarize` of `fmnist_small_keras3`."""
    name = "keras3"
    Callback = keras.callbacks.Callback

    @staticmethod
    def float_net():
        return fmnist_small_keras3()

    @staticmethod
    def binarize(model, recipe, epochs):
        return k3.binarize(model, recipe, epochs=epochs)

    @staticmethod
    def compile(model, steps):
        model.compile(keras.optimizers.Adam(LR), "sparse_categorical_crossentropy", metrics=["accuracy"])

    hard = staticmethod(k3.hard)

    @staticmethod
    def recalibrate(model, batches, check):
        return k3.recalibrate(model, batches, steps=regimen.RECALIBRATION_BATCHES, check=check)

    @staticmethod
    def export(model, x):
        flatbuffer = k3.convert(model)
        with k3.hard(model):
            return flatbuffer, k3.margins(model, x)


def run(path, recipe, seed, args, test, initial=None):
    """One training run on `path` (Keras2 or Keras3) from the `initial` weights if given: its row,
    and the float net's initial weights (the Keras 2 run's start, for the Keras 3 twin)."""
    x_test, y_test = test
    tf.keras.utils.set_random_seed(seed)
    keras.utils.set_random_seed(seed)
    train = train_batches(seed, args.train_images)
    float_model = path.float_net()
    if initial is not None:
        copy_weights(initial, float_model)
    start_weights = initial_weights(float_model)  # before training: binarize may share the float layers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, callbacks = path.binarize(float_model, recipe, args.epochs)
    path.compile(model, args.epochs * int(train.cardinality()))
    timer = accuracy_bench.step_timer_class(path.Callback)()
    start = time.time()
    model.fit(train, epochs=args.epochs, callbacks=[*callbacks, timer], verbose=0)
    row = {"path": path.name, "recipe": recipe, "seed": seed, "train_seconds": round(time.time() - start, 1),
           "step_ms": round(1000 * statistics.median(timer.times), 2),
           "jit_compile": bool(getattr(model, "jit_compile", False))}
    row["soft_accuracy"] = float(np.mean(predictions(model, x_test).argmax(1) == y_test))
    with path.hard(model):
        row["hard_accuracy"] = float(np.mean(predictions(model, x_test).argmax(1) == y_test))
    batches = train.take(regimen.RECALIBRATION_BATCHES).cache()
    check = data.load(DATASET, "train").take(regimen.CHECK_IMAGES).batch(1000).cache()
    report = path.recalibrate(model, batches, check)
    row["recalibration_applied"] = bool(report["applied"])
    with path.hard(model):
        expected = predictions(model, x_test)
    row["hard_accuracy_deployed"] = float(np.mean(expected.argmax(1) == y_test))
    start = time.time()
    flatbuffer, sample_margins = path.export(model, x_test)  # the deployed model
    row["op_histogram"] = dict(sorted(export.op_histogram(flatbuffer).items()))
    row["parity"] = agreement(flatbuffer, expected, x_test, y_test, sample_margins)
    row["export_seconds"] = round(time.time() - start, 1)
    return row, start_weights


# ---------------------------------------------------------------------------------------------
# Summary


def _std(values):
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def _round(value, digits=4):
    return None if value is None else round(float(value), digits)


def summarize(rows):
    """Per recipe: each path's figures, and #40's targets met or not (None: not measurable yet)."""
    summary = {}
    for recipe in [r for r in RECIPES if any(row["recipe"] == r for row in rows)] + \
            sorted({row["recipe"] for row in rows} - set(RECIPES)):
        mine = {p: sorted((r for r in rows if r["recipe"] == recipe and r["path"] == p), key=lambda r: r["seed"]) for p in PATHS}
        entry = {}
        for p, runs in mine.items():
            hard = [r["hard_accuracy"] for r in runs]
            deployed = [r["hard_accuracy_deployed"] for r in runs]
            tie_free = [r["parity"]["tie_free_agreement"] for r in runs]
            entry[p] = {
                "runs": len(runs), "seeds": [r["seed"] for r in runs],
                "hard_mean": _round(np.mean(hard)) if hard else None, "hard_std": _round(_std(hard)),
                "deployed_mean": _round(np.mean(deployed)) if deployed else None, "deployed_std": _round(_std(deployed)),
                "step_ms_median": round(statistics.median(r["step_ms"] for r in runs), 2) if runs else None,
                "argmax_agreement_min": _round(min((r["parity"]["argmax_agreement"] for r in runs), default=None)),
                "tie_free_fraction_mean": _round(np.mean(f)) if (f := [r["parity"]["tie_free_fraction"] for r in runs if "tie_free_fraction" in r["parity"]]) else None,
                "tie_free_agreement_min": None if not runs or None in tie_free else _round(min(tie_free)),
                "unexplained_mismatches": sum(r["parity"].get("unexplained_mismatches", 0) for r in runs),
            }
        pairs = [(a, b) for a in mine["keras2"] for b in mine["keras3"] if a["seed"] == b["seed"]]
        k2, k3_ = entry["keras2"], entry["keras3"]
        if k2["runs"] and k3_["runs"]:
            difference = abs(k3_["hard_mean"] - k2["hard_mean"])
            ratios = [b["step_ms"] / a["step_ms"] for a, b in pairs]
            histograms = [a["op_histogram"] == b["op_histogram"] for a, b in pairs]
            entry["targets"] = {
                "hard_mean_difference": _round(difference),
                "paired_hard_difference_mean": _round(np.mean([b["hard_accuracy"] - a["hard_accuracy"] for a, b in pairs])),
                "keras2_hard_std": k2["hard_std"],
                "accuracy_met": None if k2["hard_std"] is None else bool(difference <= k2["hard_std"]),
                "histograms_equal": bool(all(histograms)) if histograms else None,
                "tie_free_agreement_met": None if k3_["tie_free_agreement_min"] is None else k3_["tie_free_agreement_min"] == 1.0,
                "step_ratios": [round(r, 3) for r in ratios],
                "step_ratio": round(statistics.median(ratios), 3) if ratios else None,
                "step_met": bool(statistics.median(ratios) <= STEP_TARGET) if ratios else None,
            }
        summary[recipe] = entry
    return summary


# ---------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/results/keras3_parity.json")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="training epochs (default 3, #40's budget)")
    parser.add_argument("--train-images", type=int, default=TRAIN_IMAGES,
                        help="train on only the first N training images (a smoke run); default all 60,000")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if not 0 < args.train_images <= TRAIN_IMAGES:
        parser.error(f"--train-images must be in [1, {TRAIN_IMAGES}], got {args.train_images}")
    recipes, seeds = args.recipes.split(","), [int(s) for s in args.seeds.split(",")]
    out = args.out if os.path.isabs(args.out) else os.path.join(ROOT, args.out)
    previous = json.load(open(out)) if os.path.exists(out) else {}
    same_protocol = previous.get("train_samples") == args.train_images and previous.get("epochs") == args.epochs
    rows = list(previous.get("runs", [])) if same_protocol else []
    done = lambda recipe, seed: {r["path"] for r in rows if (r["recipe"], r["seed"]) == (recipe, seed)} == set(PATHS)  # noqa: E731
    test = test_arrays()
    started = time.time()
    for seed in seeds:
        for recipe in recipes:
            if done(recipe, seed):
                continue
            rows = [r for r in rows if (r["recipe"], r["seed"]) != (recipe, seed)]  # a half-done pair runs again whole
            initial = None
            for path in (Keras2, Keras3):
                row, start_weights = run(path, recipe, seed, args, test, initial=initial)
                initial = start_weights if initial is None else initial
                row["invocation_started"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started))
                rows.append(row)
                p = row["parity"]
                print(f"seed {seed} {recipe} {row['path']}: hard {row['hard_accuracy']:.4f} deployed "
                      f"{row['hard_accuracy_deployed']:.4f} {row['step_ms']:.1f} ms/step agreement {p['argmax_agreement']:.4f} "
                      f"tie-free {p['tie_free_agreement']} ({time.time() - started:.0f} s)", flush=True)
                result = {
                    "command": ("python bench/keras3_parity.py " + " ".join(sys.argv[1:])).strip(),
                    "model": "fmnist_small", "dataset": DATASET, "epochs": args.epochs, "batch_size": BATCH, "lr": LR,
                    "train_samples": args.train_images, "scored_on": "the 10,000-image test set",
                    "protocol": "per (recipe, seed): Keras 2 then Keras 3 in one process; the Keras 3 net starts from the "
                                "Keras 2 net's initial weights and reads the same shuffled batches",
                    "host": {"cpus": os.cpu_count(), "machine": platform.machine()},
                    "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "tf_keras": metadata.version("tf_keras"),
                                 "larq_compute_engine": lce.__version__},
                    "wall_seconds_this_invocation": round(time.time() - started, 1),
                    "runs": rows,
                    "summary": summarize(rows),
                }
                _io.write_text_atomic(out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
