"""Accuracy at equal budget: every recipe against larq's `ste` baseline and full precision.

    python bench/accuracy_bench.py [--out bench/results/accuracy.json] [--seeds 0,1,2]
                                   [--datasets fashion_mnist,mnist] [--arms float,ste,...]
    python bench/accuracy_bench.py --validation 10000 --out bench/results/accuracy_val.json
    python bench/accuracy_bench.py --epochs 10 --arms irnet --seeds 0 --out bench/results/accuracy_10_epochs.json

`fmnist_small`, 3 epochs, batch 128, Adam 1e-3, the whole 60,000-image training set (shuffled
each epoch), scored on the whole 10,000-image test set. With `--validation N` the last N training
images are held out and score the run instead (the test set is not read): that mode chooses
defaults. `--epochs` trains longer runs (the recipes' schedules span them), kept in their own file;
`--train-images N` trains on only the first N of them (a cheaper screening run, its own file:
`--validation 10000 --train-images 20000 --out bench/results/accuracy_screen.json`).
`--lr-decay cosine` decays Adam's rate to 0 over the run (recorded per run, shown in the arm's label).
Arms:

- `float`: the float net one would deploy, `fmnist_small(activation="relu")` (ReLU after every
  hidden BatchNorm), the full-precision reference;
- `float_linear`: the net the recipes binarize, left in full precision with no activation
  (nearly linear: only its max-pools are not). It was the `float` arm before issue #38; its
  committed runs are labelled `float_linear` in the results;
- `ste`, `approx_sign`, `swish_sign`, `bireal`: larq's baselines (`tfbin.recipes.LARQ_BASELINES`);
- `abr`, `self_binarizing`, `irnet`, `dab`, `irnet_cmim`: the papers' recipes (schedules span
  the 3 epochs); every recipe is scored by **hard** test accuracy (what the exported model computes);
- `irnet_kd`: `irnet` plus `tfbin.losses.Distillation` from the `float_linear` arm of the same
  seed (the teacher its committed runs had);
- `abc`, `blrnet`: ABC-Net and BLRNet.

Per run it records soft and hard accuracy, their gap, the median per-step time of epochs 2–3,
the hard accuracy after `tfbin.recalibrate`, and the **deployed** accuracy: what `tfbin train`
ships, the recalibrated model if its hard accuracy on the first 2,000 training images does not
drop, else the model as trained (the scored images are not consulted). Results are written after
every run (atomically) and a rerun skips the runs already done, so an interrupted benchmark
continues; a binary run recorded before the deployed figure existed is run again and replaced. Teachers (`float_linear` runs) are kept in `--teacher-dir` so that
`irnet_kd` reuses them across invocations. Budget: ≈ 6–10 min per run on 2 cores, 90 runs for
the full grid: several hours, run in the background and resumed across sessions.
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
from tfbin import _io, data, losses, models, regimen  # noqa: E402
from tfbin.models import small  # noqa: E402

ARMS = ["float", "float_linear", "ste", "approx_sign", "swish_sign", "bireal", "abr", "abr_float_weights", "self_binarizing",
        "irnet", "dab", "irnet_cmim", "irnet_kd", "abc", "blrnet"]
FLOAT_ARMS = {"float": "relu", "float_linear": None}  # arm: fmnist_small's activation
TRAIN_IMAGES = 60_000
EPOCHS, BATCH, LR = 3, 128, 1e-3


def step_timer_class(base):
    """A callback class of `base` (tf.keras's or Keras 3's `Callback`) that records each training
    step's seconds from epoch 2 on (epoch 1 includes tracing; a 1-epoch run records epoch 1)."""

    class StepTimer(base):
        def __init__(self):
            super().__init__()
            self.times, self.epoch = [], 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch >= 1 or self.params.get("epochs", 1) == 1:
                self.times.append(time.perf_counter() - self.start)

    return StepTimer


StepTimer = step_timer_class(tf.keras.callbacks.Callback)


def accuracy(model, test):
    return float(model.evaluate(test, verbose=0, return_dict=True)["accuracy"])


def splits(dataset, seed, validation, train_images=None):
    """(train, score) datasets: the training images minus the last `validation` (only the first
    `train_images` of them if given), and those held-out images (or the test set when
    `validation` is 0)."""
    full = data.load(dataset, "train")
    n = TRAIN_IMAGES - validation
    kept = n if train_images is None else train_images
    train = full.take(kept).cache().shuffle(kept, seed=seed).batch(BATCH).prefetch(2)
    score = full.skip(n) if validation else data.load(dataset, "test")
    return train, score.batch(1000).cache().prefetch(2)


def teacher(dataset, seed, args):
    """The `float_linear` arm's model of this seed, trained once and kept in `--teacher-dir`."""
    path = _teacher_path(dataset, seed, args)
    if not os.path.exists(path):
        run("float_linear", dataset, seed, args, save_to=path)
    return tf.keras.models.load_model(path)


def _teacher_path(dataset, seed, args):
    longer = f"_epochs{args.epochs}" if getattr(args, "epochs", EPOCHS) != EPOCHS else ""
    return os.path.join(args.teacher_dir, f"{dataset}_seed{seed}_val{args.validation}{longer}.keras")


def run(arm, dataset, seed, args, save_to=None, overrides=None, lr=LR, lr_decay="constant"):
    epochs = getattr(args, "epochs", EPOCHS)
    tf.keras.utils.set_random_seed(seed)
    train, score = splits(dataset, seed, args.validation, getattr(args, "train_images", None))
    callbacks = []
    if arm in FLOAT_ARMS:
        model = small.fmnist_small(activation=FLOAT_ARMS[arm])
    else:
        recipe = {"irnet_kd": "irnet", "abr_float_weights": "abr"}.get(arm, arm)
        overrides = dict(overrides or {})
        if arm == "abr_float_weights":
            overrides["binary_weights"] = False
        model, callbacks = models.build("fmnist_small", recipe, epochs=epochs, **overrides)
        if arm == "irnet_kd":
            model = losses.Distillation(teacher(dataset, seed, args), temperature=4.0, weight=1.0).wrap(model)
    model.compile(regimen.adam(lr, lr_decay, epochs * int(train.cardinality())), "sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = StepTimer()
    start = time.time()
    model.fit(train, epochs=epochs, callbacks=[*callbacks, timer], verbose=0)
    row = {
        "arm": arm, "dataset": dataset, "seed": seed,
        "train_seconds": round(time.time() - start, 1),
        "step_ms": round(1000 * statistics.median(timer.times), 2),
        "soft_accuracy": accuracy(model, score),
    }
    if save_to is not None:
        os.makedirs(os.path.dirname(save_to), exist_ok=True)
        model.save(save_to)
    if not tfbin.sharpness.quantizers(model):  # float, or larq's ste_sign: one form only
        row["hard_accuracy"] = row["soft_accuracy"]
    else:
        with tfbin.hard(model):
            row["hard_accuracy"] = accuracy(model, score)
    row["soft_hard_gap"] = round(row["soft_accuracy"] - row["hard_accuracy"], 4)
    if arm not in FLOAT_ARMS:
        # What `tfbin train` deploys (tfbin.regimen), checked on the first training images, the
        # same for every arm of a seed. Recalibrated anyway when that check refuses, for the
        # "recal." figure: the same cached batches give the same statistics.
        batches = train.take(regimen.RECALIBRATION_BATCHES).cache()
        check = data.load(dataset, "train").take(regimen.CHECK_IMAGES).batch(1000).cache()
        report = regimen.recalibrate_if_it_helps(model, batches, check=check)
        with tfbin.hard(model):
            row["hard_accuracy_deployed"] = accuracy(model, score)
        if report["applied"]:
            row["hard_accuracy_recalibrated"] = row["hard_accuracy_deployed"]
        else:
            tfbin.recalibrate(model, batches, steps=None)
            with tfbin.hard(model):
                row["hard_accuracy_recalibrated"] = accuracy(model, score)
        row["recalibration_check"] = {"train_hard_accuracy_before": report["check_accuracy_before"],
                                      "train_hard_accuracy_after": report["check_accuracy_after"]}
    return row


def label(row):
    """The arm, with its recipe overrides if any: `abr symmetric=true`."""
    over = row.get("overrides") or {}
    decay = [f"lr_decay={row['lr_decay']}"] if row.get("lr_decay", "constant") != "constant" else []
    return " ".join([row["arm"], *(f"{k}={json.dumps(v)}" for k, v in sorted(over.items())), *decay])


def summarize(rows):
    summary = {}
    for dataset in sorted({r["dataset"] for r in rows}):
        ste = [r["step_ms"] for r in rows if r["dataset"] == dataset and r["arm"] == "ste"]
        for arm in sorted({label(r) for r in rows}, key=lambda a: (ARMS.index(a.split()[0]), a)):
            mine = [r for r in rows if r["dataset"] == dataset and label(r) == arm]
            if not mine:
                continue
            hard = [r["hard_accuracy"] for r in mine]
            soft = [r["soft_accuracy"] for r in mine]
            step = statistics.median(r["step_ms"] for r in mine)
            summary.setdefault(dataset, {})[arm] = {
                "runs": len(mine),
                "hard_mean": round(float(np.mean(hard)), 4),
                "hard_std": round(float(np.std(hard, ddof=1)) if len(hard) > 1 else 0.0, 4),
                "soft_mean": round(float(np.mean(soft)), 4),
                "soft_hard_gap_mean": round(float(np.mean(soft) - np.mean(hard)), 4),
                "hard_recalibrated_mean": round(float(np.mean(recal)), 4) if (recal := [r["hard_accuracy_recalibrated"] for r in mine if "hard_accuracy_recalibrated" in r]) else None,
                "hard_recalibrated_std": round(float(np.std(recal, ddof=1)), 4) if len(recal) > 1 else None,
                "hard_deployed_mean": round(float(np.mean(deployed)), 4) if (deployed := [r["hard_accuracy_deployed"] for r in mine if "hard_accuracy_deployed" in r]) else None,
                "hard_deployed_std": round(float(np.std(deployed, ddof=1)), 4) if len(deployed) > 1 else None,
                "deployed_runs": len(deployed),
                "step_ms_median": round(step, 1),
                "step_ratio_vs_ste": round(step / statistics.median(ste), 3) if ste else None,
            }
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/results/accuracy.json")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--datasets", default="fashion_mnist,mnist")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="training epochs (default 3, the benchmark's budget)")
    parser.add_argument("--validation", type=int, default=0,
                        help="hold out the last N training images and score on them instead of the test set")
    parser.add_argument("--train-images", type=int, default=None,
                        help="train on only the first N training images (a screening run: 3 epochs of fewer steps); "
                             "default all but the --validation ones")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=JSON",
                        help="a recipe argument for every recipe arm, e.g. --override symmetric=true (recorded per run)")
    parser.add_argument("--lr-decay", choices=["constant", "cosine"], default="constant",
                        help="Adam's learning rate constant, or cosine-decayed to 0 over the run (recorded per run)")
    parser.add_argument("--teacher-dir", default=os.path.expanduser("~/.cache/tfbin-bench/teachers"))
    args = parser.parse_args()
    unknown = sorted(set(args.arms.split(",")) - set(ARMS))
    if unknown:
        parser.error(f"unknown arm(s) {unknown}; the arms are {ARMS}")
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if not 0 <= args.validation < TRAIN_IMAGES:
        parser.error(f"--validation must be in [0, {TRAIN_IMAGES}), got {args.validation}")
    train_images = TRAIN_IMAGES - args.validation if args.train_images is None else args.train_images
    if not 0 < train_images <= TRAIN_IMAGES - args.validation:
        parser.error(f"--train-images must be in [1, {TRAIN_IMAGES - args.validation}] (the images not held out), got {args.train_images}")
    try:
        overrides = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.override)}
    except ValueError as err:
        parser.error(f"--override must be KEY=JSON (e.g. v_end=100 or symmetric=true): {err}")
    path = os.path.join(ROOT, args.out)
    previous = json.load(open(path)) if os.path.exists(path) else {}
    same_protocol = (previous.get("train_samples") == train_images and previous.get("validation", 0) == args.validation
                     and previous.get("epochs", EPOCHS) == args.epochs)
    rows = list(previous.get("runs", [])) if same_protocol else []
    key = lambda arm, dataset, seed, over, decay: (arm, dataset, seed, json.dumps(over, sort_keys=True), decay)  # noqa: E731
    row_key = lambda r: key(r["arm"], r["dataset"], r["seed"], r.get("overrides", {}), r.get("lr_decay", "constant"))  # noqa: E731
    # A binary run made before the recalibration check was recorded lacks its deployed figure:
    # it is run again, and the new row replaces it.
    done = {row_key(r) for r in rows if r["arm"] in FLOAT_ARMS or "hard_accuracy_deployed" in r}
    started = time.time()
    for seed in (int(s) for s in args.seeds.split(",")):
        for dataset in args.datasets.split(","):
            for arm in args.arms.split(","):
                over = overrides if arm not in FLOAT_ARMS else {}
                if key(arm, dataset, seed, over, args.lr_decay) in done:
                    continue
                save_to = None
                if arm == "float_linear" and args.lr_decay == "constant":  # the teachers irnet_kd reads
                    save_to = _teacher_path(dataset, seed, args)
                row = run(arm, dataset, seed, args, save_to=save_to, overrides=over, lr_decay=args.lr_decay)
                row["overrides"] = over
                if args.lr_decay != "constant":
                    row["lr_decay"] = args.lr_decay
                rows = [r for r in rows if row_key(r) != row_key(row)] + [row]
                done.add(key(arm, dataset, seed, over, args.lr_decay))
                print(f"seed {seed} {dataset} {arm}: hard {row['hard_accuracy']:.4f} soft {row['soft_accuracy']:.4f} "
                      f"{row['step_ms']:.0f} ms/step ({time.time() - started:.0f} s)", flush=True)
                result = {
                    "command": ("python bench/accuracy_bench.py " + " ".join(sys.argv[1:])).strip(),
                    "model": "fmnist_small", "epochs": args.epochs, "batch_size": BATCH, "lr": LR,
                    "train_samples": train_images,
                    "validation": args.validation,
                    "scored_on": f"the last {args.validation} training images" if args.validation else "the 10,000-image test set",
                    "host": {"cpus": os.cpu_count(), "machine": platform.machine()},
                    "versions": {"tensorflow": tf.__version__},
                    "wall_seconds_this_invocation": round(time.time() - started, 1),
                    "runs": rows,
                    "summary": summarize(rows),
                }
                _io.write_text_atomic(path, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
