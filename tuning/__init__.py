"""Hyperparameter search with keras-tuner: search spaces over recipes, tuners for tfbin models.

```python
from tfbin import tuning
tuner = tuning.Hyperband("fmnist_small", tuning.SearchSpace("irnet"), max_epochs=3, directory="search")
tuner.search(train_batches, validation_batches)
tuner.best_recipe()
```

Distributed search uses keras-tuner's chief/worker mode unchanged: run the same script in one
chief and N workers with `KERASTUNER_ORACLE_IP`/`KERASTUNER_ORACLE_PORT` set in all of them and
`KERASTUNER_TUNER_ID=chief` in the chief, `tuner0`, `tuner1`, ... in the workers (README).
"""
from tfbin.tuning.space import LR_RANGE, SearchSpace
from tfbin.tuning.tuners import DEFAULT_OBJECTIVE, BayesianOptimization, BinaryTuner, Hyperband, RandomSearch

__all__ = ["SearchSpace", "LR_RANGE", "BinaryTuner", "RandomSearch", "BayesianOptimization", "Hyperband", "DEFAULT_OBJECTIVE"]
