"""Keras callbacks that drive binarization during `model.fit`."""
from __future__ import annotations

import tensorflow as tf

import numpy as np

from tfbin._registry import serializable
from tfbin import frameworks, sharpness
from tfbin.frameworks import check_update_freq  # noqa: F401  (public here: tfbin.recipes reads it)
from tfbin.introspect import binarized_layers
from tfbin.mode import hard_forms
from tfbin.auxiliary import unwrap
from tfbin.quantizers import SoftHardQuantizer

__all__ = ["SharpeningScheduler", "BinarizationMonitor", "StopOnNonFinite", "NonFiniteLossError"]


@serializable()
class SharpeningScheduler(frameworks.ScheduledSharpening, tf.keras.callbacks.Callback):
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

    sharpness = sharpness  # `tfbin.sharpness`: the tf-keras model's sharpness weights


def _as_dataset(data, batch_size):
    if isinstance(data, tf.data.Dataset):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return tf.data.Dataset.from_tensor_slices(tuple(data)).batch(batch_size)
    raise ValueError(
        "BinarizationMonitor needs validation_data as a batched tf.data.Dataset of (x, y) or an (x, y) "
        f"tuple, got {type(data).__name__}."
    )


def _correct(y_true, y_pred) -> np.ndarray:
    y_true = np.asarray(y_true)
    labels = y_true.argmax(-1) if y_true.ndim == y_pred.ndim and y_true.shape[-1] > 1 else y_true.reshape(-1)
    return y_pred.argmax(-1) == labels


class BinarizationMonitor(tf.keras.callbacks.Callback):
    """How far binarization has come, written into `logs` at the end of every epoch.

    Keys (they show in the progress bar, `History`, `CSVLogger` and TensorBoard):

    - `val_hard_accuracy`: accuracy on `validation_data` with every tfbin quantizer in its hard
      form, which is what the exported model computes (`tfbin.hard`); `val_soft_accuracy` the
      same in the training form, and `soft_hard_gap = val_soft_accuracy − val_hard_accuracy`.
    - `saturation_<layer>` and `saturation` (all binarized layers together): the fraction of the
      input activations of binarized layers whose soft quantized value is within 1 % of the
      hard one, `|soft(x) − hard(x)| ≤ 0.01·max|hard|` (for ±1: `|soft| ≥ 0.99`), on the first
      `samples` validation inputs. Quantizers whose forward is already hard (larq's `ste_sign`,
      IR-Net's EDE) are saturated by definition: 1.0.
    - `histograms` (an attribute, not a log), refreshed every epoch: `{"latent/<layer>": counts}`
      of the latent input activations of each binarized layer over `bin_edges` (−4…4, values
      outside in the end bins) and `{"soft/<layer>": counts}` of their quantized training form
      over `soft_bin_edges` (−1.05…1.05): the ABR paper's picture of activations splitting from
      real values into two spikes.
    - `flip_ratio`: the fraction of latent kernel weights of binarized layers whose sign changed
      since the previous epoch (since the start of training after the first).

    The soft and hard forward passes are traced once (in their own `tf.function`s), so the
    monitor does not retrace the training step. Its cost per epoch is one soft and one hard
    inference pass over `validation_data` plus one pass over `samples` inputs.

    ```python
    monitor = tfbin.callbacks.BinarizationMonitor((x_val, y_val))
    model.fit(x, y, epochs=10, callbacks=[*callbacks, monitor])
    ```

    # Arguments
        validation_data: a batched `tf.data.Dataset` of `(x, y)` or an `(x, y)` tuple; labels
            sparse or one-hot.
        samples: validation inputs used for the saturation statistics.
        batch_size: batch size when `validation_data` is a tuple.
    """

    def __init__(self, validation_data, samples: int = 256, batch_size: int = 256):
        super().__init__()
        self.data = _as_dataset(validation_data, batch_size)
        if samples < 1:
            raise ValueError(f"BinarizationMonitor samples must be >= 1, got {samples}.")
        self.samples = int(samples)
        self._setup_for = None
        self.bin_edges = np.linspace(-4.0, 4.0, 81)
        self.soft_bin_edges = np.linspace(-1.05, 1.05, 43)
        self.histograms: dict[str, np.ndarray] = {}

    def _setup(self):
        model = unwrap(self.model)
        self._layers = binarized_layers(model)
        if not self._layers:
            raise ValueError(f"BinarizationMonitor: {model.name!r} has no binarized layers to monitor.")
        self._quantizers = sharpness.quantizers(model)
        spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], model.inputs[0].dtype)
        self._soft = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        self._hard = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        with hard_forms(self._quantizers):
            self._hard.get_concrete_function()  # traced now, in the hard form, once
        self._soft.get_concrete_function()
        self._probe = tf.keras.Model(model.inputs, [l.input for l in self._layers])
        xs, taken = [], 0
        for x, *_ in self.data:
            xs.append(x.numpy())
            taken += len(xs[-1])
            if taken >= self.samples:
                break
        self._sample = np.concatenate(xs)[: self.samples]
        self._signs = self._kernel_signs()
        self._setup_for = self.model

    def _kernel_signs(self):
        return [np.signbit(l.kernel.numpy()) for l in self._layers]

    def _accuracies(self):
        soft_correct, hard_correct = [], []
        for batch in self.data:
            x, y = batch[0], batch[1]
            soft_correct.append(_correct(y, self._soft(x).numpy()))
            hard_correct.append(_correct(y, self._hard(x).numpy()))
        return float(np.concatenate(soft_correct).mean()), float(np.concatenate(hard_correct).mean())

    def saturation(self) -> dict:
        """`{layer name: saturated fraction}` on the sample inputs, plus `"all"`; also refreshes
        `histograms`."""
        latents = self._probe(self._sample, training=False)
        latents = latents if isinstance(latents, (list, tuple)) else [latents]
        result, saturated, count = {}, 0, 0
        for layer, latent in zip(self._layers, latents):
            q = getattr(layer, "input_quantizer", None)
            if q is None:  # an ABC-Net layer: its activation bases are always hard
                soft = layer.activation_approximation(latent).numpy()
                close = np.ones(latent.shape, bool)
            elif isinstance(q, SoftHardQuantizer):
                soft, hard = q.soft(latent).numpy(), q.hard(latent).numpy()
                close = np.abs(soft - hard) <= 0.01 * max(float(np.abs(hard).max()), 1e-12)
            else:
                soft, close = q(latent).numpy(), np.ones(latent.shape, bool)
            result[layer.name] = float(close.mean())
            saturated, count = saturated + int(close.sum()), count + close.size
            for kind, values, edges in (("latent", latent.numpy(), self.bin_edges), ("soft", soft, self.soft_bin_edges)):
                values = np.clip(values.ravel(), edges[0], edges[-1])
                self.histograms[f"{kind}/{layer.name}"] = np.histogram(values, edges)[0]
        result["all"] = saturated / count
        return result

    def on_train_begin(self, logs=None):
        if self._setup_for is not self.model:
            self._setup()

    def on_epoch_end(self, epoch, logs=None):
        if self._setup_for is not self.model:
            self._setup()
        soft, hard = self._accuracies()
        values = {"val_hard_accuracy": hard, "val_soft_accuracy": soft, "soft_hard_gap": soft - hard}
        saturation = self.saturation()
        values["saturation"] = saturation.pop("all")
        values.update({f"saturation_{name}": v for name, v in saturation.items()})
        signs = self._kernel_signs()
        flips = sum(int((a != b).sum()) for a, b in zip(signs, self._signs))
        values["flip_ratio"] = flips / sum(a.size for a in signs)
        self._signs = signs
        if logs is not None:
            logs.update(values)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


class StopOnNonFinite(tf.keras.callbacks.Callback):
    """Stop training with `NonFiniteLossError` naming the epoch and batch where the loss stopped
    being finite.

    Unlike Keras's `TerminateOnNaN`, which ends the epoch normally (so that a
    `BackupAndRestore` or `ModelCheckpoint` after it saves the broken weights), it raises
    before the epoch ends: the last checkpoint written stays the last good one.
    """

    def __init__(self, checkpoint_hint: str | None = None):
        super().__init__()
        self.checkpoint_hint = checkpoint_hint
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            kept = f"; the last good checkpoint is kept in {self.checkpoint_hint}" if self.checkpoint_hint else ""
            raise NonFiniteLossError(
                f"The training loss became {loss} at epoch {self._epoch + 1}, batch {batch + 1}{kept}. "
                "Lower the learning rate or check the data for NaN/Inf."
            )
