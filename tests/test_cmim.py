"""ContrastiveMI, Distillation and the TrainingModel that carries them."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin.testing import tflite_without_names
from tfbin import export, models
from tfbin.losses import ContrastiveMI, Distillation
from tfbin.introspect import binarized_layers
from tfbin.auxiliary import TrainingModel


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _info_nce(anchors, positives, negatives, tau):
    logits = anchors @ positives.T / tau
    if negatives is not None:
        logits = np.concatenate([logits, anchors @ negatives.T / tau], axis=1)
    return -np.mean(np.diag(_log_softmax(logits)[:, : len(anchors)]))


def test_info_nce_against_a_hand_computed_example():
    # Two samples, orthogonal unit embeddings, tau = 0.5: each row's logits are [2, 0] (own
    # positive first), so the loss is -log(e^2 / (e^2 + 1)).
    a = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    loss = ContrastiveMI(temperature=0.5).info_nce(a, a)
    np.testing.assert_allclose(loss.numpy(), -np.log(np.e**2 / (np.e**2 + 1)), rtol=1e-6)
    # One memory negative equal to the first anchor adds e^2 to row 0 and e^0 to row 1.
    expected = 0.5 * (-np.log(np.e**2 / (2 * np.e**2 + 1)) - np.log(np.e**2 / (np.e**2 + 2)))
    loss = ContrastiveMI(temperature=0.5).info_nce(a, a, a[:1])
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6)


def test_same_label_negatives_are_left_out():
    # Three samples, labels [0, 0, 1], tau = 0.5, orthogonal-ish embeddings: row 0 must not see
    # sample 1 (same class) as a negative, nor the memory entry of class 0; row 2 sees them all.
    a = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], "float32")
    memory = np.array([[0.8, 0.6]], "float32")
    ids = np.array([0, 0, 1])
    columns = np.concatenate([ids, [0]])
    same = ids[:, None] == columns[None, :]
    loss = ContrastiveMI(temperature=0.5).info_nce(a, a, memory, tf.constant(same))
    logits = np.concatenate([a @ a.T, a @ memory.T], axis=1) / 0.5
    masked = np.where(same & ~np.eye(3, 4, dtype=bool), -np.inf, logits)
    expected = -np.mean([masked[i, i] - np.log(np.exp(masked[i][np.isfinite(masked[i])]).sum()) for i in range(3)])
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    # Without the mask the same-class entries count: a larger loss.
    assert ContrastiveMI(temperature=0.5).info_nce(a, a, memory).numpy() > expected + 0.1


@pytest.mark.margin(exact="the bank's labels and ring-buffer counters against the batch order")
def test_the_bank_keeps_the_labels_of_its_entries(rng):
    wrapped = ContrastiveMI(bank_size=24, projection_dim=8).wrap(_model())
    wrapped.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    x, y = rng.uniform(0, 1, (32, 28, 28, 1)).astype("float32"), rng.integers(0, 10, 32)
    wrapped.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    # A ring buffer: the second batch fills slots 16-23, then overwrites the oldest, 0-7.
    np.testing.assert_array_equal(wrapped.terms[0]._bank_labels.numpy(), np.concatenate([y[24:32], y[8:16], y[16:24]]))
    assert wrapped.terms[0]._filled.numpy() == 24 and wrapped.terms[0]._position.numpy() == 8


def test_recipe_defaults_keep_a_memory_bank_and_leave_same_label_negatives_out():
    term = tfbin.recipes.get("irnet_cmim", epochs=3).losses[0]
    assert term.bank_size == ContrastiveMI().bank_size == 1024 and term.exclude_same_label


def _model():
    return models.build("lenet_bnn", "self_binarizing", epochs=2).model


def _numpy_term(term, latents):
    """The loss from the heads' weights and the quantizers, in numpy (bank empty)."""
    total = 0.0
    for latent, q, (head_f, head_b) in zip(latents, term._quantizers, term._heads):
        def embed(a, head):
            z = term._pool(tf.constant(a)).numpy() @ head.kernel.numpy() + head.bias.numpy()
            return z / np.linalg.norm(z, axis=1, keepdims=True)

        z_f, z_b = embed(latent, head_f), embed(q(tf.constant(latent)).numpy(), head_b)
        t = term.temperature
        total += 0.5 * (_info_nce(z_b, z_f, None, t) + _info_nce(z_f, z_b, None, t))
    return total / len(latents)


def _numpy_call(term, latent, ids, bank_f, bank_b, bank_labels, filled, exclude=True):
    """`ContrastiveMI.call` for one tapped layer, in numpy: in-batch and filled bank entries are
    negatives, same-label ones (off the diagonal) and unwritten slots are left out."""
    q, (head_f, head_b) = term._quantizers[0], term._heads[0]

    def embed(a, head):
        z = term._pool(tf.constant(a)).numpy() @ head.kernel.numpy() + head.bias.numpy()
        return z / np.linalg.norm(z, axis=1, keepdims=True)

    z_f, z_b = embed(latent, head_f), embed(q(tf.constant(latent)).numpy(), head_b)
    batch, slots = len(ids), len(bank_labels)
    left_out = np.concatenate([np.zeros((batch, batch), bool), np.broadcast_to(np.arange(slots) >= filled, (batch, slots))], 1)
    if exclude:
        left_out |= ids[:, None] == np.concatenate([ids, bank_labels])[None, :]
    left_out[np.arange(batch), np.arange(batch)] = False  # the positive always counts

    def direction(anchors, positives, memory):
        logits = np.concatenate([anchors @ positives.T, anchors @ memory.T], 1) / term.temperature
        logits = np.where(left_out, -np.inf, logits)
        top = logits.max(1, keepdims=True)
        lse = np.log(np.exp(logits - top).sum(1)) + top[:, 0]
        return np.mean(lse - np.diag(logits[:, :batch]))

    return 0.5 * (direction(z_b, z_f, bank_f) + direction(z_f, z_b, bank_b))


@pytest.mark.parametrize("exclude", [True, False])
def test_call_takes_negatives_from_the_filled_bank_and_leaves_same_label_ones_out(rng, exclude):
    # A bank of 6 slots, 4 written (labels 0, 1, 2, 1), and a batch whose labels repeat
    # (0, 0, 1, 2, 1, 3): every filled slot is a negative except those of the anchor's class,
    # and so is every other sample of the batch except those of its class.
    model = _model()
    tfbin.sharpness.set(model, "v", 3.0)
    term_ = ContrastiveMI(weight=1.0, temperature=0.2, projection_dim=8, bank_size=6, layers=["dense"], exclude_same_label=exclude)
    wrapped = term_.wrap(model)
    term = wrapped.terms[0]
    x = rng.uniform(0, 1, (6, 28, 28, 1)).astype("float32")
    ids = np.array([0, 0, 1, 2, 1, 3])
    wrapped._forward(x, tf.constant(ids), training=False)  # builds the heads
    memory = rng.normal(size=(2, 6, 8)).astype("float32")
    memory /= np.linalg.norm(memory, axis=-1, keepdims=True)
    bank_labels = np.array([0, 1, 2, 1, -1, -1], "int32")
    for variable, value in zip(term._banks[0], memory):
        variable.assign(value)
    term._bank_labels.assign(bank_labels)
    term._filled.assign(4)
    term._position.assign(4)
    _, (value,) = wrapped._forward(x, tf.constant(ids), training=False)
    latent = wrapped._probe(x, training=False)[1].numpy()
    expected = _numpy_call(term, latent, ids, memory[0], memory[1], bank_labels, 4, exclude)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5)
    # The bank and the labels both matter here: without the bank, or without the labels' mask,
    # the value is a different one (so neither can be dropped unnoticed).
    no_bank = _numpy_call(term, latent, ids, memory[0], memory[1], bank_labels, 0, exclude)
    other_mask = _numpy_call(term, latent, ids, memory[0], memory[1], bank_labels, 4, not exclude)
    assert abs(expected - no_bank) > 1e-3 and abs(expected - other_mask) > 1e-3
    # Evaluation does not write the bank.
    assert int(term._filled.numpy()) == 4 and int(term._position.numpy()) == 4


def test_loss_value_and_gradients_reach_heads_and_binarized_layers(rng):
    model = _model()
    tfbin.sharpness.set(model, "v", 3.0)
    wrapped = ContrastiveMI(weight=1.0, temperature=0.2, projection_dim=16, layers=["dense"]).wrap(model)
    term = wrapped.terms[0]
    x = rng.uniform(0, 1, (8, 28, 28, 1)).astype("float32")
    with tf.GradientTape() as tape:
        _, (value,) = wrapped._forward(x, None, training=True)
    latents = [wrapped._probe(x, training=True)[1].numpy()]
    np.testing.assert_allclose(value.numpy(), _numpy_term(term, latents), rtol=1e-4)
    binarized = binarized_layers(model)  # conv2d_1 (below the tap) and dense
    heads = [v for pair in term._heads for layer in pair for v in layer.trainable_weights]
    grads = tape.gradient(value, heads + [binarized[0].kernel])
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


@pytest.mark.margin(exact="configs and weight counts, bank fill count, finite losses, the two .tflite files byte-equal up to tensor names")
def test_wrap_trains_with_fit_and_leaves_no_trace_in_inner(rng, tmp_path):
    model = _model()
    never_wrapped = tf.keras.models.clone_model(model)  # same layer names and config
    config, count = json.dumps(model.get_config(), sort_keys=True), len(model.weights)
    wrapped = ContrastiveMI(weight=0.5, bank_size=32).wrap(model)
    wrapped.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = rng.uniform(0, 1, (64, 28, 28, 1)).astype("float32"), rng.integers(0, 10, 64)
    history = wrapped.fit(x, y, epochs=2, batch_size=16, validation_data=(x, y), verbose=0).history
    assert np.all(np.isfinite(history["cmim_loss"])) and "val_cmim_loss" in history
    assert int(wrapped.terms[0]._filled.numpy()) == 32
    assert len(wrapped.weights) > len(model.weights) == count
    assert json.dumps(wrapped.inner.get_config(), sort_keys=True) == config

    never_wrapped.set_weights(model.get_weights())
    for name, m in (("inner", wrapped.inner), ("never", never_wrapped)):
        m.save(tmp_path / f"{name}.keras")
    inner, never = (tf.keras.models.load_model(tmp_path / f"{n}.keras") for n in ("inner", "never"))
    assert json.dumps(inner.get_config(), sort_keys=True) == json.dumps(never.get_config(), sort_keys=True)
    assert len(inner.weights) == len(never.weights) == count
    a = export.convert(wrapped, tmp_path / "a.tflite", latency=False, num_samples=8)
    b = export.convert(never_wrapped, tmp_path / "b.tflite", latency=False, num_samples=8)
    # The files differ only in tensor names (Keras numbers the exporter's layers per session).
    assert tflite_without_names((tmp_path / "a.tflite").read_bytes()) == tflite_without_names((tmp_path / "b.tflite").read_bytes())
    assert a.op_histogram == b.op_histogram


@pytest.mark.margin(exact="restored heads and bank bitwise equal to the saved ones; fill count")
def test_training_model_checkpoint_restores_heads_and_bank(rng, tmp_path):
    wrapped = ContrastiveMI(bank_size=16, projection_dim=8).wrap(_model())
    wrapped.compile("adam", "sparse_categorical_crossentropy")
    x, y = rng.uniform(0, 1, (32, 28, 28, 1)).astype("float32"), rng.integers(0, 10, 32)
    wrapped.fit(x, y, epochs=1, batch_size=16, verbose=0)
    wrapped.save_weights(tmp_path / "ckpt")
    other = ContrastiveMI(bank_size=16, projection_dim=8).wrap(_model())
    other.compile("adam", "sparse_categorical_crossentropy")
    other.fit(x[:16], y[:16], epochs=1, batch_size=16, verbose=0)  # builds optimizer and bank
    other.load_weights(tmp_path / "ckpt")
    for mine, theirs in zip(wrapped.terms[0].weights, other.terms[0].weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    assert int(other.terms[0]._filled.numpy()) == 16


def test_irnet_cmim_recipe_gives_a_training_model():
    binarized = models.build("fmnist_small", "irnet_cmim", epochs=2)
    assert isinstance(binarized.model, TrainingModel)
    assert [l.name for l in binarized_layers(binarized.model)] == [
        l.name for l in binarized_layers(binarized.model.inner)
    ]
    assert len(binarized.model.terms[0]._heads) == 3
    recipe = tfbin.recipes.get("irnet_cmim", epochs=2, cmim_weight=0.3)
    assert tfbin.recipes.Recipe.from_json(recipe.to_json()).losses[0].weight == 0.3


def test_bad_input():
    with pytest.raises(ValueError, match="temperature must be > 0"):
        ContrastiveMI(temperature=0)
    with pytest.raises(ValueError, match="weight must be >= 0"):
        ContrastiveMI(weight=-1)
    with pytest.raises(ValueError, match="not binarized layers"):
        ContrastiveMI(layers=["nope"]).wrap(_model())
    inputs = tf.keras.Input((4,))
    float_model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="no binarized layer"):
        ContrastiveMI().wrap(float_model)
    with pytest.raises(ValueError, match="same classes"):
        Distillation(float_model).wrap(_model())


def test_distillation_value_against_the_formula(rng):
    student = _model()
    teacher = models.build("lenet_bnn", "ste").model  # any model with the same classes
    wrapped = Distillation(teacher, temperature=3.0, weight=1.0).wrap(student)
    x = rng.uniform(0, 1, (8, 28, 28, 1)).astype("float32")
    _, (value,) = wrapped._forward(x, None, training=False)
    p_t, p_s = teacher(x).numpy(), student(x).numpy()  # both end in a softmax
    t, s = np.log(np.clip(p_t, 1e-7, 1)) / 3, np.log(np.clip(p_s, 1e-7, 1)) / 3
    lt, ls = _log_softmax(t), _log_softmax(s)
    expected = 9 * np.mean(np.sum(np.exp(lt) * (lt - ls), axis=1))
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-4)
    trainable = {id(v) for v in wrapped.trainable_weights}
    assert not any(id(v) in trainable for v in teacher.weights)  # the teacher stays frozen
    assert len(wrapped.trainable_weights) == len(student.trainable_weights)


@pytest.mark.slow
@pytest.mark.margin(exact="replica count, bank fill count, banks equal across replicas, finite losses, unit-norm bank entries (the normalization's formula)")
def test_mirrored_strategy_trains_with_the_contrastive_loss(tmp_path):
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        import tfbin
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        tf.keras.utils.set_random_seed(0)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            model, callbacks = tfbin.models.build("lenet_bnn", "irnet_cmim", epochs=2, bank_size=64)
            model.compile("adam", "sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        x, y = rng.uniform(0, 1, (128, 28, 28, 1)).astype("float32"), rng.integers(0, 10, 128)
        h = model.fit(x, y, batch_size=32, epochs=2, callbacks=callbacks, verbose=0).history
        term = model.terms[0]
        banks = [[v.numpy() for v in b.values] for b in term._banks[0]]
        print(json.dumps({
            "replicas": strategy.num_replicas_in_sync,
            "cmim": h["cmim_loss"],
            "filled": int(term._filled.numpy()),
            "banks_equal": all(np.array_equal(b[0], b[1]) for b in banks),
            "bank_norms": float(np.abs(np.linalg.norm(banks[0][0], axis=1) - 1).max()),
        }))
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert np.all(np.isfinite(result["cmim"]))
    assert result["filled"] == 64 and result["banks_equal"]
    assert result["bank_norms"] < 1e-5  # full of real unit-norm embeddings, gathered from both replicas
