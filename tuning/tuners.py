"""keras-tuner tuners for tf_keras/larq models, built on its framework-agnostic `BaseTuner`.

keras-tuner 1.4's Keras `Tuner` only drives Keras 3 models (it rejects tf_keras models); its `BaseTuner` and
oracles work with any model. These tuners implement `run_trial`, `save_model` and `load_model`
for tfbin models; keras-tuner's own oracles do the searching (each one's first trial is the
recipe's defaults), so its chief/worker mode (`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP`,
`KERASTUNER_ORACLE_PORT`) works as it does for Keras models.
"""
from __future__ import annotations

import math
import os
import time

import keras_tuner as kt
import tensorflow as tf

from tfbin import models, regimen
from tfbin.batchnorm import batch_norms
from tfbin.mode import hard
from tfbin.auxiliary import unwrap
from tfbin.tuning.space import SearchSpace

__all__ = ["BinaryTuner", "RandomSearch", "BayesianOptimization", "Hyperband", "DEFAULT_OBJECTIVE"]

DEFAULT_OBJECTIVE = kt.Objective("val_hard_accuracy", "max")
# `bn_recalibrated`: 1 when the deployed form got recalibrated BatchNorm statistics, else 0.
METRICS = ("val_hard_accuracy", "val_soft_accuracy", "bn_recalibrated", "trial_seconds")


def _defaults_first(oracle_class):
    """`oracle_class` whose first trial is the space's defaults (the recipe as shipped), so a
    search never reports a best below the defaults it could have tried."""

    class DefaultsFirst(oracle_class):
        def _random_values(self):
            defaults = {hp.name: hp.default for hp in self.hyperparameters.space}
            if not self._tried_so_far and not self._duplicate(defaults):
                return defaults
            return super()._random_values()

    DefaultsFirst.__name__ = DefaultsFirst.__qualname__ = f"DefaultsFirst{oracle_class.__name__}"
    return DefaultsFirst


RandomSearchOracle = _defaults_first(kt.oracles.RandomSearchOracle)
BayesianOptimizationOracle = _defaults_first(kt.oracles.BayesianOptimizationOracle)


class HyperbandOracle(_defaults_first(kt.oracles.HyperbandOracle)):
    """The defaults open the first bracket (on the least data) and, again, the last one (on all
    of it), so that they always get a full-data score to beat."""

    def _random_trial(self, trial_id, bracket):
        rounds = bracket["rounds"]
        if bracket["bracket_num"] == 0 and not rounds[0] and self._current_iteration == 0 and len(rounds) == 1:
            values = {hp.name: hp.default for hp in self.hyperparameters.space}
            # Not through _duplicate: its hash ignores the budget, so this would count as a repeat.
            values.update({"tuner/epochs": self._get_epochs(0, 0), "tuner/initial_epoch": 0,
                           "tuner/bracket": self._current_bracket, "tuner/round": 0})
            rounds[0].append({"past_id": None, "id": trial_id})
            return {"status": "RUNNING", "values": values}
        return super()._random_trial(trial_id, bracket)


class _SpaceHyperModel(kt.HyperModel):
    """Declares the space; `build` returns the recipe (cheap: keras-tuner calls it to explore)."""

    def __init__(self, space: SearchSpace, epochs: int):
        super().__init__()
        self.space, self.epochs = space, epochs

    def build(self, hp):
        return self.space.recipe_from(self.space.declare(hp), self.epochs)


def _objective_name(objective) -> str:
    return objective.name if isinstance(objective, kt.Objective) else str(objective)


def _format(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


class BinaryTuner(kt.engine.base_tuner.BaseTuner):
    """Search a recipe's hyperparameters for a tfbin model; the score is the **hard** accuracy.

    Each trial builds `model` (a `tfbin.models` name) with the recipe the trial's values
    describe, its schedules spanning the `max_epochs` epochs every trial trains (so each trial
    is a whole run: it sharpens, finishes and is scored in the form it deploys in), trains it
    with Adam at the trial's `lr` (cosine-decayed to 0 over the trial when its `lr_decay` is
    `"cosine"`), and reports `val_hard_accuracy` (and `val_soft_accuracy`) on
    the validation data after the last epoch, and its `trial_seconds`. `print_fn` (e.g.
    `print`) gets one table row per finished trial. Weights are saved per trial.

    ```python
    tuner = tfbin.tuning.Hyperband("fmnist_small", tfbin.tuning.SearchSpace("irnet"), max_epochs=3,
                                   directory="search")
    tuner.search(train_batches, validation_batches)
    recipe = tuner.best_recipe()                 # -> tfbin.binarize / tfbin.models.build
    model = tuner.get_best_models(1)[0]          # -> tfbin.export.convert
    ```

    `search(train_data, validation_data)` takes batched `tf.data` datasets (or `(x, y)` arrays).
    """

    def __init__(
        self,
        oracle,
        model: str = "fmnist_small",
        space: SearchSpace | str = "irnet",
        max_epochs: int = 3,
        input_shape=None,
        num_classes: int = 10,
        callbacks=(),
        directory=None,
        project_name=None,
        overwrite: bool = False,
        print_fn=None,
    ):
        if model not in models.available():
            raise ValueError(f"Unknown model {model!r}; the models are {models.available()}.")
        if int(max_epochs) < 1:
            raise ValueError(f"max_epochs must be >= 1, got {max_epochs}.")
        name = _objective_name(oracle.objective)
        if name not in METRICS:
            raise ValueError(f"The objective {name!r} is not a trial metric; a trial reports {list(METRICS)}.")
        self.space = SearchSpace(space) if isinstance(space, str) else space
        self.model_name, self.max_epochs = model, int(max_epochs)
        self.input_shape, self.num_classes = input_shape, num_classes
        self.callbacks, self.print_fn = list(callbacks), print_fn
        self._rows_printed = 0
        super().__init__(
            oracle, hypermodel=_SpaceHyperModel(self.space, self.max_epochs), directory=directory,
            project_name=project_name, overwrite=overwrite,
        )

    def _build(self, hp, total_steps=None):
        recipe = self.hypermodel.build(hp)
        binarized = models.build(self.model_name, recipe, input_shape=self.input_shape, num_classes=self.num_classes)
        optimizer = regimen.adam(hp.get("lr"), hp.values.get("lr_decay", "constant"), total_steps)
        binarized.model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
        return binarized

    def _steps_per_epoch(self, train_data, fit_kwargs) -> int | None:
        if fit_kwargs.get("steps_per_epoch"):
            return int(fit_kwargs["steps_per_epoch"])
        if isinstance(train_data, tf.data.Dataset):
            batches = int(train_data.cardinality())
            return batches if batches > 0 else None
        x = train_data[0] if isinstance(train_data, (tuple, list)) else None
        return math.ceil(len(x) / fit_kwargs.get("batch_size", 32)) if x is not None else None

    def _checkpoint(self, trial_id) -> str:
        return os.path.join(self.get_trial_dir(trial_id), "checkpoint")

    def _train_data(self, trial, train_data):
        """What a trial trains on (all of it here; Hyperband's lower rungs take a fraction)."""
        return train_data

    def run_trial(self, trial, train_data, validation_data, **fit_kwargs):
        start = time.perf_counter()
        data = self._train_data(trial, train_data)
        steps = self._steps_per_epoch(data, fit_kwargs)
        model, callbacks = self._build(trial.hyperparameters, None if steps is None else steps * self.max_epochs)
        fit_kwargs.pop("verbose", None)  # search(verbose=...) is keras-tuner's per-trial display
        model.fit(
            data, epochs=self.max_epochs,
            callbacks=[*callbacks, *self.callbacks], verbose=0, **fit_kwargs,
        )
        results = {"val_soft_accuracy": model.evaluate(validation_data, verbose=0, return_dict=True)["accuracy"]}
        if batch_norms(model):
            # Scored as `tfbin train` ships it: a binary net's moving BN statistics lag its flipping
            # signs, noise the search would otherwise chase. The validation data is not read here.
            batches = data if isinstance(data, tf.data.Dataset) else tf.data.Dataset.from_tensor_slices(tuple(data)).batch(fit_kwargs.get("batch_size", 32))
            results["bn_recalibrated"] = float(regimen.recalibrate_if_it_helps(model, batches)["applied"])
        self.save_model(trial.trial_id, model)
        with hard(model):
            results["val_hard_accuracy"] = model.evaluate(validation_data, verbose=0, return_dict=True)["accuracy"]
        results["trial_seconds"] = time.perf_counter() - start
        self._last_results = results
        return results

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        results = getattr(self, "_last_results", None)
        if self.print_fn is None or results is None:
            return
        self._last_results = None
        values = {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        widths = {k: max(10, len(k)) for k in values}
        if self._rows_printed == 0:
            self.print_fn("  trial  " + "  ".join(f"{k:>{widths[k]}s}" for k in values) + "  data  val_hard  seconds")
        fraction = self.data_fraction(trial)
        self.print_fn(
            f"  {trial.trial_id:>5s}  " + "  ".join(f"{_format(v):>{widths[k]}s}" for k, v in values.items())
            + f"  {fraction:4.2f}  {results['val_hard_accuracy']:8.4f}  {results['trial_seconds']:7.0f}"
        )
        self._rows_printed += 1

    def data_fraction(self, trial) -> float:
        """The fraction of the training batches `trial` trains on (1.0 but for Hyperband's lower rungs)."""
        return 1.0

    def save_model(self, trial_id, model, step=0):
        model.save_weights(self._checkpoint(trial_id))

    def load_model(self, trial):
        """The trial's trained model, ready to deploy (`tfbin.export.convert`)."""
        model, _ = self._build(trial.hyperparameters, total_steps=1)  # its optimizer is not used
        model.load_weights(self._checkpoint(trial.trial_id)).expect_partial()
        return unwrap(model)

    def best_trial(self):
        """The best finished trial among those trained on the most data (a low-fidelity trial's
        score is not comparable with a full one's)."""
        trials = list(self.oracle.trials.values())
        finished = [t for t in trials if t.status == "COMPLETED" and t.score is not None]
        if not finished:
            failed = [t for t in trials if t.status in ("FAILED", "INVALID")]
            if failed:
                last = (failed[-1].message or "").strip().splitlines()
                raise ValueError(f"All {len(failed)} finished trials failed; the last one: {last[-1] if last else 'no message'}")
            raise ValueError("No trial has finished yet; run search() first.")
        most = max(self.data_fraction(t) for t in finished)
        return max((t for t in finished if self.data_fraction(t) == most), key=lambda t: t.score)

    def best_recipe(self, epochs: int | None = None):
        """The best trial's recipe (`tfbin.recipes.Recipe`), its schedules spanning `epochs`
        (default: `max_epochs`); `params["training"]` holds its `lr` and `lr_decay`."""
        return self.space.recipe_from(self.best_trial().hyperparameters.values, epochs or self.max_epochs)


class RandomSearch(BinaryTuner):
    """`BinaryTuner` with keras-tuner's `RandomSearchOracle` (the first trial: the defaults)."""

    def __init__(self, model="fmnist_small", space="irnet", objective=DEFAULT_OBJECTIVE, max_trials=10, max_epochs=3, seed=None, **kwargs):
        oracle = RandomSearchOracle(objective=objective, max_trials=max_trials, seed=seed)
        super().__init__(oracle, model, space, max_epochs, **kwargs)


class BayesianOptimization(BinaryTuner):
    """`BinaryTuner` with keras-tuner's `BayesianOptimizationOracle` (Gaussian process; scikit-learn,
    scipy; the first trial: the defaults)."""

    def __init__(
        self, model="fmnist_small", space="irnet", objective=DEFAULT_OBJECTIVE, max_trials=10, max_epochs=3,
        num_initial_points=None, alpha=1e-4, beta=2.6, seed=None, **kwargs,
    ):
        oracle = BayesianOptimizationOracle(
            objective=objective, max_trials=max_trials, num_initial_points=num_initial_points, alpha=alpha, beta=beta, seed=seed
        )
        super().__init__(oracle, model, space, max_epochs, **kwargs)


class Hyperband(BinaryTuner):
    """`BinaryTuner` with keras-tuner's `HyperbandOracle`, the fidelity being the training data.

    Every trial trains `max_epochs` epochs with its schedules whole (a short schedule is a
    different method, so epochs are not the fidelity here); a trial of Hyperband's budget `b`
    out of `budget` takes the first `b / budget` of the training batches of every epoch (the
    data is reshuffled each epoch). With the defaults (`budget=9`, `factor=3`, one iteration)
    that is 23 trials, 9 of them on 1/9 of the data and 6 on all of it, costing about 9.7
    training runs on the data they are given. The best trial is the best one trained on all the
    data. Trials start from scratch; nothing is continued.
    """

    def __init__(
        self, model="fmnist_small", space="irnet", objective=DEFAULT_OBJECTIVE, max_epochs=3, budget=9, factor=3,
        hyperband_iterations=1, seed=None, **kwargs,
    ):
        if int(budget) < 1 or int(factor) < 2:
            raise ValueError(f"Hyperband needs budget >= 1 and factor >= 2, got {budget}, {factor}.")
        self.budget = int(budget)
        oracle = HyperbandOracle(
            objective=objective, max_epochs=self.budget, factor=factor, hyperband_iterations=hyperband_iterations, seed=seed
        )
        super().__init__(oracle, model, space, max_epochs, **kwargs)

    def search(self, train_data, validation_data, **kwargs):
        # Checked here, not in a trial: keras-tuner would count the error as failed trials.
        if not isinstance(train_data, tf.data.Dataset):
            raise ValueError("Hyperband takes its training data as a batched tf.data.Dataset (its lower rungs train on a fraction of the batches).")
        if int(train_data.cardinality()) < 0:
            raise ValueError(
                "Hyperband needs training data of known, finite length (tf.data cardinality): do not repeat() it, and after "
                "filter() declare the length with .apply(tf.data.experimental.assert_cardinality(batches))."
            )
        return super().search(train_data, validation_data, **kwargs)

    def data_fraction(self, trial) -> float:
        return trial.hyperparameters.values.get("tuner/epochs", self.budget) / self.budget

    def _train_data(self, trial, train_data):
        fraction = self.data_fraction(trial)
        if fraction >= 1:
            return train_data
        return train_data.take(max(1, math.ceil(fraction * int(train_data.cardinality()))))
