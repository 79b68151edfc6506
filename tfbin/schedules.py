"""Schedules of a sharpness value over training progress.

A schedule is a serializable callable `schedule(epoch) -> float`, where `epoch` is fractional
progress (`index + batch / steps_per_epoch` for per-batch updates). Its length is a field of the
schedule, never `fit`'s `epochs`, so resuming at `initial_epoch` or a tuner that changes `epochs`
sees the same values. Before 0 a schedule holds its start value, after its length its end value.
"""
from __future__ import annotations

import math

import tensorflow as tf

from tfbin._registry import serializable
from tfbin.formulas import EDE_T_MAX, EDE_T_MIN  # IR-Net's EDE range: defined once, in the formulas

__all__ = ["Schedule", "Constant", "Linear", "Exponential", "Cosine", "Step", "EDEScale", "Delayed", "ede", "get", "serialize"]


_register = serializable()


def _finite(name, value):
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}.")
    return value


def _positive(name, value):
    value = _finite(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}.")
    return value


class Schedule:
    """Base class: subclasses implement `value(progress)` for `progress` in [0, 1]."""

    def __init__(self, epochs: float):
        self.epochs = _positive(f"{type(self).__name__} epochs (its length)", epochs)

    def __call__(self, epoch: float) -> float:
        epoch = _finite("epoch", epoch)
        return float(self.value(min(max(epoch / self.epochs, 0.0), 1.0)))

    def value(self, progress: float) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()


class _StartEnd(Schedule):
    def __init__(self, start: float, end: float, epochs: float):
        super().__init__(epochs)
        self.start = _finite(f"{type(self).__name__} start", start)
        self.end = _finite(f"{type(self).__name__} end", end)

    def get_config(self):
        return {"start": self.start, "end": self.end, "epochs": self.epochs}


@_register
class Constant(Schedule):
    """`value` at every epoch."""

    def __init__(self, value: float, epochs: float = 1.0):
        super().__init__(epochs)
        self.constant = _finite("Constant value", value)

    def value(self, progress):
        return self.constant

    def get_config(self):
        return {"value": self.constant, "epochs": self.epochs}


@_register
class Linear(_StartEnd):
    """`start + (end − start) · epoch / epochs`."""

    def value(self, progress):
        return self.start + (self.end - self.start) * progress


@_register
class Exponential(_StartEnd):
    """`start · (end / start) ^ (epoch / epochs)` (geometric; both > 0).

    At integer epochs this is IR-Net's log-linear schedule
    `t_i = 10^(log10 T_min + (log10 T_max − log10 T_min) · i / N)`.
    """

    def __init__(self, start: float, end: float, epochs: float):
        super().__init__(start, end, epochs)
        _positive("Exponential start", self.start)
        _positive("Exponential end", self.end)

    def value(self, progress):
        return self.start * (self.end / self.start) ** progress


@_register
class Cosine(_StartEnd):
    """`end + (start − end) · (1 + cos(π · epoch / epochs)) / 2`: slow at both ends."""

    def value(self, progress):
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * progress))


@_register
class Step(Schedule):
    """`start + increment · floor(epoch / every)`, held after `epochs`.

    `Step(1, 20, every=40, epochs=...)` is the step schedule `v = floor(e/40)·20 + 1` used by
    re-implementations of Self-Binarizing Networks.
    """

    def __init__(self, start: float, increment: float, every: float, epochs: float):
        super().__init__(epochs)
        self.start = _finite("Step start", start)
        self.increment = _finite("Step increment", increment)
        self.every = _positive("Step every", every)

    def __call__(self, epoch):
        epoch = min(max(_finite("epoch", epoch), 0.0), self.epochs)
        # A tiny tolerance so that e.g. epoch 0.6 with every 0.2 counts 3 steps despite rounding.
        return self.start + self.increment * math.floor(epoch / self.every + 1e-9)

    def get_config(self):
        return {"start": self.start, "increment": self.increment, "every": self.every, "epochs": self.epochs}


@_register
class EDEScale(Schedule):
    """IR-Net's EDE gradient scale `k = max(1 / t(epoch), 1)` for a schedule `t`."""

    def __init__(self, t: Schedule | dict):
        if isinstance(t, dict):
            t = tf.keras.utils.deserialize_keras_object(t)
        if not isinstance(t, Schedule):
            raise TypeError(f"EDEScale needs a tfbin schedule for t, got {t!r}.")
        super().__init__(t.epochs)
        self.t = t

    def __call__(self, epoch):
        t = self.t(epoch)
        if t <= 0:
            raise ValueError(f"EDE's t must stay > 0; its schedule gave {t} at epoch {epoch}.")
        return max(1.0 / t, 1.0)

    def get_config(self):
        return {"t": tf.keras.utils.serialize_keras_object(self.t)}


@_register
class Delayed(Schedule):
    """`schedule` held at its start for `warmup` epochs, then run: `schedule(epoch − warmup)`.

    Its length is `warmup + schedule.epochs`; afterwards it holds the end value like every
    schedule, so a "hardening" phase at the final sharpness is a schedule shorter than training.
    """

    def __init__(self, schedule: Schedule | dict, warmup: float):
        schedule = get(schedule)
        self.schedule = schedule
        self.warmup = _finite("Delayed warmup", warmup)
        if self.warmup < 0:
            raise ValueError(f"Delayed warmup must be >= 0 epochs, got {warmup}.")
        super().__init__(self.warmup + schedule.epochs)

    def __call__(self, epoch):
        return self.schedule(_finite("epoch", epoch) - self.warmup)

    def get_config(self):
        return {"schedule": tf.keras.utils.serialize_keras_object(self.schedule), "warmup": self.warmup}


def ede(t_min: float = EDE_T_MIN, t_max: float = EDE_T_MAX, epochs: float = 400) -> dict[str, Schedule]:
    """IR-Net's EDE schedules: `{"t": Exponential(t_min, t_max, epochs), "k": max(1/t, 1)}`.

    Defaults are the paper's (T_min = 0.1, T_max = 10); the official 1w1a ResNet-20 script uses
    T_min = 1e-3 and CMIM 1e-2. At integer epochs `i` this is the official per-epoch update.
    """
    t = Exponential(t_min, t_max, epochs)
    if t_max < t_min:
        raise ValueError(f"ede: t_max ({t_max}) must be >= t_min ({t_min}); t only grows.")
    return {"t": t, "k": EDEScale(t)}


def get(identifier) -> Schedule:
    """A schedule from a schedule, a number (constant) or a serialized config."""
    if isinstance(identifier, Schedule):
        return identifier
    if isinstance(identifier, (int, float)) and not isinstance(identifier, bool):
        return Constant(identifier)
    if isinstance(identifier, dict):
        schedule = tf.keras.utils.deserialize_keras_object(identifier)
        if isinstance(schedule, Schedule):
            return schedule
    raise TypeError(
        f"Expected a tfbin schedule (Constant, Linear, Exponential, Cosine, Step, EDEScale), a "
        f"number or a serialized schedule; got {identifier!r}."
    )


def serialize(schedule: Schedule) -> dict:
    """The config of `schedule` that `get` reads back: the one the Keras 2 `SharpeningScheduler`
    and recipes write (`tfbin.keras3.SharpeningScheduler` writes it with this)."""
    return tf.keras.utils.serialize_keras_object(get(schedule))
