"""binarize() on ordinary float Keras models: sign-destroying activations go, BatchNorm comes in."""
import contextlib
import json
import re
import warnings

import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin import data, models
from tfbin.introspect import binarized_layers
from tfbin.models import small

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
    the functional CNN, whose second conv has its own BN; through max-pool, flatten and dropout
    it normalizes the dense's input too)."""
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
        *([] if functional else [L.BatchNormalization()]),
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
    # One line per kind of change (2 ReLUs removed, 2 BNs inserted before, 1 after), naming the layers.
    assert len(result.changes) == 3 and any("removed activation 'relu' of 2 layers" in c for c in result.changes)
    before = next(c for c in result.changes if "inserted BatchNormalization before" in c)
    assert all(repr(name) in before for name in binarized)
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


def one_epoch_hard_accuracies(seed=0):
    """Every recipe's `binarize(ordinary_cnn())`: hard accuracy on 2,000 Fashion-MNIST test images
    after 1 epoch on 12,000 training images (seed: initial weights and the recipes' seeds)."""
    train = data.load("fashion_mnist", "train[:12000]").batch(128).cache()
    test = data.load("fashion_mnist", "test[:2000]").batch(500).cache()
    results = {}
    # larq's other baselines share ste's forward and graph changes; the bug guarded is in those.
    for recipe in [r for r in tfbin.recipes.available() if r == "ste" or r not in tfbin.recipes.LARQ_BASELINES]:
        tf.keras.utils.set_random_seed(seed)
        results[recipe] = binarized_hard_accuracy(ordinary_cnn(), recipe, train, test, seed=seed)
    return results


def one_epoch_figures(seed=0):
    return {"binarize_one_epoch_worst_recipe": min(one_epoch_hard_accuracies(seed).values())}


@pytest.mark.slow
@pytest.mark.release  # ~4 min; in make test, binarize's graph is checked exactly (the test below)
@pytest.mark.margin("binarize_one_epoch_worst_recipe")
def test_ordinary_cnns_binarized_with_every_recipe_train_far_above_chance():
    """Real Fashion-MNIST, 1 epoch: every recipe's binarized tutorial CNN scores far above chance
    (0.10). The bug this guards, a constant sign of ReLU outputs, scores near chance."""
    try:
        results = one_epoch_hard_accuracies(seed=0)
    except data.DataUnavailableError as err:
        pytest.skip(str(err))
    # Bound 0.45 (4.5x chance). The worst recipe measured 0.646-0.742 over seeds 0-2 x
    # TF_ENABLE_ONEDNN_OPTS=0/1 (bench/results/test_margins.json, `python bench/test_margins.py`):
    # the bound lies beyond the worst value by twice that spread.
    below = {name: round(acc, 4) for name, acc in results.items() if not acc > 0.45}
    assert not below, (below, results)


def _computation(model):
    """What a model computes, layer by layer: types and configs without names, seeds or
    initializers; identity activations dropped and `ReLU()` written as `Activation("relu")`."""
    steps = []
    for layer in model.layers:
        config = {k: v for k, v in layer.get_config().items() if k not in ("name", "seed") and not k.endswith("initializer")}
        kind = type(layer).__name__
        if kind == "InputLayer" or (kind == "Activation" and config["activation"] == "linear"):
            continue
        if kind == "ReLU":
            kind, config = "Activation", {"activation": "relu", "trainable": config["trainable"], "dtype": config["dtype"]}
        for key in ("input_quantizer", "kernel_quantizer"):
            if isinstance(config.get(key), dict):
                config[key] = {**config[key], "config": {k: v for k, v in config[key]["config"].items() if k != "name"}}
        if config.get("activation") == "linear" and kind != "Activation":
            config.pop("activation")
        steps.append((kind, json.dumps(config, sort_keys=True, default=str)))
    return steps


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("recipe", ["ste", "irnet"])
def test_binarize_of_a_tutorial_cnn_computes_what_a_hand_written_bnn_computes(functional, recipe):
    """binarize's net is the hand-written BNN, exactly: the same layers with the same configs,
    and with the same weights the same outputs, bit for bit (the same ops in the same order)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        made = tfbin.binarize(ordinary_cnn(functional), recipe, epochs=1).model
        hand = tfbin.binarize(hand_written_bnn(functional), recipe, epochs=1).model
    assert _computation(made) == _computation(hand)
    weighted = lambda m: [l for l in m.layers if l.weights]  # noqa: E731
    for mine, theirs in zip(weighted(made), weighted(hand), strict=True):
        theirs.set_weights(mine.get_weights())
    x = np.random.default_rng(0).uniform(0, 1, (16, 28, 28, 1)).astype("float32")
    for hard in (False, True):
        with contextlib.ExitStack() as stack:
            if hard:
                stack.enter_context(tfbin.hard(made))
                stack.enter_context(tfbin.hard(hand))
            np.testing.assert_array_equal(made(x, training=False).numpy(), hand(x, training=False).numpy())


def test_abc_layers_get_no_batch_norm_after_them():
    """ABC-Net's layer output is on the float scale (Σ α·B fits the kernel, Σ β·A the input):
    binarize inserts the BN in front of it but none after it, unlike a sign layer's."""
    with pytest.warns(UserWarning, match="changed the float graph"):
        abc = tfbin.binarize(ordinary_cnn(), "abc")
    with pytest.warns(UserWarning, match="changed the float graph"):
        ste = tfbin.binarize(ordinary_cnn(), "ste")
    assert not any("inserted BatchNormalization after" in c for c in abc.changes), abc.changes
    assert sum("inserted BatchNormalization after" in c for c in ste.changes) == 1, ste.changes
    before = [c for c in abc.changes if "inserted BatchNormalization before" in c]
    assert len(before) == 1 and "before 2 binarized layers" in before[0]  # one line for both
    types = [type(l).__name__ for l in abc.model.layers]
    dense = types.index("ABCDense")
    assert types[dense + 1] != "BatchNormalization" and types[dense - 1] == "BatchNormalization"


@pytest.mark.parametrize("name, count", [("resnet20", 18), ("vgg_small", 5)])
@pytest.mark.parametrize("recipe", ["irnet", "ste"])
def test_the_papers_nets_come_out_as_the_papers_wrote_them(name, count, recipe):
    """IR-Net's ResNet-20 feeds each binary conv hardtanh(BN(conv(x)) + shortcut(x)), VGG-Small
    hardtanh(BN(pool(conv(x)))): already normalized, so binarize adds nothing — the float
    architecture's layers, only the convs between the float stem and classifier quantized."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing changed, nothing to warn about
        result = models.build(name, recipe, epochs=1)
    assert result.changes == []
    float_types = [type(l).__name__ for l in getattr(small, name)().layers]
    types = [type(l).__name__ for l in result.model.layers]
    convs = [i for i, t in enumerate(float_types) if t == "Conv2D"]
    expected = [("QuantConv2D" if i in convs[1:] else t) for i, t in enumerate(float_types)]
    assert types == expected
    assert types.count("QuantConv2D") == len(binarized_layers(result.model)) == count


def residual_net(unnormalized_branch: bool):
    """stem -> BN -> hardtanh = x; hardtanh(BN(conv(x)) + shortcut) -> binary conv -> classifier,
    the shortcut being x (normalized) or a float conv of x (not)."""
    inputs = tf.keras.Input((8, 8, 3))
    x = models.HardTanh()(L.BatchNormalization()(L.Conv2D(8, 3, padding="same", name="stem")(inputs)))
    y = L.BatchNormalization()(L.Conv2D(8, 3, padding="same", name="block")(x))
    shortcut = L.Conv2D(8, 1, name="float_branch")(x) if unnormalized_branch else x
    x = models.HardTanh()(L.Add()([y, shortcut]))
    x = L.Conv2D(8, 3, padding="same", name="after_add")(x)
    x = L.GlobalAveragePooling2D()(L.BatchNormalization()(x))
    return tf.keras.Model(inputs, L.Dense(2, name="head")(x))


def test_a_residual_sum_with_an_unnormalized_branch_still_gets_batch_norm():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tfbin.binarize(residual_net(False), "ste").changes == []
    with pytest.warns(UserWarning, match="changed the float graph"):
        result = tfbin.binarize(residual_net(True), "ste", keep_full_precision=("first", "last", "float_branch"))
    assert result.changes == ["inserted BatchNormalization before 'after_add': a binarized layer's sign needs a "
                              "centered, scaled input (and the STE's |x| ≤ 1 window)"]
    names = [l.name for l in result.model.layers]
    assert names[names.index("after_add") - 1] == "after_add_input_bn"


def test_a_relu_after_a_residual_sum_is_removed_and_one_that_stays_gets_batch_norm():
    """ResNet v1 blocks: relu(BN(conv(x)) + x). The ReLU in front of a binarized conv goes; where
    it also feeds the next sum it stays (with a warning) and a BN behind it restores both signs."""
    def net(shared):
        inputs = tf.keras.Input((8, 8, 3))
        x = L.BatchNormalization()(L.Conv2D(8, 3, padding="same", name="stem")(inputs))
        x = L.ReLU(name="relu")(L.Add()([L.BatchNormalization()(L.Conv2D(8, 3, padding="same", name="block")(x)), x]))
        y = L.BatchNormalization()(L.Conv2D(8, 3, padding="same", name="next")(x))
        x = L.Add()([y, x]) if shared else y
        return tf.keras.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(x)))

    with pytest.warns(UserWarning, match="changed the float graph"):
        result = tfbin.binarize(net(shared=False), "ste")
    assert result.changes == ["removed the ReLU of 'relu': sign() of a non-negative output is constant, so 'next' would see no information"
                              .replace("the ReLU of", "activation 'relu' of")]
    with pytest.warns(UserWarning) as record:
        result = tfbin.binarize(net(shared=True), "ste")
    assert any(re.match("tfbin.binarize: relu .*also feeds other layers", str(w.message)) for w in record)
    assert [c.split(":")[0] for c in result.changes] == ["inserted BatchNormalization before 'next'"]
    assert type(result.model.get_layer("relu")) is L.ReLU


def test_insert_batch_norm_always_or_never():
    with pytest.warns(UserWarning, match="changed the float graph") as record:
        always = models.build("resnet20", "irnet", epochs=1, insert_batch_norm="always")
    # One line per kind of change, the 18 layers named as a numbered run.
    [line] = always.changes
    assert re.fullmatch(r"inserted BatchNormalization before 18 binarized layers \('conv2d_(\d+)' … 'conv2d_(\d+)'\): .*", line)
    message = str(next(w.message for w in record if "changed the float graph" in str(w.message)))
    assert message.splitlines() == ["tfbin.binarize changed the float graph:", f"- {line}"]
    types = [type(l).__name__ for l in always.model.layers]
    assert all(types[i - 1] == "BatchNormalization" for i, t in enumerate(types) if t == "QuantConv2D")
    float_bns = [type(l).__name__ for l in small.resnet20().layers].count("BatchNormalization")
    assert types.count("BatchNormalization") == float_bns + 18

    with pytest.warns(UserWarning, match="changed the float graph"):
        never = tfbin.binarize(ordinary_cnn(), "ste", insert_batch_norm="never")
    assert [" ".join(c.split(" ")[:3]) for c in never.changes] == [
        "removed activation 'relu'", "inserted BatchNormalization after"]  # the ReLUs still go
    assert not any(l.name.endswith("_input_bn") for l in never.model.layers)
    with pytest.raises(ValueError, match="insert_batch_norm"):
        tfbin.binarize(ordinary_cnn(), "ste", insert_batch_norm="sometimes")


def test_the_grouped_warning_has_one_line_per_kind_of_change():
    with pytest.warns(UserWarning, match="changed the float graph") as record:
        result = tfbin.binarize(ordinary_cnn(functional=True), "ste")
    message = str(next(w.message for w in record if "changed the float graph" in str(w.message)))
    lines = message.splitlines()
    assert lines[0] == "tfbin.binarize changed the float graph:" and lines[1:] == [f"- {c}" for c in result.changes]
    kinds = [c.split(" ")[0] + " " + c.split(" ")[2] for c in result.changes]  # removed/inserted ... before/after
    assert len(kinds) == len(set(kinds)) == 3, result.changes
    # The ReLU layer and the Activation('relu') are one kind: one line naming both.
    assert "removed activation 'relu' of 2 layers ('re_lu', 'activation')" in result.changes[0]


@pytest.mark.slow
def test_resnet20_with_irnet_exports_every_binarized_conv_as_a_binary_op():
    """Without the BNs binarize used to insert (float MUL in LCE: 18 in resnet20), every binary
    conv still becomes LceBconv2d and no float MUL is left (50-70 s on 2 busy cores)."""
    from tfbin.export import convert

    model = models.build("resnet20", "irnet", epochs=1).model
    x = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    report = convert(model, None, sample_inputs=x, latency=False)
    assert report.all_binary and len(report.layers) == 18
    ops = report.op_histogram
    assert ops["LceBconv2d"] == 18 and ops.get("CONV_2D") == 1 and "MUL" not in ops, ops
    assert ops.get("ADD") == 18, ops  # the residual sums
    assert report.parity["passed"], report.parity
