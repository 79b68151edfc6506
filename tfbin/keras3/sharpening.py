"""`SharpeningScheduler` for Keras 3: tfbin's sharpening schedules driving a Keras 3 model's
sharpness weights during `model.fit`.

The schedules are `tfbin.schedules`' objects, the very ones the Keras 2 callback and the recipes
use (framework-free `schedule(epoch) -> float`); only the callback glue is Keras 3's.
"""
from __future__ import annotations

import keras

import tfbin.schedules as schedules_lib
from tfbin.keras3 import sharpness_values as sharpness

__all__ = ["SharpeningScheduler"]


@keras.saving.register_keras_serializable(package="tfbin")
class SharpeningScheduler(keras.callbacks.Callback):
    """Set named sharpness values on schedules during training (Keras 3).

    ```python
    scheduler = tfbin.keras3.SharpeningScheduler(tfbin.schedules.ede(0.1, 10, epochs=100))
    model.fit(x, y, epochs=100, callbacks=[scheduler])
    ```

    What `tfbin.callbacks.SharpeningScheduler` does on Keras 2: every sharpness weight of that
    name in the model is set (`tfbin.keras3.sharpness.set`), at the start of each epoch from the
    epoch index Keras passes, or with `update_freq="batch"` before every batch from
    `epoch + batch / steps`; so `initial_epoch` resumes on the values an uninterrupted run would
    have. The values in use are written into `logs` at the end of each epoch.

    # Arguments
        schedules: `{name: schedule}` of `tfbin.schedules`; a number is a constant schedule.
        update_freq: `"epoch"` (at the start of each epoch, as IR-Net) or `"batch"`.
    """

    def __init__(self, schedules: dict, update_freq: str = "epoch"):
        super().__init__()
        if not isinstance(schedules, dict) or not schedules:
            raise ValueError(f"SharpeningScheduler needs a non-empty {{name: schedule}} dict, got {schedules!r}.")
        if update_freq not in ("epoch", "batch"):
            raise ValueError(f"update_freq must be 'epoch' or 'batch', got {update_freq!r}.")
        self.update_freq = update_freq
        self.schedules = {name: schedules_lib.get(s) for name, s in schedules.items()}
        self._epoch = 0
        self._variables = {}

    def on_train_begin(self, logs=None):
        # Resolved once, failing early with the names the model has.
        self._variables = {name: sharpness.variables(self.model, name) for name in self.schedules}
        if self.update_freq == "batch" and not self.params.get("steps"):
            raise ValueError(
                "SharpeningScheduler(update_freq='batch') needs the number of steps per epoch; "
                "pass steps_per_epoch to fit() or use a dataset of known length."
            )

    def _apply(self, epoch: float):
        for name, schedule in self.schedules.items():
            value = schedule(epoch)
            for variable in self._variables[name]:
                variable.assign(value)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._apply(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if self.update_freq == "batch":
            self._apply(self._epoch + batch / self.params["steps"])

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for name in self.schedules:
                logs[name] = sharpness.get(self.model, name)

    def get_config(self):
        return {
            "schedules": {n: schedules_lib.serialize(s) for n, s in self.schedules.items()},
            "update_freq": self.update_freq,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
