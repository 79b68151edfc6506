"""`TrainingModel`: a model plus auxiliary losses that need more than its output (`tfbin.TrainingModel`).

Losses such as `ContrastiveMI` and `Distillation` read intermediate activations or a teacher.
They are not added to the model a user deploys: `loss.wrap(model)` returns a `TrainingModel`
that owns the losses' own weights (projection heads, memory banks, a frozen teacher) and trains
with plain `model.fit`. `training_model.inner` is the untouched model to save and export.
"""
from __future__ import annotations

import tensorflow as tf

__all__ = ["TrainingModel", "unwrap"]


def unwrap(model: tf.keras.Model) -> tf.keras.Model:
    """The model to deploy: `model.inner` for a `TrainingModel`, else `model` itself."""
    return model.inner if isinstance(model, TrainingModel) else model


class TrainingModel(tf.keras.Model):
    """`inner` trained with `loss + Σ weight_i · term_i`; a `<term name>_loss` metric per term.

    Each term is a Keras layer with `weight`, `taps(inner) -> [KerasTensor]` (the activations
    of `inner` it reads) and `call((inputs, y_pred, taps, labels), training)` -> scalar
    (`labels` are the batch's targets, or None). The terms'
    weights belong to this model, so `fit`, checkpoints and `BackupAndRestore` carry them;
    `inner` gets no extra inputs, outputs, ops or weights. `predict` and `call` are `inner`'s.

    Under a distribution strategy each replica adds `Σ weight_i · term_i / replicas` (the
    compiled loss is scaled the same way by Keras), so gradients sum to the global mean.
    """

    def __init__(self, inner: tf.keras.Model, terms, **kwargs):
        kwargs.setdefault("name", f"{inner.name}_training")
        super().__init__(**kwargs)
        if isinstance(inner, TrainingModel):
            terms = list(inner.terms) + list(terms)
            inner = inner.inner
        if not getattr(inner, "_is_graph_network", False) or len(inner.inputs) != 1 or len(inner.outputs) != 1:
            raise ValueError(
                f"{type(terms[0]).__name__}.wrap needs a functional or Sequential model with one input and "
                f"one output (built, e.g. with tf.keras.Input); {inner.name!r} is not."
            )
        self.inner = inner
        self.terms = list(terms)
        names = [t.name for t in self.terms]
        if len(set(names)) != len(names):
            raise ValueError(f"Auxiliary loss names must differ, got {names}.")
        taps, self._tap_slices = [], []
        for term in self.terms:
            tensors = list(term.taps(inner))
            self._tap_slices.append(slice(len(taps), len(taps) + len(tensors)))
            taps += tensors
        # One functional view of inner's own layer graph: the output plus every tapped tensor.
        # It shares inner's layers and adds no node to them.
        self._probe = tf.keras.Model(inner.inputs, [inner.outputs[0], *taps], name=f"{inner.name}_probe")
        self._trackers = [tf.keras.metrics.Mean(name=f"{t.name}_loss") for t in self.terms]

    def call(self, inputs, training=None):
        return self.inner(inputs, training=training)

    def _forward(self, x, y, training):
        outputs = self._probe(x, training=training)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]  # Keras unpacks one output
        y_pred, taps = outputs[0], outputs[1:]
        values = [term((x, y_pred, taps[s], y), training=training) for term, s in zip(self.terms, self._tap_slices)]
        return y_pred, values

    def _auxiliary(self, values):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return tf.add_n([term.weight * v for term, v in zip(self.terms, values)]) / replicas

    def train_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred, values = self._forward(x, y, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight) + self._auxiliary(values)
        self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        for tracker, value in zip(self._trackers, values):
            tracker.update_state(value)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        y_pred, values = self._forward(x, y, training=False)
        self.compute_loss(x, y, y_pred, sample_weight)
        for tracker, value in zip(self._trackers, values):
            tracker.update_state(value)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    @property
    def metrics(self):
        own = super().metrics
        return own + [t for t in self._trackers if all(t is not m for m in own)]

    def get_config(self):
        return {
            "name": self.name,
            "inner": tf.keras.utils.serialize_keras_object(self.inner),
            "terms": [tf.keras.utils.serialize_keras_object(t) for t in self.terms],
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        inner = tf.keras.utils.deserialize_keras_object(config["inner"], custom_objects=custom_objects)
        terms = [tf.keras.utils.deserialize_keras_object(t, custom_objects=custom_objects) for t in config["terms"]]
        return cls(inner, terms, name=config.get("name"))
