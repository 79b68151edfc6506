"""binarize() on ordinary float Keras models: sign-destroying activations go, BatchNorm comes in."""
import warnings

import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin import data
from tfbin.introspect import binarized_layers

L = tf.keras.layers


def ordinary_cnn(functional=False):
    """The kind of CNN a Keras tutorial writes: conv-relu-pool stacks, Dropout, softmax head."""
    if not functional:
        return tf.keras.Sequential([
            tf.keras.Input((28, 28, 1)),
            L.Conv2D(32, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Conv2D(64, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Flatten(),
            L.Dropout(0.25),
            L.Dense(128, activation="relu"),
            L.Dense(10, activation="softmax"),
        ])
    inputs = tf.keras.Input((28, 28, 1))
    x = L.Conv2D(32, 3)(inputs)
    x = L.ReLU()(x)
    x = L.MaxPooling2D()(x)
    x = L.Conv2D(64, 3)(x)
    x = L.BatchNormalization()(x)
    x = L.Activation("relu")(x)
    x = L.MaxPooling2D()(x)
    x = L.Flatten()(x)
    x = L.Dropout(0.25)(x)
    x = L.Dense(128, activation="relu")(x)
    outputs = L.Dense(10, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs)


def hand_written_bnn(functional=False):
    """The same net written as a BNN by hand: BN before every binarized layer, no ReLU there,
    BN after the binary dense that feeds the float classifier (`functional=True`: the twin of
    the functional CNN, whose second conv has its own BN)."""
    return tf.keras.Sequential([
        tf.keras.Input((28, 28, 1)),
        L.Conv2D(32, 3),
        L.MaxPooling2D(),
        L.BatchNormalization(),
        L.Conv2D(64, 3),
        *([L.BatchNormalization()] if functional else []),
        L.MaxPooling2D(),
        L.Flatten(),
        L.Dropout(0.25),
        L.BatchNormalization(),
        L.Dense(128),
        L.BatchNormalization(),
        L.ReLU(),
        L.Dense(10, activation="softmax"),
    ])


def test_relus_in_front_of_binarized_layers_are_removed_and_batch_norm_inserted():
    with pytest.warns(UserWarning, match="changed the float graph"):
        result = tfbin.binarize(ordinary_cnn(), "ste")
    model = result.model
    names = [l.name for l in model.layers]
    binarized = [l.name for l in binarized_layers(model)]
    assert len(binarized) == 2  # the second conv and the hidden dense; first and last stay float
    for name in binarized:  # a BN directly in front of each
        assert type(model.layers[names.index(name) - 1]) is L.BatchNormalization
    first = model.layers[0]
    assert tf.keras.activations.serialize(first.activation) == "linear"  # its ReLU fed a sign
    hidden = model.get_layer(binarized[1])
    # It feeds the float classifier: BN after it (its binary sum has scale ~sqrt(fan-in)), then its ReLU.
    after = model.layers[names.index(hidden.name) + 1 : names.index(hidden.name) + 3]
    assert tf.keras.activations.serialize(hidden.activation) == "linear"
    assert type(after[0]) is L.BatchNormalization and after[1].get_config()["activation"] == "relu"
    assert len(result.changes) == 5 and any("removed activation 'relu'" in c for c in result.changes)
    assert any("after 'dense'" in c for c in result.changes)
    model_, callbacks = result  # still unpacks as (model, callbacks)
    assert model_ is model and callbacks == []


def test_functional_relu_layers_become_identities_and_existing_batch_norm_is_used():
    with pytest.warns(UserWarning):
        result = tfbin.binarize(ordinary_cnn(functional=True), "irnet", epochs=2)
    model = result.model
    types = [type(l).__name__ for l in model.layers]
    # One inserted before the second conv (the dense finds the existing BN behind its ReLU),
    # one after the binarized dense, whose output feeds the float classifier.
    assert types.count("BatchNormalization") == 3
    stripped = [l for l in model.layers if type(l) is L.Activation and not l.name.endswith("_activation")]
    assert len(stripped) == 2 and all(l.get_config()["activation"] == "linear" for l in stripped)
    assert model.get_layer(binarized_layers(model)[1].name + "_activation").get_config()["activation"] == "relu"
    x = np.random.default_rng(0).uniform(0, 1, (4, 28, 28, 1)).astype("float32")
    relu_free = tf.keras.Model(model.inputs, binarized_layers(model)[0].input)(x).numpy()
    assert (relu_free < 0).mean() > 0.05  # both signs again (all were >= 0 behind the ReLU)


def test_sign_keeping_activations_and_larq_models_are_left_alone():
    model = tf.keras.Sequential([
        tf.keras.Input((8,)), L.Dense(8), L.BatchNormalization(), L.LeakyReLU(0.1),
        L.Dense(8, activation="tanh"), L.BatchNormalization(), L.Dense(8, activation="elu"), L.BatchNormalization(), L.Dense(2),
    ])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to change, nothing to warn about
        result = tfbin.binarize(model, "ste")
    assert result.changes == [] and len(binarized_layers(result.model)) == 2
    larq_model = tfbin.models.build("lenet_bnn", "ste").model
    assert tfbin.binarize(larq_model, "irnet", epochs=1).changes == []


def test_a_relu_that_also_feeds_a_float_branch_is_kept_with_a_warning():
    inputs = tf.keras.Input((8,))
    x = L.Dense(8, name="stem")(inputs)
    r = L.ReLU(name="shared_relu")(x)
    a = L.Dense(8, name="binary")(r)
    outputs = L.Dense(2, name="head")(L.Concatenate()([a, r]))
    with pytest.warns(UserWarning, match="shared_relu.*also feeds other layers"):
        result = tfbin.binarize(tf.keras.Model(inputs, outputs), "ste")
    assert type(result.model.get_layer("shared_relu")) is L.ReLU


def binarized_hard_accuracy(model, recipe, train, test, seed=0):
    """`binarize(model, recipe)` trained 1 epoch on `train` (Adam 1e-3); its hard accuracy on `test`."""
    tf.keras.utils.set_random_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # binarize's report of its changes
        binarized = tfbin.binarize(model, recipe, epochs=1)
    net = binarized.model
    net.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    net.fit(train, epochs=1, callbacks=binarized.callbacks, verbose=0)
    inner = tfbin.unwrap(net)
    # A TrainingModel (CMIM) compiles itself, not its inner model: score the deployed one.
    inner.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if recipe == "blrnet":
        # BLRNet's BatchNorm learned the statistics of sampled pre-activations; the paper
        # re-estimates them for the deployed (most probable) net, as its docs tell users to.
        tfbin.recalibrate(inner, train, steps=20)
    if tfbin.sharpness.quantizers(inner):
        with tfbin.hard(inner):
            return inner.evaluate(test, verbose=0, return_dict=True)["accuracy"]
    return inner.evaluate(test, verbose=0, return_dict=True)["accuracy"]


@pytest.mark.slow
def test_ordinary_cnns_binarized_with_every_recipe_train_far_above_chance():
    """Real Fashion-MNIST: 12,000 training images, 1 epoch, 2,000 test images. Chance is 0.10;
    every recipe's hard accuracy must exceed 0.60, and binarize's net must come within 5 points
    of the hand-written BNN (same recipe, same data and seed)."""
    try:
        train = data.load("fashion_mnist", "train[:12000]").batch(128).cache()
        test = data.load("fashion_mnist", "test[:2000]").batch(500).cache()
    except data.DataUnavailableError as err:
        pytest.skip(str(err))

    def hard_accuracy(model, recipe):
        return binarized_hard_accuracy(model, recipe, train, test)

    results = {}
    for recipe in tfbin.recipes.available():
        tf.keras.utils.set_random_seed(0)
        results[recipe] = hard_accuracy(ordinary_cnn(), recipe)
    tf.keras.utils.set_random_seed(0)
    results["functional irnet"] = hard_accuracy(ordinary_cnn(functional=True), "irnet")
    tf.keras.utils.set_random_seed(0)
    hand = hard_accuracy(hand_written_bnn(), "irnet")
    tf.keras.utils.set_random_seed(0)
    hand_functional = hard_accuracy(hand_written_bnn(functional=True), "irnet")
    print(results, "hand-written irnet", hand, hand_functional)
    # 0.60 is 6x chance, which the bug this guards (a constant sign of ReLU outputs) scores;
    # seed 0 here: 0.72-0.81 for every recipe (ABR, which sharpened to v = 10 until its defaults
    # were chosen on validation runs, needed 0.45 then; BLRNet 0.59 until its logits got a step
    # size of their own, logit_scale).
    bounds = {name: 0.60 for name in results}
    below = {name: round(results[name], 4) for name in results if results[name] <= bounds[name]}
    assert not below, (below, bounds)
    assert results["irnet"] > hand - 0.05, (results, hand)
    assert results["functional irnet"] > hand_functional - 0.05, (results, hand_functional)


def test_abc_layers_get_no_batch_norm_after_them():
    """ABC-Net's layer output is on the float scale (Σ α·B fits the kernel, Σ β·A the input):
    binarize inserts the BN in front of it but none after it, unlike a sign layer's."""
    with pytest.warns(UserWarning, match="changed the float graph"):
        abc = tfbin.binarize(ordinary_cnn(), "abc")
    with pytest.warns(UserWarning, match="changed the float graph"):
        ste = tfbin.binarize(ordinary_cnn(), "ste")
    assert not any("inserted BatchNormalization after" in c for c in abc.changes), abc.changes
    assert sum("inserted BatchNormalization after" in c for c in ste.changes) == 1, ste.changes
    assert sum("inserted BatchNormalization before" in c for c in abc.changes) == 2
    types = [type(l).__name__ for l in abc.model.layers]
    dense = types.index("ABCDense")
    assert types[dense + 1] != "BatchNormalization" and types[dense - 1] == "BatchNormalization"
