"""Keras callbacks that drive binarization during `model.fit`."""
from __future__ import annotations

import tensorflow as tf

from tfbin import schedules as schedules_lib
from tfbin import sharpness

__all__ = ["SharpeningScheduler"]


@tf.keras.utils.register_keras_serializable(package="tfbin")
class SharpeningScheduler(tf.keras.callbacks.Callback):
    """Set named sharpness values on schedules during training.

    ```python
    scheduler = tfbin.callbacks.SharpeningScheduler(tfbin.schedules.ede(0.1, 10, epochs=100))
    model.fit(x, y, epochs=100, callbacks=[scheduler])
    ```

    Every sharpness weight of that name in the model is set (`tfbin.sharpness.set`). Values are
    computed from the epoch index Keras passes (`epoch + batch / steps` with
    `update_freq="batch"`), so `initial_epoch` and `tf.keras.callbacks.BackupAndRestore`
    resume on the values an uninterrupted run would have. The values in use are written into
    `logs` at the end of each epoch (progress bar, `History`, `CSVLogger`, TensorBoard).

    This is not larq's `HyperparameterScheduler`, which only sets optimizer attributes.

    # Arguments
        schedules: `{name: schedule}`; a number is a constant schedule.
        update_freq: `"epoch"` (at the start of each epoch, as IR-Net) or `"batch"`.
    """

    def __init__(self, schedules: dict, update_freq: str = "epoch"):
        super().__init__()
        if not isinstance(schedules, dict) or not schedules:
            raise ValueError(f"SharpeningScheduler needs a non-empty {{name: schedule}} dict, got {schedules!r}.")
        if update_freq not in ("epoch", "batch"):
            raise ValueError(f"update_freq must be 'epoch' or 'batch', got {update_freq!r}.")
        self.schedules = {name: schedules_lib.get(s) for name, s in schedules.items()}
        self.update_freq = update_freq
        self._epoch = 0

    def on_train_begin(self, logs=None):
        for name in self.schedules:
            sharpness.variables(self.model, name)  # fails early, listing the names the model has
        if self.update_freq == "batch" and not self.params.get("steps"):
            raise ValueError(
                "SharpeningScheduler(update_freq='batch') needs the number of steps per epoch; "
                "pass steps_per_epoch to fit() or use a dataset of known length."
            )

    def _apply(self, epoch: float):
        for name, schedule in self.schedules.items():
            sharpness.set(self.model, name, schedule(epoch))

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
            "schedules": {n: tf.keras.utils.serialize_keras_object(s) for n, s in self.schedules.items()},
            "update_freq": self.update_freq,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
