"""Auxiliary training losses of the binarization methods.

- `SlopeGrowth` (ABR) reads only weights: it lives inside the model (`model.add_loss`).
- `ContrastiveMI` (CMIM) and `Distillation` read activations or a teacher: `loss.wrap(model)`
  returns a `tfbin.TrainingModel` that trains with them; its `.inner` is deployed.
"""
from __future__ import annotations

import tensorflow as tf

from tfbin._registry import serializable
from tfbin.quantizers import BoundedRectifier
from tfbin.introspect import binarized_layers
from tfbin.auxiliary import TrainingModel

__all__ = ["SlopeGrowth", "ContrastiveMI", "Distillation"]


@serializable()
class SlopeGrowth:
    r"""ABR's "weight growing" term on the slopes of every `BoundedRectifier` of a model.

    \[
    \mathcal L_\text{grow} = \lambda \cdot \operatorname{mean}_{\text{all slopes}} \frac{1}{a}
    \]

    The paper (Wu, Lin, Tang, arXiv:1511.06201) encourages binary units "by a weight growing
    constraint over these slope parameters (opposite to weight decay)"; its exact form was not
    available. `λ·mean(1/a)` is chosen because, unlike `−λ·Σa²` (literally the opposite of weight
    decay), it is bounded below by 0 (the total loss stays interpretable), its push
    `∂/∂a = −λ/(n·a²)` is strongest for shallow slopes and fades as a unit approaches a step
    (so growth does not run away exponentially), and it does not depend on the number of units.

    ```python
    tfbin.losses.SlopeGrowth(1e-3).attach(model)   # then model.fit as usual
    ```

    # Arguments
        weight: λ (≥ 0).
    """

    def __init__(self, weight: float = 1e-3):
        weight = float(weight)
        if not weight >= 0:
            raise ValueError(f"SlopeGrowth weight must be >= 0, got {weight}.")
        self.weight = weight

    def slopes(self, model: tf.keras.Model) -> list[tf.Variable]:
        return [m.slope for m in model.submodules if isinstance(m, BoundedRectifier) and m.built]

    def __call__(self, model: tf.keras.Model) -> tf.Tensor:
        slopes = self.slopes(model)
        if not slopes:
            raise ValueError(
                f"SlopeGrowth found no built BoundedRectifier in {model.name!r}; use the abr recipe "
                "(or BoundedRectifier input quantizers) and build the model first."
            )
        inverse = tf.concat([tf.reshape(1.0 / s, [-1]) for s in slopes], axis=0)
        return self.weight * tf.reduce_mean(inverse)

    def attach(self, model: tf.keras.Model) -> tf.keras.Model:
        """Add the term to `model`'s losses (it then shows in `fit`'s total loss)."""
        self(model)  # fail now, not at the first step, if there is nothing to grow
        model.add_loss(lambda: self(model))
        return model

    def get_config(self) -> dict:
        return {"weight": self.weight}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _l2_normalize(x):
    return tf.math.l2_normalize(x, axis=-1, epsilon=1e-12)


class _WrappingLoss(tf.keras.layers.Layer):
    """An auxiliary loss term of a `TrainingModel` (see there for the protocol)."""

    def __init__(self, weight: float, **kwargs):
        super().__init__(**kwargs)
        weight = float(weight)
        if not weight >= 0:
            raise ValueError(f"{type(self).__name__} weight must be >= 0, got {weight}.")
        self.weight = weight

    def taps(self, inner):
        return []

    def wrap(self, model: tf.keras.Model) -> TrainingModel:
        """A training model that adds this loss; `wrapped.inner` is `model`, unchanged.

        A fresh copy of the loss is wrapped, so one configured loss can wrap several models.
        """
        return TrainingModel(model, [self.copy()])

    def copy(self):
        """A new, unbuilt instance with the same configuration."""
        return type(self).from_config(self.get_config())

    def attach(self, model: tf.keras.Model) -> TrainingModel:
        """What `tfbin.binarize` calls for a recipe's losses: the same as `wrap`."""
        return self.wrap(model)

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


@serializable()
class ContrastiveMI(_WrappingLoss):
    r"""CMIM's contrastive mutual-information loss between latent and binary activations.

    For each chosen binarized layer, `a_F` is the latent full-precision input of its input
    quantizer and `a_B = q(a_F)` the binary activation (soft form in training, so the gradient
    reaches the layers below through the quantizer's own backward). Both are pooled to a
    `grid`×`grid` map (dense inputs are used as they are), projected by trainable heads
    `h_F`, `h_B` (one per view and layer) to `projection_dim` and L2-normalized:
    `z_F = h_F(a_F)/‖·‖`, `z_B = h_B(a_B)/‖·‖`. The two views of the same sample are the
    positive pair; the other samples of the batch (of all replicas under a distribution strategy,
    gathered with their gradient, so that training on R replicas computes the same gradient as
    one device on the same global batch) and the entries of a memory bank are negatives —
    except, by default, samples of the anchor's own class (CMIM's code excludes them: a
    same-class sample is not evidence against the pair). With `s(u, w) = u·w/τ`:

    \[
    \mathcal L = \frac{1}{2}\operatorname{mean}_i\Big[
       -\log\frac{e^{s(z_B^i, z_F^i)}}{\sum_{j} e^{s(z_B^i, z_F^j)} + \sum_{m} e^{s(z_B^i, M_F^m)}}
       -\log\frac{e^{s(z_F^i, z_B^i)}}{\sum_{j} e^{s(z_F^i, z_B^j)} + \sum_{m} e^{s(z_F^i, M_B^m)}}\Big]
    \]

    averaged over the chosen layers (InfoNCE, a lower bound on the mutual information
    `I(a_F; a_B)` that tightens with more negatives), added to the task loss with weight λ.

    This is the **paper's** form (Shang et al., "Network Binarization via Contrastive Learning",
    ECCV 2022, arXiv:2207.02970): the BNN's own latent and binary activations, trained heads.
    Which layers the paper taps is not stated (its figure shows two pull pairs and one push
    pair of two images, not three layers); tfbin taps the last three binarized layers. The
    bound tightens with the number of negatives, which the paper takes from a memory bank
    (its code: 4,096 per sample); the bank's logits are most of the loss's cost. tfbin keeps
    1,024 by default, chosen on the validation split: see docs/benchmarks.md#irnet_cmim. The
    released code instead contrasts the BNN's final feature with a separate full-precision
    teacher through untrained heads and a CRD-style per-sample memory (its
    `contrastive_alignment/criterion.py`); for a teacher use `Distillation`. The memory here is a queue of the most recent `bank_size` embeddings of
    each view (MoCo's memory; no momentum encoder, as the heads are small), so it needs no
    sample indices from the data pipeline.

    ```python
    model, callbacks = tfbin.models.build("fmnist_small", "irnet", epochs=3)
    training = tfbin.losses.ContrastiveMI(weight=0.1).wrap(model)
    training.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    training.fit(x, y, epochs=3, callbacks=callbacks)      # shows cmim_loss
    tfbin.export.convert(training.inner, "model.tflite")    # no trace of the loss
    ```

    # Arguments
        weight: λ. The code's default is 3.2 for its CRD loss; the in-batch InfoNCE here starts
            near `log(2·batch)`, so tfbin defaults to 0.1.
        temperature: τ (paper and code: 0.1).
        projection_dim: size of the contrastive space (code: 128).
        bank_size: negatives kept from earlier batches per view (0: in-batch only; CMIM's
            code: 4,096; tfbin's default 1,024, see above).
        exclude_same_label: leave samples with the anchor's label out of its negatives
            (needs integer or one-hot labels; ignored when the step has none).
        layers: names of the binarized layers to contrast (default: the last three).
        grid: spatial size the activations are average-pooled to before the heads.
    """

    def __init__(
        self,
        weight: float = 0.1,
        temperature: float = 0.1,
        projection_dim: int = 128,
        bank_size: int = 1024,
        layers=None,
        grid: int = 4,
        exclude_same_label: bool = True,
        name: str = "cmim",
        **kwargs,
    ):
        super().__init__(weight, name=name, **kwargs)
        self.temperature = float(temperature)
        if not self.temperature > 0:
            raise ValueError(f"ContrastiveMI temperature must be > 0, got {temperature}.")
        self.projection_dim, self.bank_size, self.grid = int(projection_dim), int(bank_size), int(grid)
        if self.projection_dim < 1 or self.bank_size < 0 or self.grid < 1:
            raise ValueError(
                f"ContrastiveMI needs projection_dim >= 1, bank_size >= 0 and grid >= 1; got "
                f"{projection_dim}, {bank_size}, {grid}."
            )
        self.layer_names = None if layers is None else [str(n) for n in layers]
        self.exclude_same_label = bool(exclude_same_label)
        self._quantizers = []

    def taps(self, inner):
        candidates = binarized_layers(inner)
        if not candidates:
            raise ValueError(f"ContrastiveMI: {inner.name!r} has no binarized layer to contrast; binarize it first.")
        if self.layer_names is None:
            chosen = candidates[-3:]
        else:
            by_name = {l.name: l for l in candidates}
            missing = [n for n in self.layer_names if n not in by_name]
            if missing:
                raise ValueError(
                    f"ContrastiveMI layers {missing} are not binarized layers of {inner.name!r}; "
                    f"choose from {sorted(by_name)}."
                )
            chosen = [by_name[n] for n in self.layer_names]
        no_quantizer = [l.name for l in chosen if getattr(l, "input_quantizer", None) is None]
        if no_quantizer:
            raise ValueError(
                f"ContrastiveMI contrasts a layer's input with its input quantizer's output; {no_quantizer} have "
                "none (ABC-Net layers binarize their input into several bases)."
            )
        self._quantizers = [l.input_quantizer for l in chosen]
        self._heads = [
            (tf.keras.layers.Dense(self.projection_dim, name=f"{l.name}_head_f"),
             tf.keras.layers.Dense(self.projection_dim, name=f"{l.name}_head_b"))
            for l in chosen
        ]
        if self.bank_size:
            self._banks = [
                tuple(
                    self.add_weight(
                        name=f"{l.name}_bank_{view}", shape=(self.bank_size, self.projection_dim),
                        initializer="zeros", trainable=False,
                        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                    )
                    for view in ("f", "b")
                )
                for l in chosen
            ]
            self._bank_labels = self.add_weight(
                name="bank_labels", shape=(self.bank_size,), dtype=tf.int32, initializer=tf.keras.initializers.Constant(-1),
                trainable=False, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
            self._filled = self.add_weight(
                name="bank_filled", shape=(), dtype=tf.int32, initializer="zeros", trainable=False,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
            # A ring buffer: the next write position; entries [0, filled) hold embeddings.
            self._position = self.add_weight(
                name="bank_position", shape=(), dtype=tf.int32, initializer="zeros", trainable=False,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
        return [l.input for l in chosen]

    def _pool(self, x):
        if x.shape.rank == 4:
            size = min(x.shape[1], x.shape[2]) // self.grid
            if size > 1:
                x = tf.nn.avg_pool2d(x, size, size, "VALID")
        return tf.reshape(x, [-1, x.shape[1:].num_elements()])

    def info_nce(self, anchors, positives, negatives=None, same=None):
        """`mean_i −log softmax_i` of row i of `[anchors·positivesᵀ | anchors·negativesᵀ] / τ`;
        entries where `same` (`[B, B + M]` or broadcastable to it, off the diagonal) is true are
        left out."""
        return self._info_nce(anchors, positives, negatives, None if same is None else self._penalty(same, anchors, negatives is not None))

    @staticmethod
    def _penalty(excluded, anchors, negatives=True):
        """0, or −1e9 (a zero term of the softmax) where `excluded` is true off the diagonal: built
        once per step and added to every layer's logits (a `where` per call cost more than the matmuls).
        A list: the in-batch columns, then (with `negatives`) the others, as `_info_nce` keeps them."""
        batch = tf.shape(anchors)[0]
        excluded = tf.broadcast_to(excluded, [batch, tf.shape(excluded)[1]])
        diagonal = tf.one_hot(tf.range(batch), tf.shape(excluded)[1], on_value=True, off_value=False)
        penalty = tf.where(tf.logical_and(excluded, tf.logical_not(diagonal)), tf.constant(-1e9, anchors.dtype), tf.constant(0.0, anchors.dtype))
        return tf.split(penalty, [batch, tf.shape(penalty)[1] - batch], axis=1) if negatives else [penalty]

    def _info_nce(self, anchors, positives, negatives, penalty):
        # log-sum-exp minus the positive logit: the same value as a softmax cross-entropy with
        # label i, at about half its cost on CPU for a 4,096-entry bank. The in-batch and the
        # negative logits stay two tensors (one log-sum-exp each, then combined): a concat would
        # copy [B, B + M] logits forward and backward for every layer and direction.
        scaled = anchors / self.temperature
        positive = tf.matmul(scaled, positives, transpose_b=True)
        parts = [positive] if negatives is None else [positive, tf.matmul(scaled, negatives, transpose_b=True)]
        if penalty is not None:
            parts = [logits + p for logits, p in zip(parts, penalty)]
        lse = tf.reduce_logsumexp(parts[0], axis=1)
        if len(parts) > 1:
            lse = tf.reduce_logsumexp(tf.stack([lse, tf.reduce_logsumexp(parts[1], axis=1)], 1), axis=1)
        return tf.reduce_mean(lse - tf.linalg.diag_part(positive))

    @staticmethod
    def _class_ids(labels):
        labels = tf.convert_to_tensor(labels)
        if labels.shape.rank is not None and labels.shape.rank > 1 and labels.shape[-1] != 1:
            labels = tf.argmax(labels, axis=-1)  # one-hot
        return tf.cast(tf.reshape(labels, [-1]), tf.int32)

    def _others(self, z):
        """Embeddings of the other replicas' samples, or None on one replica."""
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return None
        # all_gather is differentiable (its gradient all-reduces and slices back), so a sample's
        # embedding gets the gradient of its role as a negative on the other replicas too.
        gathered = context.all_gather(z, axis=0)
        sizes = context.all_gather(tf.shape(z)[:1], axis=0)
        start = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
        keep = tf.logical_or(tf.range(tf.shape(gathered)[0]) < start, tf.range(tf.shape(gathered)[0]) >= start + tf.shape(z)[0])
        return tf.boolean_mask(gathered, keep)

    def call(self, inputs, training=None):
        taps = inputs[2]
        labels = inputs[3] if len(inputs) > 3 else None
        ids = None if labels is None else self._class_ids(labels)
        same = None
        if ids is not None and self.exclude_same_label:
            # Columns: this replica's batch, the other replicas' samples, then the bank.
            columns = [ids]
            others = self._others(ids)
            if others is not None:
                columns.append(others)
            if self.bank_size:
                columns.append(self._bank_labels)
            same = tf.equal(ids[:, None], tf.concat(columns, 0)[None, :])

        excluded, penalty, total, updates = same, None, 0.0, []
        for i, (latent, quantizer, (head_f, head_b)) in enumerate(zip(taps, self._quantizers, self._heads)):
            z_f = _l2_normalize(head_f(self._pool(latent)))
            z_b = _l2_normalize(head_b(self._pool(quantizer(latent))))
            neg_f, neg_b = self._others(z_f), self._others(z_b)
            if self.bank_size:
                bank_f, bank_b = self._banks[i]
                memory_f, memory_b = tf.convert_to_tensor(bank_f), tf.convert_to_tensor(bank_b)
                neg_f = memory_f if neg_f is None else tf.concat([neg_f, memory_f], 0)
                neg_b = memory_b if neg_b is None else tf.concat([neg_b, memory_b], 0)
                updates.append((bank_f, z_f, bank_b, z_b))
                if i == 0:
                    # The whole bank takes part in the matmul (no copy of its filled part);
                    # entries not yet written are left out like same-label ones.
                    prefix = tf.shape(z_f)[0] + tf.shape(neg_f)[0] - self.bank_size
                    unwritten = tf.concat([tf.zeros([prefix], tf.bool), tf.range(self.bank_size) >= self._filled], 0)[None, :]
                    excluded = unwritten if same is None else tf.logical_or(same, unwritten)
            if i == 0 and excluded is not None:
                penalty = self._penalty(excluded, z_b, neg_f is not None)
            total += 0.5 * (self._info_nce(z_b, z_f, neg_f, penalty) + self._info_nce(z_f, z_b, neg_b, penalty))
        if training and self.bank_size:
            self._enqueue(updates, ids)
        return total / len(taps)

    def _enqueue(self, updates, ids=None):
        # Every replica pushes the whole global batch, so the banks stay identical on all of them.
        context = tf.distribute.get_replica_context()
        gather = (lambda z: context.all_gather(z, axis=0)) if context and context.num_replicas_in_sync > 1 else (lambda z: z)
        # Written in place over the oldest entries (a ring buffer): no copy of the bank per step.
        count = None
        for bank_f, z_f, bank_b, z_b in updates:
            for bank, z in ((bank_f, z_f), (bank_b, z_b)):
                new = gather(tf.stop_gradient(z))[: self.bank_size]
                count = tf.shape(new)[0]
                self._write(bank, self._slots(count), new)
        if ids is not None:
            self._write(self._bank_labels, self._slots(count), gather(ids)[: self.bank_size])
        self._filled.assign(tf.minimum(self._filled + count, self.bank_size))
        self._position.assign((self._position + count) % self.bank_size)

    @staticmethod
    def _write(variable, slots, values):
        if tf.distribute.has_strategy():
            # Mirrored variables have no scatter in replica context: assign the whole (identical
            # on every replica) new value.
            variable.assign(tf.tensor_scatter_nd_update(variable, slots, values))
        else:
            variable.scatter_nd_update(slots, values)

    def _slots(self, count):
        return ((self._position + tf.range(count)) % self.bank_size)[:, None]



    def get_config(self):
        return {
            **super().get_config(),
            "temperature": self.temperature,
            "projection_dim": self.projection_dim,
            "bank_size": self.bank_size,
            "layers": self.layer_names,
            "grid": self.grid,
            "exclude_same_label": self.exclude_same_label,
        }


def _is_probabilities(model: tf.keras.Model) -> bool:
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return activation is tf.keras.activations.softmax or getattr(activation, "__name__", "") == "softmax" or (
        isinstance(last, tf.keras.layers.Softmax)
    )


def _logits(y, probabilities: bool):
    # log p differs from the logits by a per-sample constant, which softmax ignores.
    return tf.math.log(tf.clip_by_value(y, 1e-7, 1.0)) if probabilities else y


@serializable()
class Distillation(_WrappingLoss):
    r"""Knowledge distillation from a frozen float teacher (Hinton, Vinyals, Dean 2015).

    \[
    \mathcal L_\text{KD} = T^2 \cdot \operatorname{mean}_i
        \mathrm{KL}\big(\operatorname{softmax}(t_i/T)\,\|\,\operatorname{softmax}(s_i/T)\big)
    \]

    with teacher logits `t`, student logits `s` and temperature `T` (`T²` keeps the gradient
    scale independent of `T`). Models that end in a softmax are handled through `log p`, which
    equals the logits up to a constant. The standard companion of BNN training (e.g. Real-to-
    Binary Net, ReActNet); it is not part of CMIM's paper, whose released code contrasts
    against a float teacher's features instead.

    ```python
    teacher = ...  # the same net in full precision, trained
    training = tfbin.losses.Distillation(teacher, temperature=4.0, weight=1.0).wrap(model)
    ```

    # Arguments
        teacher: a Keras model with the student's input and number of classes; frozen.
        temperature: T > 0.
        weight: λ.
    """

    def __init__(self, teacher: tf.keras.Model, temperature: float = 4.0, weight: float = 1.0, name: str = "kd", **kwargs):
        super().__init__(weight, name=name, **kwargs)
        if isinstance(teacher, dict):
            teacher = tf.keras.utils.deserialize_keras_object(teacher)
        if not isinstance(teacher, tf.keras.Model):
            raise ValueError(f"Distillation needs a Keras model as teacher, got {type(teacher).__name__}.")
        self.temperature = float(temperature)
        if not self.temperature > 0:
            raise ValueError(f"Distillation temperature must be > 0, got {temperature}.")
        self.teacher = teacher
        self.teacher.trainable = False

    def copy(self):
        return Distillation(self.teacher, self.temperature, self.weight, name=self.name)  # the same teacher

    def taps(self, inner):
        if inner.outputs[0].shape[-1] != self.teacher.outputs[0].shape[-1]:
            raise ValueError(
                f"Distillation: the teacher has {self.teacher.outputs[0].shape[-1]} outputs, the model "
                f"{inner.outputs[0].shape[-1]}; they must predict the same classes."
            )
        self._student_probabilities = _is_probabilities(inner)
        return []

    def call(self, inputs, training=None):
        x, y_pred = inputs[0], inputs[1]
        t = _logits(self.teacher(x, training=False), _is_probabilities(self.teacher)) / self.temperature
        s = _logits(y_pred, self._student_probabilities) / self.temperature
        target = tf.nn.softmax(t)
        kl = tf.reduce_sum(target * (tf.nn.log_softmax(t) - tf.nn.log_softmax(s)), axis=-1)
        return self.temperature**2 * tf.reduce_mean(kl)

    def get_config(self):
        return {
            **super().get_config(),
            "teacher": tf.keras.utils.serialize_keras_object(self.teacher),
            "temperature": self.temperature,
        }
