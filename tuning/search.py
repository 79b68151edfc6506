"""`tfbin tune`: a schedule search on a built-in dataset, resumable, with its results as files."""
from __future__ import annotations

import json
import os
import time

from tfbin import _io, data, models
from tfbin.data import adapt
from tfbin.tuning import BayesianOptimization, Hyperband, RandomSearch, SearchSpace

__all__ = ["tune", "TUNERS"]

TUNERS = ("random", "bayesian", "hyperband")


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
    return data.load(dataset, f"train[:{train_samples}]"), data.load(dataset, f"train[{total - validation_samples}:]")


def tune(
    model: str = "fmnist_small",
    recipe: str = "irnet",
    dataset: str = "fashion_mnist",
    trials: int = 10,
    max_epochs: int = 3,
    out: str = "search",
    tuner: str = "random",
    batch_size: int = 128,
    seed: int = 0,
    train_samples: int | None = None,
    validation_samples: int = 5000,
    print_fn=print,
) -> dict:
    """Search `recipe`'s space for `model` on `dataset`; writes `out/best_recipe.json` and
    `out/summary.json`. Run again with the same `out` to resume: finished trials are kept and the
    interrupted one runs again."""
    if tuner not in TUNERS:
        raise ValueError(f"Unknown tuner {tuner!r}; choose from {list(TUNERS)}.")
    if trials < 1 or max_epochs < 1:
        raise ValueError(f"Need trials >= 1 and max epochs >= 1; got {trials}, {max_epochs}.")
    space = SearchSpace(recipe)
    if model not in models.available():
        raise ValueError(f"Unknown model {model!r}; the models are {models.available()}.")
    shape = models.default_input_shape(model)
    train, validation = _splits(dataset, train_samples, validation_samples)
    train = adapt(train, shape).cache().shuffle(10_000, seed=seed).batch(batch_size).prefetch(2)
    validation = adapt(validation, shape).batch(512).cache().prefetch(2)
    os.makedirs(out, exist_ok=True)
    common = dict(model=model, space=space, directory=out, project_name="trials", seed=seed)
    if tuner == "random":
        search = RandomSearch(max_trials=trials, max_epochs=max_epochs, **common)
    elif tuner == "bayesian":
        search = BayesianOptimization(max_trials=trials, max_epochs=max_epochs, **common)
    else:
        search = Hyperband(max_epochs=max_epochs, **common)
    start = time.time()
    search.search(train, validation, verbose=1 if print_fn is not None else 0)
    best = search.oracle.get_best_trials(1)[0]
    recipe_obj = search.best_recipe()
    _io.write_text_atomic(os.path.join(out, "best_recipe.json"), recipe_obj.to_json() + "\n")
    rows = [
        {"trial": t.trial_id, "status": t.status, "score": t.score,
         "values": {k: v for k, v in t.hyperparameters.values.items()}}
        for t in search.oracle.trials.values()
    ]
    summary = {
        "model": model, "recipe": recipe, "dataset": dataset, "tuner": tuner, "max_epochs": max_epochs,
        "objective": "val_hard_accuracy (max)", "train_samples": train_samples, "validation_samples": validation_samples,
        "best_trial": best.trial_id, "best_score": best.score, "best_values": dict(best.hyperparameters.values),
        "search_seconds_this_invocation": round(time.time() - start, 1), "trials": rows,
    }
    _io.write_text_atomic(os.path.join(out, "summary.json"), json.dumps(summary, indent=2, default=str) + "\n")
    if print_fn is not None:
        print_fn(f"\n  best trial {best.trial_id}: val_hard_accuracy {best.score:.4f}")
        for key, value in best.hyperparameters.values.items():
            print_fn(f"    {key:12s} {value}")
        print_fn(f"  written     {os.path.join(out, 'best_recipe.json')}, {os.path.join(out, 'summary.json')}")
        print_fn(f"  use it      tfbin.recipes.Recipe.from_json(open({os.path.join(out, 'best_recipe.json')!r}).read())")
    return summary
