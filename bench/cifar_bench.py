"""CIFAR-10, where the papers measure: ResNet-20 (or VGG-Small) 1W/1A with every recipe, larq's
baselines and the float net, at a budget a 2-core machine affords.

    python bench/cifar_bench.py [--model resnet20] [--arms irnet,ste,...] [--seeds 0,1] [--epochs 8]
                                [--validation 5000] [--train-images N] [--out bench/results/cifar10.json]

Protocol (IR-Net's official CIFAR-10 code where it fits the budget): batch 128, SGD with momentum
0.9 and weight decay 1e-4 (Keras's decoupled form), learning rate 0.1 cosine-decayed to 0 over the
run (the papers run 400 epochs; `--epochs` here), 4-pixel padding + random crop + horizontal
flip and per-channel normalization for training (`tfbin.data.cifar_preprocess`), normalization
only for scoring. The recipes' schedules span the run. Arms: `float` (the papers' float rows: He
et al.'s ResNet-20, `models.small.float_resnet20`; VGG-Small with ReLU in place of hardtanh), larq's baselines (`tfbin.recipes.LARQ_BASELINES`)
and the paper recipes. Every binary run records soft, hard and deployed accuracy (the deployed
model: BatchNorm recalibrated on 100 training batches when its hard accuracy on 2,000 training
images does not drop, as `tfbin train` ships it), the median step time of epochs 2+, and its
export: the number of binarized layers that became `LceBconv2d`, the TFLite/Keras argmax
agreement on every scored image, and the tie-aware parity on them (`tfbin.export.convert`: the
tie-free fraction and the disagreements that no near-threshold sign explains). `--validation N` holds out the last N training images and
scores on them (choices are made there); without it the 10,000 test images score the run.
`--reexport` measures the export figures of the finished runs (of `--arms`) again from their kept weights
(below), e.g. after a change of the exporter or of the parity rule; such a row records the
commit (`exported_at`).
Results are written after every run (atomically) and a rerun skips runs already done. A run
cut off mid-way (the session ends, SIGTERM) continues from its last finished epoch: Keras's
`BackupAndRestore` keeps each run's checkpoint in `~/.cache/tfbin/cifar_bench/` (or
`$TFBIN_BENCH_BACKUP`) until the run is written; the row records the epoch it resumed at (the
resumed epochs reshuffle from the seed again, so such a run is not bitwise the uninterrupted one).
The deployed weights of every finished run stay in `<that folder>/trained/<results file>_<arm>_seed<seed>.weights.h5`
(rebuild with the same `--model`/`--epochs` and `load_weights`), so its export can be re-examined
without retraining.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import tfbin  # noqa: E402
import tensorflow as tf  # noqa: E402
from tfbin import _io, data, export, models, recipes, regimen  # noqa: E402
from tfbin.introspect import binarized_layers  # noqa: E402
from tfbin.models import small  # noqa: E402
from accuracy_bench import StepTimer  # noqa: E402  (epochs 2+ timed, as there)

TRAIN_IMAGES, BATCH, LR, MOMENTUM, WEIGHT_DECAY = 50_000, 128, 0.1, 0.9, 1e-4
CHECK_IMAGES = 2000
# The papers' float rows: He et al.'s ResNet-20, and VGG-Small with ReLU in place of hardtanh.
FLOAT_NETS = {"resnet20": small.float_resnet20, "vgg_small": lambda: small.vgg_small(activation="relu")}


def splits(seed, validation, train_images, manual_dir):
    full = data.load("cifar10", "train", manual_dir=manual_dir)
    n = TRAIN_IMAGES - validation
    kept = min(n, train_images or n)
    train = data.cifar_preprocess(full.take(kept).cache().shuffle(kept, seed=seed), training=True, seed=seed)
    scored = full.skip(n) if validation else data.load("cifar10", "test", manual_dir=manual_dir)
    check = data.cifar_preprocess(full.take(CHECK_IMAGES), training=False)
    return (train.batch(BATCH).prefetch(2), data.cifar_preprocess(scored, training=False).cache(),
            check.batch(500).cache(), kept)


def accuracy_compiled(model, scored):
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return accuracy(model, scored)


def trained_weights(path, arm, seed):
    """Where a finished run's deployed weights are kept (`run`; read by `--reexport`)."""
    backup = backup_dir(path, arm, seed)
    return os.path.join(os.path.dirname(os.path.dirname(backup)), "trained",
                        f"{os.path.basename(os.path.dirname(backup))}_{arm}_seed{seed}.weights.h5")


def accuracy(model, scored):
    return float(model.evaluate(scored.batch(500), verbose=0, return_dict=True)["accuracy"])


def build(arm, model_name, epochs):
    if arm == "float":
        return FLOAT_NETS[model_name](), []
    return models.build(model_name, arm, epochs=epochs)


def backup_dir(path, arm, seed):
    root = os.environ.get("TFBIN_BENCH_BACKUP") or os.path.join(os.path.expanduser("~"), ".cache", "tfbin", "cifar_bench")
    return os.path.join(root, os.path.splitext(os.path.basename(path))[0], f"{arm}_seed{seed}")


class ResumeMark(tf.keras.callbacks.Callback):
    """Notes the epoch `fit` starts at: 0, or where `BackupAndRestore` put a resumed run."""

    def __init__(self):
        super().__init__()
        self.first_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch


def run(arm, seed, args, manual_dir, backup, path):
    tf.keras.utils.set_random_seed(seed)
    train, scored, check, kept = splits(seed, args.validation, args.train_images, manual_dir)
    model, callbacks = build(arm, args.model, args.epochs)
    steps = args.epochs * int(train.cardinality())
    schedule = tf.keras.optimizers.schedules.CosineDecay(LR, steps)
    optimizer = tf.keras.optimizers.SGD(schedule, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    timer, mark = StepTimer(), ResumeMark()
    start = time.time()
    restore = tf.keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False)
    model.fit(train, epochs=args.epochs, callbacks=[restore, *callbacks, timer, mark], verbose=2 if args.verbose else 0)
    row = {
        "arm": arm, "seed": seed, "train_seconds": round(time.time() - start, 1), "resumed_at_epoch": mark.first_epoch,
        "step_ms": round(1000 * statistics.median(timer.times), 1) if timer.times else None,
        "soft_accuracy": round(accuracy(model, scored), 4),
    }
    inner = tfbin.unwrap(model)
    inner.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if not tfbin.sharpness.quantizers(inner):
        row["hard_accuracy"] = row["soft_accuracy"]
    else:
        with tfbin.hard(inner):
            row["hard_accuracy"] = round(accuracy(inner, scored), 4)
    row["soft_hard_gap"] = round(row["soft_accuracy"] - row["hard_accuracy"], 4)
    if arm == "float":
        return row
    report = regimen.recalibrate_if_it_helps(inner, train.take(100).cache(), check=check)
    weights = trained_weights(path, arm, seed)
    os.makedirs(os.path.dirname(weights), exist_ok=True)
    inner.save_weights(weights)
    with tfbin.hard(inner):
        row["hard_accuracy_deployed"] = round(accuracy(inner, scored), 4)
    row["recalibration_applied"] = report["applied"]
    row.update(export_figures(inner, scored))
    return row


def export_figures(inner, scored) -> dict:
    """The export of the deployed model: its binary convs, TFLite accuracy and agreement with
    Keras, and the tie-aware parity (`tfbin.export.convert`) on every scored image."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.tflite")
        # Tie-aware parity on every scored image: which disagreements are rounding at a threshold.
        images = np.concatenate([x.numpy() for x, _ in scored.batch(500)])
        converted = export.convert(inner, path, sample_inputs=images, latency=False)
        with open(path, "rb") as f:
            tflite = export.tflite_accuracy(f.read(), scored, inner, batch_size=500)
    return {
        "binarized_layers": len(binarized_layers(inner)),
        "lce_bconv_layers": sum(r["lce_op"] == "LceBconv2d" for r in converted.layers),
        "tflite_accuracy": round(tflite["tflite_accuracy"], 4),
        "tflite_keras_agreement": round(tflite["agreement"], 4),
        "tie_free_fraction": round(converted.parity["tie_free_fraction"], 4),
        "unexplained_mismatches": converted.parity["unexplained_mismatches"],
        "tflite_bytes": converted.size_bytes,
    }


def reexport(rows, args, manual_dir, path):
    """`--reexport`: the export figures of every run whose deployed weights were kept, again
    (e.g. after a change of the export or of its parity rule), with the commit that measured them."""
    _, scored, _, _ = splits(0, args.validation, args.train_images, manual_dir)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    for row in rows:
        weights = trained_weights(path, row["arm"], row["seed"])
        if row["arm"] == "float" or row["arm"] not in args.arms.split(",") or not os.path.exists(weights):
            continue
        model, _ = build(row["arm"], args.model, args.epochs)
        inner = tfbin.unwrap(model)
        inner.load_weights(weights)
        with tfbin.hard(inner):
            deployed = round(accuracy_compiled(inner, scored), 4)
        if abs(deployed - row["hard_accuracy_deployed"]) > 5e-4:
            raise SystemExit(f"{weights}: deployed accuracy {deployed}, the row says {row['hard_accuracy_deployed']}: not that run's weights")
        row.update(export_figures(inner, scored), exported_at=commit)
        print(f"seed {row['seed']} {row['arm']}: re-exported, {row['unexplained_mismatches']} unexplained, "
              f"tie-free {row['tie_free_fraction']}, agreement {row['tflite_keras_agreement']}", flush=True)


def summarize(rows, arms):
    summary = {}
    for arm in [a for a in arms if any(r["arm"] == a for r in rows)]:
        mine = [r for r in rows if r["arm"] == arm]
        hard = [r["hard_accuracy"] for r in mine]
        soft = [r["soft_accuracy"] for r in mine]
        deployed = [r["hard_accuracy_deployed"] for r in mine if "hard_accuracy_deployed" in r]
        std = lambda v: round(float(np.std(v, ddof=1)), 4) if len(v) > 1 else None  # noqa: E731
        summary[arm] = {
            "runs": len(mine),
            "seeds": sorted(r["seed"] for r in mine),
            "hard_mean": round(float(np.mean(hard)), 4),
            "hard_std": std(hard),
            "soft_mean": round(float(np.mean(soft)), 4),
            "soft_hard_gap_mean": round(float(np.mean(soft) - np.mean(hard)), 4),
            "hard_deployed_mean": round(float(np.mean(deployed)), 4) if deployed else None,
            "hard_deployed_std": std(deployed),
            "tflite_agreement_min": min((r["tflite_keras_agreement"] for r in mine if "tflite_keras_agreement" in r), default=None),
            "all_binarized_as_lce_bconv": all(r["lce_bconv_layers"] == r["binarized_layers"] for r in mine if "lce_bconv_layers" in r),
            "step_ms_median": statistics.median(r["step_ms"] for r in mine if r["step_ms"]) if any(r["step_ms"] for r in mine) else None,
        }
    baselines = [a for a in recipes.LARQ_BASELINES if a in summary]
    if baselines:
        best = max(baselines, key=lambda a: summary[a]["hard_deployed_mean"] or summary[a]["hard_mean"])
        summary["larq_best"] = {"arm": best, **{k: summary[best][k] for k in ("hard_mean", "hard_deployed_mean")}}
    return summary


def write(path, rows, args, protocol, arms, command=None):
    result = {
        "command": command or ("python bench/cifar_bench.py " + " ".join(sys.argv[1:])).strip(),
        **protocol,
        "data": data.source("cifar10"),
        "batch_size": BATCH,
        "optimizer": f"SGD(lr {LR} cosine to 0, momentum {MOMENTUM}, weight_decay {WEIGHT_DECAY})",
        "scored_on": f"the last {args.validation} training images" if args.validation else "the 10,000-image test set",
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "device": "CPU"},
        "versions": {"tensorflow": tf.__version__},
        "runs": rows,
        "summary": {"cifar10": summarize(rows, arms)},
    }
    _io.write_text_atomic(path, json.dumps(result, indent=1) + "\n")


def main():
    arms = ["float", *recipes.LARQ_BASELINES, *[r for r in recipes.available() if r not in recipes.LARQ_BASELINES]]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(FLOAT_NETS), default="resnet20")
    parser.add_argument("--arms", default=",".join(arms))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--validation", type=int, default=0, help="hold out the last N training images and score on them")
    parser.add_argument("--train-images", type=int, default=None, help="train on the first N images only (a smoke run)")
    parser.add_argument("--manual-dir", default=os.path.join(ROOT, "..", "shared", "datasets", "cifar10-jpeg.tar.gz"),
                        help="where the CIFAR-10 images are if it is not prepared yet")
    parser.add_argument("--out", default=None, help="default: bench/results/cifar10[_MODEL][_val].json")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--reexport", action="store_true", help="measure the export of the runs already done again, from their kept weights")
    args = parser.parse_args()
    unknown = sorted(set(args.arms.split(",")) - set(arms))
    if unknown:
        parser.error(f"unknown arm(s) {unknown}; the arms are {arms}")
    if args.epochs < 1 or not 0 <= args.validation < TRAIN_IMAGES:
        parser.error("--epochs must be >= 1 and --validation in [0, 50000)")
    suffix = ("" if args.model == "resnet20" else f"_{args.model}") + ("_val" if args.validation else "")
    path = args.out or os.path.join(ROOT, "bench", "results", f"cifar10{suffix}.json")
    protocol = {"model": args.model, "epochs": args.epochs, "validation": args.validation, "train_images": args.train_images}
    previous = json.load(open(path)) if os.path.exists(path) else {}
    rows = previous.get("runs", []) if all(previous.get(k) == v for k, v in protocol.items()) else []
    manual_dir = args.manual_dir if os.path.exists(args.manual_dir) else None
    if args.reexport:
        reexport(rows, args, manual_dir, path)
        write(path, rows, args, protocol, arms, previous.get("command"))
        return
    started = time.time()
    for seed in (int(s) for s in args.seeds.split(",")):
        for arm in args.arms.split(","):
            if any(r["arm"] == arm and r["seed"] == seed for r in rows):
                continue
            backup = backup_dir(path, arm, seed)
            row = run(arm, seed, args, manual_dir, backup, path)
            rows.append(row)
            print(f"seed {seed} {arm}: hard {row['hard_accuracy']:.4f} deployed {row.get('hard_accuracy_deployed')} "
                  f"soft {row['soft_accuracy']:.4f}, {row['step_ms']} ms/step ({time.time() - started:.0f} s)", flush=True)
            write(path, rows, args, protocol, arms)
            shutil.rmtree(backup)


if __name__ == "__main__":
    main()
