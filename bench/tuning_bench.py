"""Hyperparameter search against the recipes' defaults, at the accuracy benchmark's budget.

    python bench/tuning_bench.py [--recipes irnet,self_binarizing] [--seeds 0,1,2]
                                 [--out bench/results/tuning.json]

For each recipe:

1. Search: `tfbin tune`'s job (`tfbin.jobs.tune.tune`), Hyperband over the fraction of training
   data (budget 9, factor 3: 23 trials, each 3 epochs with its schedules whole) on the
   recipe's own search ranges plus Adam's lr, `fmnist_small`, trained on the first 50,000
   Fashion-MNIST training images and scored by hard accuracy on the last 10,000 (the test set is
   not read). Its cost: the trials' training seconds against one full training run of the
   accuracy benchmark (`train_seconds` of the recipe's default runs there).
2. Final training, scored once: the best recipe (its schedules rebuilt for 3 epochs, its lr) on
   all 60,000 training images, hard accuracy on the 10,000-image test set, per seed, by the
   accuracy benchmark's own `run` (so the rows are comparable with
   `bench/results/accuracy.json`, whose default-recipe runs of the same seeds are the baseline;
   seeds missing there are run here).

The searched recipe (with its lr and decay) is also written to `searched/<recipe>.json` beside
`--out`, ready for `tfbin train --recipe bench/results/searched/irnet.json`.

Resumable by phase: a finished search and each finished seed are kept in `--out` (written
atomically after each); an interrupted search resumes from its keras-tuner directory in
`--work-dir` on the same machine. Budget: about 1 h 15 min per recipe on 2 cores.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import tfbin  # noqa: E402,F401
import tensorflow as tf  # noqa: E402
from tfbin import _io, recipes, tuning  # noqa: E402
from tfbin.jobs.tune import tune  # noqa: E402

import accuracy_bench  # noqa: E402

# The search trains on 40,000 images (validation: the last 10,000): 23 Hyperband trials then cost
# 9.67 runs on 40,000 images, 6.4 runs on 60,000, about 7 with building and scoring: under 8x.
SEARCH_TRAIN, VALIDATION, EPOCHS = 40_000, 10_000, 3


def stats(values):
    return {
        "runs": [round(v, 4) for v in values], "mean": round(float(np.mean(values)), 4),
        "std": round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, 4),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/results/tuning.json")
    parser.add_argument("--recipes", default="irnet,self_binarizing")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--accuracy", default="bench/results/accuracy.json", help="the accuracy benchmark's results (the defaults' runs)")
    parser.add_argument("--work-dir", default=os.path.expanduser("~/.cache/tfbin-bench/tuning"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    path = os.path.join(ROOT, args.out)
    result = json.load(open(path)) if os.path.exists(path) else {}
    if result.get("protocol") != "hyperband-data-fraction":
        result = {}  # an earlier protocol's results: start over
    result.update({
        "command": ("python bench/tuning_bench.py " + " ".join(sys.argv[1:])).strip(),
        "protocol": "hyperband-data-fraction", "model": "fmnist_small", "dataset": "fashion_mnist",
        "epochs": EPOCHS, "search_train_samples": SEARCH_TRAIN, "validation_samples": VALIDATION,
        "full_run_train_samples": accuracy_bench.TRAIN_IMAGES,
        "host": {"cpus": os.cpu_count(), "machine": platform.machine()}, "versions": {"tensorflow": tf.__version__},
    })
    result.setdefault("recipes", {})

    def save():
        _io.write_text_atomic(path, json.dumps(result, indent=1, default=str) + "\n")

    bench_args = argparse.Namespace(validation=0, teacher_dir=None)
    for name in args.recipes.split(","):
        entry = result["recipes"].setdefault(name, {})
        if entry.get("seeds") == seeds and "gain" in entry:
            continue  # finished: its defaults are the ones before the search (they may have changed since)
        entry.setdefault("pre_search_defaults", {k: d for k, (_, d) in tuning.SearchSpace(name).entries.items()})
        if "search" not in entry:
            start = time.time()
            summary = tune(model="fmnist_small", recipe=name, dataset="fashion_mnist", max_epochs=EPOCHS,
                           out=os.path.join(args.work_dir, name), tuner="hyperband", train_samples=SEARCH_TRAIN,
                           validation_samples=VALIDATION)
            shipped = [r for r in summary["trials"] if r["values"] == entry["pre_search_defaults"] and r["score"] is not None]
            entry["search"] = {
                "trials": len(summary["trials"]), "trial_seconds": summary["trial_seconds"],
                "wall_seconds_last_invocation": round(time.time() - start, 1),
                "best_trial": summary["best_trial"], "best_validation_hard_accuracy": summary["best_score"],
                "best_values": summary["best_values"],
                "objective": "val_hard_accuracy after the BN recalibration check",
                # The defaults open the first bracket and the last: their full-data trial.
                "defaults_validation_hard_accuracy": max(shipped, key=lambda r: r["data"])["score"],
                "defaults_data_fraction": max(shipped, key=lambda r: r["data"])["data"],
                "table": [{k: r[k] for k in ("trial", "data", "score", "seconds", "values")} for r in summary["trials"]],
            }
            save()
        best = dict(entry["search"]["best_values"])
        lr, lr_decay = best.pop("lr"), best.pop("lr_decay", "constant")
        searched = entry.setdefault("searched_runs", [])
        defaults_here = entry.setdefault("default_runs_run_here", [])
        accuracy_path = os.path.join(ROOT, args.accuracy)
        shared = json.load(open(accuracy_path))["runs"] if os.path.exists(accuracy_path) else []
        for seed in seeds:
            if not any(r["seed"] == seed for r in searched):
                row = accuracy_bench.run(name, "fashion_mnist", seed, bench_args, overrides=best, lr=lr, lr_decay=lr_decay)
                searched.append({**row, "overrides": best, "lr": lr, "lr_decay": lr_decay})
                save()
            default_rows = [r for r in shared if r["arm"] == name and r["dataset"] == "fashion_mnist" and not r.get("overrides")]
            if not any(r["seed"] == seed for r in default_rows + defaults_here):
                defaults_here.append(accuracy_bench.run(name, "fashion_mnist", seed, bench_args))
                save()
        default_hard = {r["seed"]: r["hard_accuracy"] for r in default_rows + defaults_here if r["seed"] in seeds}
        searched_hard = {r["seed"]: r["hard_accuracy"] for r in searched if r["seed"] in seeds}
        full_run = [r["train_seconds"] for r in default_rows + defaults_here]
        entry["searched_hard_test_accuracy"] = stats([searched_hard[s] for s in seeds])
        entry["default_hard_test_accuracy"] = stats([default_hard[s] for s in seeds])
        gain = entry["searched_hard_test_accuracy"]["mean"] - entry["default_hard_test_accuracy"]["mean"]
        spread = max(entry["searched_hard_test_accuracy"]["std"], entry["default_hard_test_accuracy"]["std"])
        entry["seeds"] = seeds
        entry["gain"] = round(gain, 4)
        entry["gain_exceeds_seed_spread"] = bool(gain > spread)
        entry["search_cost_vs_one_training_run"] = round(entry["search"]["trial_seconds"] / float(np.median(full_run)), 2)
        searched_recipe = recipes.get(name, epochs=EPOCHS, **best)
        searched_recipe.params["training"] = {"lr": lr, "lr_decay": lr_decay}
        entry["searched_recipe"] = json.loads(searched_recipe.to_json())
        # The same recipe as `tfbin train --recipe <file>` reads it (tfbin tune's best_recipe.json).
        os.makedirs(os.path.join(os.path.dirname(path), "searched"), exist_ok=True)
        _io.write_text_atomic(os.path.join(os.path.dirname(path), "searched", f"{name}.json"), searched_recipe.to_json() + "\n")
        save()
        print(json.dumps({k: entry[k] for k in ("searched_hard_test_accuracy", "default_hard_test_accuracy", "gain", "search_cost_vs_one_training_run")}), flush=True)


if __name__ == "__main__":
    main()
