"""keras-tuner tuners for tf_keras/larq models, built on its framework-agnostic `BaseTuner`.

keras-tuner 1.4's Keras `Tuner` only drives Keras 3 models (it rejects tf_keras models); its `BaseTuner` and
oracles work with any model. These tuners implement `run_trial`, `save_model`, `load_model`
and Hyperband's warm start for tfbin models; keras-tuner's own oracles do the searching, so
its chief/worker mode (`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`)
works as it does for Keras models.
"""
from __future__ import annotations

import os

import keras_tuner as kt
import tensorflow as tf

from tfbin import models
from tfbin.callbacks import BinarizationMonitor
from tfbin.auxiliary import unwrap
from tfbin.tuning.space import SearchSpace

__all__ = ["BinaryTuner", "RandomSearch", "BayesianOptimization", "Hyperband", "DEFAULT_OBJECTIVE"]

DEFAULT_OBJECTIVE = kt.Objective("val_hard_accuracy", "max")


class _SpaceHyperModel(kt.HyperModel):
    """Declares the space; `build` returns the recipe (cheap: keras-tuner calls it to explore)."""

    def __init__(self, space: SearchSpace, epochs: int):
        super().__init__()
        self.space, self.epochs = space, epochs

    def build(self, hp):
        return self.space.recipe_from(self.space.declare(hp), self.epochs)


def _objective_name(objective) -> str:
    return objective.name if isinstance(objective, kt.Objective) else str(objective)


class BinaryTuner(kt.engine.base_tuner.BaseTuner):
    """Search a recipe's schedules for a tfbin model; the score is the **hard** accuracy.

    Each trial builds `model` (a `tfbin.models` name) with the recipe the trial's values
    describe (schedules spanning `max_epochs`, whatever epochs the trial trains, so Hyperband's
    continued trials see the values of an uninterrupted run), trains it with Adam at the trial's
    `lr` and `tfbin.callbacks.BinarizationMonitor` on the validation data, and reports the last
    epoch's `val_hard_accuracy` (and the monitor's other figures). Weights are saved per trial.

    ```python
    tuner = tfbin.tuning.RandomSearch("fmnist_small", tfbin.tuning.SearchSpace("irnet"),
                                      max_trials=8, max_epochs=3, directory="search")
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
    ):
        if model not in models.available():
            raise ValueError(f"Unknown model {model!r}; the models are {models.available()}.")
        if int(max_epochs) < 1:
            raise ValueError(f"max_epochs must be >= 1, got {max_epochs}.")
        self.space = SearchSpace(space) if isinstance(space, str) else space
        self.model_name, self.max_epochs = model, int(max_epochs)
        self.input_shape, self.num_classes = input_shape, num_classes
        self.callbacks = list(callbacks)
        super().__init__(
            oracle, hypermodel=_SpaceHyperModel(self.space, self.max_epochs), directory=directory,
            project_name=project_name, overwrite=overwrite,
        )

    def _build(self, hp):
        recipe = self.hypermodel.build(hp)
        binarized = models.build(self.model_name, recipe, input_shape=self.input_shape, num_classes=self.num_classes)
        binarized.model.compile(
            tf.keras.optimizers.Adam(hp.get("lr")), "sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        return binarized

    def _checkpoint(self, trial_id) -> str:
        return os.path.join(self.get_trial_dir(trial_id), "checkpoint")

    def run_trial(self, trial, train_data, validation_data, **fit_kwargs):
        hp = trial.hyperparameters
        model, callbacks = self._build(hp)
        epochs = hp.values.get("tuner/epochs", self.max_epochs)
        initial_epoch = hp.values.get("tuner/initial_epoch", 0)
        if "tuner/trial_id" in hp.values:  # Hyperband: continue the parent trial's weights
            model.load_weights(self._checkpoint(hp.values["tuner/trial_id"])).expect_partial()
        monitor = BinarizationMonitor(validation_data)
        fit_kwargs.pop("verbose", None)  # search(verbose=...) is keras-tuner's per-trial display
        history = model.fit(
            train_data, validation_data=validation_data, epochs=epochs, initial_epoch=initial_epoch,
            callbacks=[*callbacks, monitor, *self.callbacks], verbose=0, **fit_kwargs,
        ).history
        self.save_model(trial.trial_id, model)
        results = {k: float(v[-1]) for k, v in history.items() if k != "lr"}
        name = _objective_name(self.oracle.objective)
        if name not in results:
            raise ValueError(f"The objective {name!r} is not among the trial's metrics {sorted(results)}.")
        return results

    def save_model(self, trial_id, model, step=0):
        model.save_weights(self._checkpoint(trial_id))

    def load_model(self, trial):
        """The trial's trained model, ready to deploy (`tfbin.export.convert`)."""
        model, _ = self._build(trial.hyperparameters)
        model.load_weights(self._checkpoint(trial.trial_id)).expect_partial()
        return unwrap(model)

    def best_recipe(self):
        """The best trial's recipe (`tfbin.recipes.Recipe`); its `params["searched"]` holds the values, lr included."""
        best = self.oracle.get_best_trials(1)
        if not best:
            raise ValueError("No trial has finished yet; run search() first.")
        return self.hypermodel.build(best[0].hyperparameters)


class RandomSearch(BinaryTuner):
    """`BinaryTuner` with keras-tuner's `RandomSearchOracle`."""

    def __init__(self, model="fmnist_small", space="irnet", objective=DEFAULT_OBJECTIVE, max_trials=10, max_epochs=3, seed=None, **kwargs):
        oracle = kt.oracles.RandomSearchOracle(objective=objective, max_trials=max_trials, seed=seed)
        super().__init__(oracle, model, space, max_epochs, **kwargs)


class BayesianOptimization(BinaryTuner):
    """`BinaryTuner` with keras-tuner's `BayesianOptimizationOracle` (Gaussian process; scikit-learn, scipy)."""

    def __init__(
        self, model="fmnist_small", space="irnet", objective=DEFAULT_OBJECTIVE, max_trials=10, max_epochs=3,
        num_initial_points=None, alpha=1e-4, beta=2.6, seed=None, **kwargs,
    ):
        oracle = kt.oracles.BayesianOptimizationOracle(
            objective=objective, max_trials=max_trials, num_initial_points=num_initial_points, alpha=alpha, beta=beta, seed=seed
        )
        super().__init__(oracle, model, space, max_epochs, **kwargs)


class Hyperband(BinaryTuner):
    """`BinaryTuner` with keras-tuner's `HyperbandOracle`: trials continue their parents' weights."""

    def __init__(self, model="fmnist_small", space="irnet", objective=DEFAULT_OBJECTIVE, max_epochs=9, factor=3, hyperband_iterations=1, seed=None, **kwargs):
        oracle = kt.oracles.HyperbandOracle(
            objective=objective, max_epochs=max_epochs, factor=factor, hyperband_iterations=hyperband_iterations, seed=seed
        )
        super().__init__(oracle, model, space, max_epochs, **kwargs)
