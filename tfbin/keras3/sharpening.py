"""`SharpeningScheduler` for Keras 3: tfbin's sharpening schedules driving a Keras 3 model's
sharpness weights during `model.fit`.

The schedules are `tfbin.schedules`' objects, the very ones the Keras 2 callback and the recipes
use (framework-free `schedule(epoch) -> float`), and what the callback does is the Keras 2 one's
code (`tfbin.frameworks.ScheduledSharpening`); only the `Callback` base and the sharpness lookups
are Keras 3's.
"""
from __future__ import annotations

import keras

from tfbin import frameworks
from tfbin.keras3 import sharpness_values as sharpness

__all__ = ["SharpeningScheduler"]


@keras.saving.register_keras_serializable(package="tfbin")
class SharpeningScheduler(frameworks.ScheduledSharpening, keras.callbacks.Callback):
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

    sharpness = sharpness  # `tfbin.keras3.sharpness`: the Keras 3 model's sharpness weights
