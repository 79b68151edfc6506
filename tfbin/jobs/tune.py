"""`tfbin tune`: a search of a recipe's hyperparameters on a built-in dataset, resumable.

Writes into `out/`: `best_recipe.json` (the best recipe, its schedules spanning `max_epochs`, its
learning rate and its decay in `params["training"]`; `tfbin train --recipe out/best_recipe.json` trains with
it), `summary.json` (every trial) and `trials.png` (the objective against each hyperparameter,
the chosen trial marked), and prints a table row per finished trial. The objective is the hard
accuracy on the last `validation_samples` training images: the test set is never read.
"""
from __future__ import annotations

import json
import os
import time


from tfbin import _io, data, models
from tfbin.data import adapt
from tfbin.jobs import plots
from tfbin.recipes import Range
from tfbin.tuning import BayesianOptimization, Hyperband, RandomSearch, SearchSpace

__all__ = ["tune", "TUNERS"]

TUNERS = ("hyperband", "random", "bayesian")


def _splits(dataset, train_samples, validation_samples):
    if dataset not in data.available():
        raise ValueError(f"Unknown dataset {dataset!r}; the built-in datasets are {data.available()}.")
    total = data.info(dataset).splits["train"].num_examples
    if validation_samples < 1 or validation_samples >= total:
        raise ValueError(f"--validation-samples must be in [1, {total - 1}], got {validation_samples}.")
    available = total - validation_samples
    train_samples = available if train_samples is None else train_samples
    if not 1 <= train_samples <= available:
        raise ValueError(f"--train-samples must be in [1, {available}] (the rest of the split validates), got {train_samples}.")
    # Validation is held out of the training split: the test set stays unseen by the search.
    return data.load(dataset, f"train[:{train_samples}]"), data.load(dataset, f"train[{total - validation_samples}:]"), train_samples


def _check_settings(out, settings):
    """`out/tune.json` records what a search runs with; a resume must run with the same, or its
    trials would be read as another search's."""
    path = os.path.join(out, "tune.json")
    if os.path.exists(path):
        with open(path) as f:
            before = json.load(f)
        differ = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
        if differ:
            what = "; ".join(f"{k}: {old!r} then, {new!r} now" for k, (old, new) in differ.items())
            raise ValueError(f"{out} holds a search with other settings ({what}); resume it with the same options, or choose another --out.")
        return
    if os.path.isdir(os.path.join(out, "trials")):
        raise ValueError(f"{out} holds a search of an earlier tfbin version (no tune.json); choose another --out.")
    os.makedirs(out, exist_ok=True)
    _io.write_text_atomic(path, json.dumps(settings, indent=2) + "\n")


def tune(
    model: str = "fmnist_small",
    recipe: str = "irnet",
    dataset: str = "fashion_mnist",
    trials: int = 10,
    max_epochs: int = 3,
    out: str = "search",
    tuner: str = "hyperband",
    batch_size: int = 128,
    seed: int = 0,
    train_samples: int | None = None,
    validation_samples: int = 10_000,
    print_fn=print,
) -> dict:
    """Search `recipe`'s space for `model` on `dataset`; every trial trains `max_epochs` epochs
    (`hyperband`: on a fraction of the training data at its lower rungs; `trials` applies to
    `random` and `bayesian`). Run again with the same `out` to resume: finished trials are kept
    and the interrupted one runs again."""
    if tuner not in TUNERS:
        raise ValueError(f"Unknown tuner {tuner!r}; choose from {list(TUNERS)}.")
    if trials < 1 or max_epochs < 1:
        raise ValueError(f"Need trials >= 1 and max epochs >= 1; got {trials}, {max_epochs}.")
    space = SearchSpace(recipe)
    if model not in models.available():
        raise ValueError(f"Unknown model {model!r}; the models are {models.available()}.")
    shape = models.default_input_shape(model)
    train, validation, train_samples = _splits(dataset, train_samples, validation_samples)
    train = adapt(train, shape).cache().shuffle(min(train_samples, 60_000), seed=seed).batch(batch_size).prefetch(2)
    validation = adapt(validation, shape).batch(512).cache().prefetch(2)
    _check_settings(out, {"model": model, "recipe": recipe, "dataset": dataset, "tuner": tuner, "max_epochs": max_epochs,
                          "trials": trials if tuner != "hyperband" else None, "batch_size": batch_size, "seed": seed,
                          "train_samples": train_samples, "validation_samples": validation_samples, "space": space.get_config()})
    common = dict(model=model, space=space, max_epochs=max_epochs, directory=out, project_name="trials", seed=seed, print_fn=print_fn)
    if tuner == "random":
        search = RandomSearch(max_trials=trials, **common)
    elif tuner == "bayesian":
        search = BayesianOptimization(max_trials=trials, **common)
    else:
        search = Hyperband(**common)
    start = time.time()
    search.search(train, validation, verbose=0)
    # keras-tuner's documented distributed contract: the oracle's address in the environment, and
    # the chief the tuner whose KERASTUNER_TUNER_ID names it (its `distribute.utils`, not public API).
    if "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in os.environ.get("KERASTUNER_TUNER_ID", ""):
        # A worker: the chief's oracle holds the trials, and the chief writes the results.
        if print_fn is not None:
            print_fn(f"  worker {os.environ.get('KERASTUNER_TUNER_ID')}: no trial left; the chief writes {out}/best_recipe.json")
        return {"worker": os.environ.get("KERASTUNER_TUNER_ID"), "seconds": round(time.time() - start, 1)}
    best = search.best_trial()
    recipe_obj = search.best_recipe()
    _io.write_text_atomic(os.path.join(out, "best_recipe.json"), recipe_obj.to_json() + "\n")
    rows = [
        {"trial": t.trial_id, "status": t.status, "score": t.score, "data": search.data_fraction(t),
         "seconds": t.metrics.get_last_value("trial_seconds") if t.metrics.exists("trial_seconds") else None,
         "values": {k: v for k, v in t.hyperparameters.values.items() if not k.startswith("tuner/")},
         "best": t.trial_id == best.trial_id}
        for t in sorted(search.oracle.trials.values(), key=lambda t: t.trial_id)  # reloaded trials come unordered
    ]
    log_scale = [name for name, (spec, _) in space.entries.items() if isinstance(spec, Range) and spec.log]
    plots.trials(rows, os.path.join(out, "trials.png"), log_scale=log_scale)
    summary = {
        "model": model, "recipe": recipe, "dataset": dataset, "tuner": tuner, "max_epochs": max_epochs,
        "objective": "val_hard_accuracy (max)", "train_samples": train_samples, "validation_samples": validation_samples,
        "best_trial": best.trial_id, "best_score": best.score, "best_values": rows[[r["trial"] for r in rows].index(best.trial_id)]["values"],
        "trial_seconds": round(sum(r["seconds"] or 0 for r in rows), 1),
        "search_seconds_this_invocation": round(time.time() - start, 1), "trials": rows,
    }
    _io.write_text_atomic(os.path.join(out, "summary.json"), json.dumps(summary, indent=2, default=str) + "\n")
    if print_fn is not None:
        print_fn(f"\n  best trial {best.trial_id}: val_hard_accuracy {best.score:.4f} ({len(rows)} trials, {summary['trial_seconds']:.0f} s of training)")
        for key, value in summary["best_values"].items():
            print_fn(f"    {key:14s} {value}")
        print_fn(f"  written     {os.path.join(out, 'best_recipe.json')}, summary.json, trials.png")
        print_fn(f"  train it    tfbin train --recipe {os.path.join(out, 'best_recipe.json')} --epochs {max_epochs}")
    return summary
