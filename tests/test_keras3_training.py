"""Training on the Keras 3 path: `tfbin.keras3.SharpeningScheduler` on `tfbin.schedules`' schedules,
`tfbin.keras3.binarize` with `tfbin.recipes`' recipes and `tfbin.binarize`'s graph rules (checked
against the Keras 2 path on twin models), `recalibrate`, and the LCE export of a binarized net.

Keras 3 and tf-keras share this process (conftest's `import tfbin` loads Keras 2 first), so the
same architecture is built in both and the two paths' results are compared directly; what must
hold without Keras 2 runs in a subprocess.
"""
import os
import re
import subprocess
import sys
import textwrap
import warnings

import keras
import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import tfbin
import tfbin.keras3 as k3
from tfbin import schedules


def quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# SharpeningScheduler


def ede_net(K, quantizers):
    """Two binary convs on EDE inputs (`quantizers`: the framework's module of quantizer classes)."""
    quant = k3 if K is keras else lq.layers
    return K.Sequential([
        K.Input((6, 6, 2)),
        quant.QuantConv2D(4, 3, input_quantizer=quantizers.EDESign(), kernel_quantizer=quantizers.LibraSign()),
        K.layers.BatchNormalization(),
        quant.QuantConv2D(4, 3, input_quantizer=quantizers.EDESign(), kernel_quantizer=quantizers.LibraSign()),
        K.layers.GlobalAveragePooling2D(),
    ])


def fit(model, epochs, steps, callbacks, initial_epoch=0):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8 * steps, 6, 6, 2)).astype("float32"), rng.normal(size=(8 * steps, 4)).astype("float32")
    model.compile("sgd", "mse")
    return model.fit(x, y, batch_size=8, epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=0)


@pytest.mark.margin(exact="sharpness values of the Keras 3 scheduler against the Keras 2 one's on a twin model")
@pytest.mark.parametrize("update_freq", ["epoch", "batch"])
def test_the_keras3_scheduler_sets_the_schedules_values_as_the_keras2_one_does(update_freq):
    plan = schedules.ede(0.1, 10.0, epochs=4)
    model3 = ede_net(keras, k3)
    history = fit(model3, 3, 5, [k3.SharpeningScheduler(plan, update_freq=update_freq)])
    last = 2 + (4 / 5 if update_freq == "batch" else 0)  # the last epoch's start, or its last batch
    assert k3.sharpness.get(model3, "t") == pytest.approx(plan["t"](last), rel=1e-6)
    assert k3.sharpness.get(model3, "k") == pytest.approx(max(1 / plan["t"](last), 1), rel=1e-6)
    assert len(k3.sharpness.variables(model3, "t")) == 4  # EDE and Libra in both layers
    assert history.history["t"][-1] == k3.sharpness.get(model3, "t")  # the values in use, in the logs
    model2 = ede_net(tf.keras, tfbin.quantizers)  # the Keras 2 path, the same schedule objects
    fit(model2, 3, 5, [tfbin.callbacks.SharpeningScheduler(plan, update_freq=update_freq)])
    for name in ("t", "k"):
        assert k3.sharpness.get(model3, name) == tfbin.sharpness.get(model2, name)
@pytest.mark.margin(exact="sharpness values after resuming at initial_epoch against the schedule's formula; the config round trip")
def test_the_keras3_scheduler_resumes_at_initial_epoch_and_round_trips_its_config():
    plan = {"v": schedules.Linear(1.0, 5.0, epochs=4), "h": 0.5}
    model = keras.Sequential([keras.Input((6, 6, 2)), k3.QuantConv2D(4, 3, input_quantizer=k3.SelfBinarizingSign(),
                                                                    kernel_quantizer="ste_sign")])
    model.add(keras.layers.GlobalAveragePooling2D())
    scheduler = k3.SharpeningScheduler(plan)
    fit(model, 4, 2, [scheduler], initial_epoch=2)
    assert k3.sharpness.get(model, "v") == pytest.approx(4.0) and k3.sharpness.get(model, "h") == 0.5
    again = k3.SharpeningScheduler.from_config(scheduler.get_config())
    assert again.schedules == scheduler.schedules and again.update_freq == "epoch"
    with pytest.raises(KeyError, match=r"No sharpness value named 'tau'.*it has \['h', 'v'\]"):
        fit(model, 1, 2, [k3.SharpeningScheduler({"tau": 1.0})])
    with pytest.raises(ValueError, match="update_freq"):
        k3.SharpeningScheduler(plan, update_freq="step")


def test_keras3_sharpness_reads_and_sets_every_copy_with_the_keras2_errors():
    model = ede_net(keras, k3)
    assert k3.sharpness.names(model) == ["k", "t"]
    k3.sharpness.set(model, "t", 0.25)
    assert [float(v.numpy()) for v in k3.sharpness.variables(model, "t")] == [0.25] * 4
    model.layers[0].input_quantizer.sharpness_weights["t"].assign(0.5)
    with pytest.raises(ValueError, match=r"different values.*\[0.25, 0.5\]"):
        k3.sharpness.get(model, "t")
    with pytest.raises(ValueError, match="must be finite"):
        k3.sharpness.set(model, "t", float("nan"))
    unbuilt = keras.Sequential([k3.QuantDense(2, input_quantizer=k3.EDESign(name="q"))])
    with pytest.raises(KeyError, match=r"it has none\. Quantizers not built yet .*\['q'\]"):
        k3.sharpness.variables(unbuilt, "t")


# ---------------------------------------------------------------------------------------------
# binarize: the Keras 2 path's rules on twin models


def ordinary_cnn(K, functional=False):
    """test_binarize's tutorial CNN (conv-relu-pool stacks, Dropout, softmax head), every layer
    named so that both frameworks name them alike."""
    L = K.layers
    if not functional:
        return K.Sequential([
            K.Input((28, 28, 1)),
            L.Conv2D(32, 3, activation="relu", name="c1"), L.MaxPooling2D(name="p1"),
            L.Conv2D(64, 3, activation="relu", padding="same", name="c2"), L.MaxPooling2D(name="p2"),
            L.Flatten(name="f"), L.Dropout(0.25, name="d"),
            L.Dense(128, activation="relu", name="h"), L.Dense(10, activation="softmax", name="out"),
        ], name="cnn")
    inputs = K.Input((28, 28, 1))
    x = L.MaxPooling2D(name="p1")(L.ReLU(name="r1")(L.Conv2D(32, 3, name="c1")(inputs)))
    x = L.Activation("relu", name="a2")(L.BatchNormalization(name="bn2")(L.Conv2D(64, 3, padding="same", name="c2")(x)))
    x = L.Dropout(0.25, name="d")(L.Flatten(name="f")(L.MaxPooling2D(name="p2")(x)))
    x = L.Dense(128, activation="relu", name="h")(x)
    return K.Model(inputs, L.Dense(10, activation="softmax", name="out")(x), name="cnn")


def residual_net(K, unnormalized_branch, shared_relu=False):
    """test_binarize's residual nets: tanh(BN(conv(x)) + shortcut) before a binary conv, the
    shortcut normalized or a float conv; with `shared_relu` a ReLU that also feeds the next sum."""
    L = K.layers
    inputs = K.Input((8, 8, 3))
    x = L.Activation("tanh", name="t0")(L.BatchNormalization(name="bn0")(L.Conv2D(8, 3, padding="same", name="stem")(inputs)))
    y = L.BatchNormalization(name="bn1")(L.Conv2D(8, 3, padding="same", name="block")(x))
    shortcut = L.Conv2D(8, 1, name="float_branch")(x) if unnormalized_branch else x
    x = (L.ReLU(name="relu") if shared_relu else L.Activation("tanh", name="t1"))(L.Add(name="add")([y, shortcut]))
    y = L.BatchNormalization(name="bn2")(L.Conv2D(8, 3, padding="same", name="after_add")(x))
    x = L.Add(name="add2")([y, x]) if shared_relu else y
    return K.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling2D(name="gap")(x)), name="res")


def described(model):
    """`(name, class, activation, quantizer classes, pad_values)` of each layer but the input."""
    rows = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        config = layer.get_config()
        quantizers = [type(getattr(layer, f"{r}_quantizer", None)).__name__ for r in ("input", "kernel")]
        rows.append((layer.name, type(layer).__name__, config.get("activation"), *quantizers, config.get("pad_values")))
    return rows


def both(build, recipe, **kwargs):
    """`build` binarized by the Keras 2 and the Keras 3 path, with the warnings each issued."""
    results = []
    for K, binarize in ((tf.keras, tfbin.binarize), (keras, k3.binarize)):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            result = binarize(build(K), recipe, **kwargs)
        results.append((result, [str(w.message).replace("tfbin.keras3.", "tfbin.") for w in record]))
    return results


TWINS = {
    "cnn": ordinary_cnn,
    "cnn_functional": lambda K: ordinary_cnn(K, functional=True),
    "residual": lambda K: residual_net(K, False),
    "residual_unnormalized_branch": lambda K: residual_net(K, True),
    "residual_shared_relu": lambda K: residual_net(K, False, shared_relu=True),
}


@pytest.mark.parametrize("recipe", ["ste", "irnet"])
@pytest.mark.parametrize("name", sorted(TWINS))
def test_keras3_binarize_makes_the_keras2_paths_graph(name, recipe):
    (made2, warned2), (made3, warned3) = both(TWINS[name], recipe, epochs=2)
    assert described(made3.model) == described(made2.model)
    assert made3.changes == made2.changes
    assert warned3 == warned2  # "changed the float graph", "also feeds other layers", ...
    assert type(made3.model).__name__ == type(made2.model).__name__
    model3, callbacks3 = made3  # unpacks as (model, callbacks), as tfbin.binarize's
    assert [type(c).__name__ for c in callbacks3] == [type(c).__name__ for c in made2.callbacks]
    for c3, c2 in zip(callbacks3, made2.callbacks):
        assert isinstance(c3, keras.callbacks.Callback) and c3.schedules == c2.schedules and c3.update_freq == c2.update_freq


@pytest.mark.parametrize("mode", ["always", "never"])
def test_keras3_binarize_inserts_batch_norm_as_the_keras2_path_does(mode):
    (made2, _), (made3, _) = both(ordinary_cnn, "ste", insert_batch_norm=mode)
    assert described(made3.model) == described(made2.model) and made3.changes == made2.changes
    with pytest.raises(ValueError, match="insert_batch_norm"):
        k3.binarize(ordinary_cnn(keras), "ste", insert_batch_norm="sometimes")


def test_keras3_binarize_keeps_the_named_layers_and_the_weights():
    model = ordinary_cnn(keras)
    model3, _ = quiet(k3.binarize, model, "ste", keep_full_precision=("first", "last", "h"))
    assert [l.name for l in model3.layers if isinstance(l, (k3.QuantConv2D, k3.QuantDense))] == ["c2"]
    np.testing.assert_array_equal(model3.get_layer("c2").kernel.numpy(), model.get_layer("c2").kernel.numpy())
    np.testing.assert_array_equal(model3.get_layer("out").kernel.numpy(), model.get_layer("out").kernel.numpy())
    with pytest.raises(ValueError, match="keep_full_precision names layer 'nope'"):
        k3.binarize(ordinary_cnn(keras), "ste", keep_full_precision=("nope",))
    with pytest.raises(ValueError, match="nothing to binarize"):
        k3.binarize(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), "ste")


def test_keras3_binarize_refuses_what_it_cannot_rebuild():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(TypeError, match="subclassed"):
        k3.binarize(Subclassed(), "ste")
    with pytest.raises(TypeError, match="built model"):
        k3.binarize(keras.Sequential([keras.layers.Dense(2), keras.layers.Dense(2), keras.layers.Dense(2)]), "ste")
    with pytest.raises(TypeError, match="Keras 3 keras.Model"):
        k3.binarize(ordinary_cnn(tf.keras), "ste")


def test_a_keras3_binary_model_keeps_its_graph_and_gets_the_recipes_quantizers():
    binary = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip")
    model = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(8, 3, name="stem"), keras.layers.ReLU(name="relu"),
        k3.QuantConv2D(8, 3, name="b1", **binary), keras.layers.GlobalAveragePooling2D(name="gap"), keras.layers.Dense(2, name="head"),
    ])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a binary model chose its own graph: nothing changed
        made = k3.binarize(model, "irnet", epochs=3)
    assert made.changes == [] and [l.name for l in made.model.layers] == ["stem", "relu", "b1", "gap", "head"]
    b1 = made.model.get_layer("b1")
    assert type(b1.input_quantizer) is k3.EDESign and type(b1.kernel_quantizer) is k3.LibraSign
    np.testing.assert_array_equal(b1.kernel.numpy(), model.get_layer("b1").kernel.numpy())


RECIPE_QUANTIZERS = {  # recipe: (input quantizer, kernel quantizer, constraint, sharpness names)
    "ste": ("SteSign", "SteSign", "WeightClip", []),
    "irnet": ("EDESign", "LibraSign", "NoneType", ["k", "t"]),
    "self_binarizing": ("SelfBinarizingSign", "SelfBinarizingSign", "NoneType", ["h", "v", "v_kernel"]),
    "dab": ("SteSign", "DistributionAwareSign", "WeightClip", []),
    "abr": ("BoundedRectifier", "SteSign", "WeightClip", ["h", "v"]),
    "approx_sign": ("ApproxSign", "SteSign", "WeightClip", []),
    "swish_sign": ("SwishSign", "SteSign", "WeightClip", []),
    "bireal": ("ApproxSign", "MagnitudeAwareSign", "WeightClip", []),
}


@pytest.mark.margin(exact="the quantizer classes and configs binarize chose, the sharpness names, and the values the callbacks set against the schedules")
@pytest.mark.parametrize("recipe", sorted(RECIPE_QUANTIZERS))
def test_every_keras3_recipe_trains_with_its_callbacks(recipe):
    made = quiet(k3.binarize, ordinary_cnn(keras, functional=True), recipe, epochs=2)
    recipe2 = tfbin.recipes.get(recipe, epochs=2)
    layers = [l for l in made.model.layers if isinstance(l, (k3.QuantConv2D, k3.QuantDense))]
    assert [l.name for l in layers] == ["c2", "h"]
    inputs, kernels, constraint, names = RECIPE_QUANTIZERS[recipe]
    for layer in layers:
        assert (type(layer.input_quantizer).__name__, type(layer.kernel_quantizer).__name__) == (inputs, kernels)
        assert type(layer.kernel_constraint).__name__ == constraint
        for role in ("input", "kernel"):  # the recipe's quantizer configs, in their Keras 3 twins
            expected = tf.keras.utils.serialize_keras_object(getattr(recipe2, f"make_{role}_quantizer")())["config"]
            assert {k: v for k, v in getattr(layer, f"{role}_quantizer").get_config().items() if k in expected and k not in ("dtype", "name")} == \
                   {k: v for k, v in expected.items() if k not in ("dtype", "name")}
    assert k3.sharpness.names(made.model) == names
    assert sorted(n for c in made.callbacks for n in c.schedules) == sorted(recipe2.schedules)
    rng = np.random.default_rng(0)
    made.model.compile("adam", "sparse_categorical_crossentropy")
    made.model.fit(rng.uniform(size=(16, 28, 28, 1)), rng.integers(0, 10, 16), batch_size=8, epochs=2,
                   callbacks=made.callbacks, verbose=0)
    for name in names:
        scheduler = next(c for c in made.callbacks if name in c.schedules)
        last = 1 + (1 / 2 if scheduler.update_freq == "batch" else 0)
        assert k3.sharpness.get(made.model, name) == pytest.approx(scheduler.schedules[name](last), rel=1e-6)


@pytest.mark.parametrize("recipe, overrides, missing", [
    ("abc", {}, "'abc' layers"),
    ("blrnet", {"epochs": 2}, "'blrnet' layers"),
    ("irnet_cmim", {"epochs": 2}, "auxiliary loss ContrastiveMI"),
    ("abr", {"epochs": 2, "slope_growth": 1e-3}, "auxiliary loss SlopeGrowth"),
])
def test_recipes_without_a_keras3_version_say_what_is_missing(recipe, overrides, missing):
    with pytest.raises(NotImplementedError, match=rf"Recipe '{recipe}' has no Keras 3 version yet: .*{re.escape(missing)}"):
        k3.binarize(ordinary_cnn(keras), recipe, **overrides)


@pytest.mark.margin(exact="the op histogram of the export (one LceBconv2d per binarized layer)")
@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("recipe", ["ste", "irnet"])
def test_a_keras3_binarized_net_trains_a_step_and_exports_one_binary_conv_per_binarized_layer(functional, recipe):
    model, callbacks = quiet(k3.binarize, ordinary_cnn(keras, functional), recipe, epochs=1)
    rng = np.random.default_rng(0)
    model.compile("adam", "sparse_categorical_crossentropy")
    before = model.get_layer("c2").kernel.numpy()
    model.fit(rng.uniform(size=(8, 28, 28, 1)), rng.integers(0, 10, 8), batch_size=8, epochs=1, callbacks=callbacks, verbose=0)
    assert not np.array_equal(model.get_layer("c2").kernel.numpy(), before)  # one step trained it
    ops = k3.op_histogram(k3.convert(model))
    binarized = k3.binarized_layers(model)
    assert [type(l).__name__ for l in binarized] == ["QuantConv2D", "QuantDense"], binarized
    assert ops["LceBconv2d"] == 2 and ops["CONV_2D"] == 1, ops  # the float stem stays float
    # The binary Dense is a 1×1 binary conv (as the Keras 2 exporter makes it); the classifier stays float.
    assert ops["FULLY_CONNECTED"] == 1, ops


# ---------------------------------------------------------------------------------------------
# recalibrate


def soft_net():
    return keras.Sequential([
        keras.Input((5,)),
        k3.QuantDense(6, input_quantizer=k3.SelfBinarizingSign(), kernel_quantizer="ste_sign", name="binary"),
        keras.layers.Dropout(0.5, name="drop"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Dense(3, name="head"),
    ])


def test_recalibrate_averages_the_hard_forms_batch_statistics():
    model, rng = soft_net(), np.random.default_rng(0)
    x = rng.normal(size=(3, 16, 5)).astype("float32")
    binary = model.get_layer("binary")
    with k3.hard(model):
        hard = [binary(batch).numpy() for batch in x]  # what the BN sees in the hard form
    report = k3.recalibrate(model, tf.data.Dataset.from_tensor_slices(x), steps=None)
    assert report == {"batch_norms": 1, "steps": 3}
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([h.mean(0) for h in hard], 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([h.var(0) for h in hard], 0), rtol=1e-4, atol=1e-6)
    assert not any(q.hard_mode for q in k3.quantizers(model)) and model.get_layer("drop").rate == 0.5
    assert bn.momentum == 0.99
    assert k3.recalibrate(model, x[0], steps=1) == {"batch_norms": 1, "steps": 1}  # an array of inputs


def test_recalibrate_with_check_keeps_statistics_only_if_hard_accuracy_holds():
    model, rng = soft_net(), np.random.default_rng(1)
    x = rng.normal(size=(32, 5)).astype("float32")
    bn = model.get_layer("bn")
    with k3.hard(model):
        labels = model.predict(x, verbose=0).argmax(-1)  # the current statistics are perfect on these
    check = tf.data.Dataset.from_tensor_slices((x, labels)).batch(8)
    shifted = tf.data.Dataset.from_tensor_slices(x * 5 + 3).batch(8)
    report = k3.recalibrate(model, shifted, steps=2, check=check)
    assert report["steps"] == 2 and report["check_accuracy_before"] == 1.0 and report["check_images"] == 32
    assert report["applied"] == (report["check_accuracy_after"] >= 1.0)
    if not report["applied"]:  # the previous statistics are back
        np.testing.assert_array_equal(bn.moving_mean.numpy(), np.zeros(6))
        np.testing.assert_array_equal(bn.moving_variance.numpy(), np.ones(6))
    with pytest.raises(ValueError, match="no BatchNormalization"):
        k3.recalibrate(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]), x)
    with pytest.raises(ValueError, match="positive integer"):
        k3.recalibrate(model, x, steps=0)


# ---------------------------------------------------------------------------------------------
# Without Keras 2 in the process
@pytest.mark.margin(exact="which modules are loaded, the scheduler's values and recalibrate's report, binarize's error message")
def test_without_keras2_the_scheduler_recalibrate_and_binarize_work():
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    code = textwrap.dedent("""
        import sys
        import keras, numpy as np
        import tfbin.keras3 as k3
        import tfbin.schedules as schedules
        model = keras.Sequential([keras.Input((4,)), k3.QuantDense(3, input_quantizer="ede_sign", kernel_quantizer="ste_sign"),
                                  keras.layers.BatchNormalization()])
        model.compile("sgd", "mse")
        model.fit(np.ones((8, 4)), np.ones((8, 3)), epochs=2, verbose=0,
                  callbacks=[k3.SharpeningScheduler(schedules.ede(0.1, 10, epochs=2))])
        print(k3.sharpness.get(model, "t"), k3.recalibrate(model, np.ones((8, 4)))["steps"])
        float_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(8), keras.layers.Dense(3)])
        binarized = k3.binarize(float_model, "ste").model
        print([type(l.kernel_quantizer).__name__ for l in k3.binarized_layers(binarized)])
        print(sorted(m for m in ("larq", "tf_keras") if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    lines = result.stdout.strip().splitlines()
    assert lines[-3:] == ["1.0 1", "['SteSign']", "[]"], result.stderr[-3000:]


@pytest.mark.margin(exact="constraint classes and arguments; the clip's values against the formula, to float32 rounding")
def test_dab_with_mean_center_gets_the_keras3_mean_centered_clip(rng):
    made = quiet(k3.binarize, ordinary_cnn(keras, functional=True), "dab", mean_center=True)
    constraint = made.model.get_layer("c2").kernel_constraint
    assert type(constraint) is k3.MeanCenteredClip and constraint.clip_value == 1.0
    w = (2 * rng.normal(size=(3, 3, 8, 4))).astype(np.float32)
    expected = np.clip(w - w.mean(axis=-2, keepdims=True), -1.0, 1.0)  # DAB's centring over input channels, then the clip
    np.testing.assert_allclose(constraint(tf.constant(w)).numpy(), expected, rtol=0, atol=1e-6)
    # The Keras 2 path's config makes the twin, with its argument.
    keras2_config = tf.keras.utils.serialize_keras_object(tfbin.constraints.MeanCenteredClip(0.5))
    twin = k3.kernel_constraints.get(keras2_config)
    assert type(twin) is k3.MeanCenteredClip and twin.clip_value == 0.5
    with pytest.raises(ValueError, match="input channels"):
        constraint(tf.zeros((4,)))
