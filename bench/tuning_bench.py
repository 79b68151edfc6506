"""Schedule search against the recipe's defaults at the same final training budget.

    python bench/tuning_bench.py [--out bench/results/tuning.json] [--trials 4] [--seeds 0,1]

1. Search: `tfbin.tuning.RandomSearch` over `SearchSpace("irnet")` (EDE's t start/end, schedule
   kind, warm-up, hardening, lr) for `fmnist_small` on a Fashion-MNIST subset: `--search-samples`
   training images, 2 epochs per trial, scored by hard accuracy on 2,000 held-out training images.
2. Final training at equal budget: the best recipe (with its lr) and the `irnet` defaults (Adam
   1e-3), each 3 epochs on the first `--final-samples` training images, scored by hard accuracy
   on the whole 10,000-image test set, for each seed.

Reports both hard accuracies (mean ± std over seeds) and the search's wall time. Budget: 60 min.
"""
import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tfbin  # noqa: E402
import tensorflow as tf  # noqa: E402
from tfbin import _io, data, models, tuning  # noqa: E402

EPOCHS, BATCH = 3, 128


def final_accuracy(recipe, lr, seed, samples, test):
    tf.keras.utils.set_random_seed(seed)
    train = data.load("fashion_mnist", f"train[:{samples}]").cache().shuffle(samples, seed=seed).batch(BATCH).prefetch(2)
    model, callbacks = models.build("fmnist_small", recipe)
    model.compile(tf.keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train, epochs=EPOCHS, callbacks=callbacks, verbose=0)
    with tfbin.hard(model):
        return float(model.evaluate(test, verbose=0, return_dict=True)["accuracy"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench/results/tuning.json")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--search-epochs", type=int, default=2)
    parser.add_argument("--search-samples", type=int, default=3000)
    parser.add_argument("--final-samples", type=int, default=5000)
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    started = time.time()
    total = data.info("fashion_mnist").splits["train"].num_examples
    search_train = data.load("fashion_mnist", f"train[:{args.search_samples}]").cache().shuffle(args.search_samples, seed=0).batch(BATCH)
    validation = data.load("fashion_mnist", f"train[{total - 2000}:]").batch(500).cache()
    directory = tempfile.mkdtemp(prefix="tfbin-tuning-bench-")
    try:
        tuner = tuning.RandomSearch("fmnist_small", tuning.SearchSpace("irnet"), max_trials=args.trials,
                                    max_epochs=args.search_epochs, directory=directory, seed=0)
        search_start = time.time()
        tuner.search(search_train, validation, verbose=0)
        search_seconds = time.time() - search_start
        best = tuner.oracle.get_best_trials(1)[0]
        trials = [{"trial": t.trial_id, "score": t.score, "values": dict(t.hyperparameters.values)} for t in tuner.oracle.trials.values()]
        best_values = dict(best.hyperparameters.values)
        # The searched recipe, its schedules stretched to the final budget's epochs.
        best_recipe = tuner.space.recipe_from(best_values, EPOCHS)
    finally:
        shutil.rmtree(directory)
    test = data.load("fashion_mnist", "test").batch(1000).cache()
    seeds = [int(s) for s in args.seeds.split(",")]
    searched = [final_accuracy(best_recipe, best_values["lr"], s, args.final_samples, test) for s in seeds]
    default = [final_accuracy(tfbin.recipes.get("irnet", epochs=EPOCHS), 1e-3, s, args.final_samples, test) for s in seeds]

    def stats(values):
        return {"runs": values, "mean": round(float(np.mean(values)), 4), "std": round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, 4)}

    result = {
        "command": ("python bench/tuning_bench.py " + " ".join(sys.argv[1:])).strip(),
        "model": "fmnist_small", "recipe": "irnet", "tuner": "RandomSearch", "trials": args.trials,
        "search_epochs": args.search_epochs, "search_samples": args.search_samples, "validation_samples": 2000,
        "final_epochs": EPOCHS, "final_samples": args.final_samples, "seeds": seeds,
        "search_seconds": round(search_seconds, 1), "best_trial": best.trial_id, "best_validation_hard_accuracy": best.score,
        "best_values": best_values, "trials_table": trials,
        "searched_hard_test_accuracy": stats(searched), "default_hard_test_accuracy": stats(default),
        "host": {"cpus": os.cpu_count(), "machine": platform.machine()},
        "versions": {"tensorflow": tf.__version__},
        "wall_seconds": round(time.time() - started, 1),
    }
    _io.write_text_atomic(os.path.join(ROOT, args.out), json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: result[k] for k in ("search_seconds", "best_values", "searched_hard_test_accuracy", "default_hard_test_accuracy")}, indent=1, default=str))


if __name__ == "__main__":
    main()
