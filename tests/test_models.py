"""tfbin.models: every architecture builds with a recipe and trains a step."""
import larq_zoo
import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin import models, recipes
from tfbin.binarize import _is_larq_binary_weight_layer
from tfbin.introspect import binarized_layers
from tfbin.models.zoo import ZOO

SMALL_INPUTS = {"xnornet": (217, 217, 3), "binary_alexnet": (57, 57, 3), "dorefanet": (44, 44, 3)}


def train_step(model, input_shape, num_classes=10):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(2, *input_shape)).astype("float32")
    y = rng.integers(0, num_classes, size=2)
    # Eager: tracing a zoo-sized graph costs ~30 s per model, an eager step ~3 s.
    model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", run_eagerly=True)
    before = [w.numpy().copy() for w in model.trainable_weights]
    loss = model.train_on_batch(x, y)
    assert np.all(np.isfinite(loss))  # [loss, cmim_loss] for a training model
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))


@pytest.mark.parametrize("name", models.available())
def test_every_model_builds_with_ste_and_trains_a_step(name):
    shape = SMALL_INPUTS.get(name, (32, 32, 3) if name in ZOO or name in ("vgg_small", "resnet20") else (28, 28, 1))
    model, callbacks = models.build(name, "ste", input_shape=shape)
    assert binarized_layers(model), name
    if name in ZOO:  # exactly the zoo's own binary layers: its float shortcuts etc. stay float
        module, function, _ = ZOO[name]
        raw = getattr(getattr(larq_zoo, module), function)(input_shape=shape, weights=None, num_classes=10)
        expected = [tuple(l.kernel.shape) for l in raw.layers if _is_larq_binary_weight_layer(l)]
        assert [tuple(l.kernel.shape) for l in binarized_layers(model)] == expected
    train_step(model, shape)


@pytest.mark.parametrize("recipe", recipes.available())
def test_resnet20_trains_a_step_with_every_recipe(recipe):
    model, _ = models.build("resnet20", recipe, epochs=2, input_shape=(16, 16, 3))
    train_step(model, (16, 16, 3))


@pytest.mark.slow
@pytest.mark.parametrize("name", models.available())
def test_model_recipe_grid(name):
    """Every small model with every recipe; every zoo model with one recipe, assigned in turn
    so that each recipe meets two or three zoo architectures (the whole zoo × recipe grid took
    ~15 of the suite's minutes; every zoo model also trains with `ste` above and every recipe
    with resnet20). One ste build, then each recipe applied to it."""
    shape = SMALL_INPUTS.get(name, (32, 32, 3) if name in ZOO or name in ("vgg_small", "resnet20") else (28, 28, 1))
    base, _ = models.build(name, "ste", input_shape=shape)
    others = [r for r in recipes.available() if r != "ste"]
    if name in ZOO:
        others = [others[sorted(ZOO).index(name) % len(others)]]
    for recipe in others:
        model, _ = tfbin.binarize(base, recipe, epochs=2)
        assert len(binarized_layers(model)) == len(binarized_layers(base)), recipe
        train_step(model, shape)


def _following(layer):
    return [node.outbound_layer for node in layer._outbound_nodes]


def test_small_nets_float_references_put_relu_where_the_bnn_has_its_nonlinearities():
    from tfbin.models.small import HardTanh, fmnist_small, resnet20, vgg_small

    def activations(model):
        return [l for l in model.layers if isinstance(l, (tf.keras.layers.Activation, HardTanh))]

    assert not activations(fmnist_small())  # the form a recipe binarizes: the quantizers are its nonlinearities
    relu = fmnist_small(activation="relu")
    bns = [l for l in relu.layers if isinstance(l, tf.keras.layers.BatchNormalization)]
    assert len(bns) == 5 and len(activations(relu)) == 5  # every hidden BN, the stem's included
    for bn in bns:
        (after,) = _following(bn)
        assert isinstance(after, tf.keras.layers.Activation) and after.get_config()["activation"] == "relu"
    assert relu.count_params() == fmnist_small().count_params()
    for build in (resnet20, vgg_small):
        bnn, float_net = build(input_shape=(16, 16, 3)), build(input_shape=(16, 16, 3), activation="relu")
        assert {type(l) for l in activations(bnn)} == {HardTanh}  # the default is unchanged
        assert len(activations(float_net)) == len(activations(bnn))
        assert {l.get_config()["activation"] for l in activations(float_net)} == {"relu"}
        assert [type(l).__name__ for l in bnn.layers if not isinstance(l, HardTanh)] == [
            type(l).__name__ for l in float_net.layers if not isinstance(l, tf.keras.layers.Activation)]


def test_summary_reports_lce_ops_and_figures():
    model, _ = models.build("fmnist_small", "irnet", epochs=1)
    lines = []
    result = models.summary(model, print_fn=lines.append)
    assert result["binarized_layers"] == 4 and result["lce_binary_layers"] == 4
    dense = [r for r in result["layers"] if r["type"] == "QuantDense"][0]
    assert dense["binarized"] and "1x1 binary conv" in dense["lce"]
    assert [r["binarized"] for r in result["layers"]] == [False, True, True, True, True, False]
    assert 0.99 < result["binarized_mac_ratio"] < 1.0
    assert result["model_size_bytes"] < result["float32_size_bytes"] / 10
    assert any("4 of 4 binarized layers" in line for line in lines)
    depthwise = tf.keras.Sequential([tf.keras.Input((8, 8, 3)), tf.keras.layers.Conv2D(8, 3), tf.keras.layers.DepthwiseConv2D(3), tf.keras.layers.Conv2D(8, 3), tf.keras.layers.Flatten(), tf.keras.layers.Dense(2)])
    with pytest.warns(UserWarning, match="depthwise"):
        binarized, _ = tfbin.binarize(depthwise, "ste")
    assert models.summary(binarized, print_fn=None)["binarized_layers"] == 1


def test_zoo_pretrained_weights_from_a_local_file(tmp_path):
    original, _ = models.build("binary_resnet_e18", "ste", input_shape=(32, 32, 3))
    zoo_model = __import__("larq_zoo").literature.BinaryResNetE18(input_shape=(32, 32, 3), weights=None, num_classes=10)
    path = str(tmp_path / "weights.h5")
    zoo_model.save_weights(path)
    loaded, _ = models.build("binary_resnet_e18", "irnet", epochs=1, input_shape=(32, 32, 3), weights=path)
    for a, b in zip(zoo_model.layers, loaded.layers):
        if hasattr(a, "kernel"):
            np.testing.assert_array_equal(a.kernel.numpy(), b.kernel.numpy())


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"name": "resnet18"}, r"Unknown model 'resnet18'; the models are \[.*'quicknet_small'"),
        ({"name": "binary_alexnet", "input_shape": (32, 32, 3)}, "at least 57x57"),
        ({"name": "quicknet", "input_shape": (32, 32, 1)}, "RGB images"),
        ({"name": "quicknet", "input_shape": (32, 32, 3), "weights": "/nonexistent.h5"}, "does not exist"),
        ({"name": "fmnist_small", "weights": "imagenet"}, "no pretrained weights"),
    ],
)
def test_bad_model_requests_give_clear_errors(kwargs, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        models.build(recipe="ste", **kwargs)


def test_float_resnet20_is_he_et_al_s_cifar_resnet20():
    """19 convs (stem + 9 blocks × 2), a shortcut per block (9 Adds), ReLU, 0.27 M weights
    (He et al., Table 6: "0.27M" for n = 3)."""
    from models import small

    model = small.float_resnet20()
    layers = model.layers
    assert sum(isinstance(l, tf.keras.layers.Conv2D) for l in layers) == 19
    assert sum(isinstance(l, tf.keras.layers.Add) for l in layers) == 9
    assert sum(isinstance(l, tf.keras.layers.ReLU) for l in layers) == 19
    assert not binarized_layers(model)
    convs_and_dense = sum(int(np.prod(w.shape)) for l in layers for w in l.weights if w.name.endswith("kernel:0"))
    assert 0.26e6 < convs_and_dense < 0.28e6, convs_and_dense
    train_step(model, (32, 32, 3))
