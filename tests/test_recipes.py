"""Recipes and binarize(): quantizers land where they should, weights are kept, training works."""
import warnings

import larq as lq
import larq_zoo
import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin import quantizers as Q
from tfbin import recipes

EXPECTED = {
    "ste": (lq.quantizers.SteSign, lq.quantizers.SteSign),
    "approx_sign": (lq.quantizers.ApproxSign, lq.quantizers.SteSign),  # larq's baselines: larq's own quantizers
    "swish_sign": (lq.quantizers.SwishSign, lq.quantizers.SteSign),
    "bireal": (lq.quantizers.ApproxSign, lq.quantizers.MagnitudeAwareSign),  # as larq-zoo's BiRealNet
    "self_binarizing": (Q.SelfBinarizingSign, Q.SelfBinarizingSign),
    "irnet": (Q.EDESign, Q.LibraSign),
    "abr": (Q.BoundedRectifier, lq.quantizers.SteSign),
    "dab": (lq.quantizers.SteSign, Q.DistributionAwareSign),
    "irnet_cmim": (Q.EDESign, Q.LibraSign),
    "abc": None,  # a layer_type recipe: ABCConv2D / ABCDense instead of quantizers (tests/test_abc.py)
    "blrnet": None,  # a layer_type recipe: BLRConv2D / BLRDense (tests/test_blrnet.py)
}
SHARPENING = ("irnet", "self_binarizing", "irnet_cmim", "abr", "blrnet")
LAYER_TYPES = {"abc": ("ABCConv2D", "ABCDense"), "blrnet": ("BLRConv2D", "BLRDense")}


def float_model():
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Conv2D(16, 3, padding="same", name="conv_same")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Conv2D(16, 3, padding="valid", name="conv_valid")(x)
    x = tf.keras.layers.DepthwiseConv2D(3, name="depthwise")(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(32, name="hidden")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    outputs = tf.keras.layers.Dense(4, name="classifier")(x)
    return tf.keras.Model(inputs, outputs)


def test_available_lists_the_built_in_recipes():
    assert recipes.available() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_binarize_puts_the_recipes_quantizers_in_every_binarizable_layer_and_keeps_weights(name):
    model = float_model()
    with pytest.warns(UserWarning, match="depthwise.*no binary op"):
        binarized, callbacks = tfbin.binarize(model, name, epochs=3) if name in SHARPENING else tfbin.binarize(model, name)
    layers = {l.name: l for l in tfbin.unwrap(binarized).layers}
    assert isinstance(layers["stem"], tf.keras.layers.Conv2D) and not hasattr(layers["stem"], "input_quantizer")
    assert type(layers["classifier"]) is tf.keras.layers.Dense
    assert type(layers["depthwise"]) is tf.keras.layers.DepthwiseConv2D
    if EXPECTED[name] is None:
        conv, dense = LAYER_TYPES[name]
        assert [type(layers[n]).__name__ for n in ("conv_same", "conv_valid", "hidden")] == [conv, conv, dense]
    else:
        input_cls, kernel_cls = EXPECTED[name]
        for layer_name in ("conv_same", "conv_valid", "hidden"):
            layer = layers[layer_name]
            assert isinstance(layer.input_quantizer, input_cls) and isinstance(layer.kernel_quantizer, kernel_cls)
        assert layers["conv_same"].input_quantizer is not layers["hidden"].input_quantizer  # fresh per layer
    assert layers["conv_same"].pad_values == 1.0 and layers["conv_valid"].pad_values == 0.0
    for original in model.layers:
        for w_old, w_new in zip(original.weights, layers[original.name].weights):
            if name == "blrnet" and w_new.name.endswith("kernel:0") and original.name in ("conv_same", "conv_valid", "hidden"):
                # BLRNet's kernel holds logits θ/k: the float kernel's PBNet-S transfer, signs kept
                w = w_old.numpy()
                theta = layers[original.name].logit_scale * w_new.numpy()
                np.testing.assert_allclose(np.tanh(theta), np.clip(w / w.std(), -0.9, 0.9), rtol=1e-4, atol=1e-5)
                continue
            np.testing.assert_array_equal(w_old.numpy(), w_new.numpy())
    assert [type(c).__name__ for c in callbacks] == (["SharpeningScheduler"] if name in SHARPENING else [])


def test_larq_baselines_are_larqs_own_quantizers_and_bireal_is_larq_zoos_birealnet():
    assert recipes.LARQ_BASELINES == ("ste", "approx_sign", "swish_sign", "bireal")
    assert set(recipes.LARQ_BASELINES) <= set(recipes.available())
    for name in recipes.LARQ_BASELINES:
        recipe = recipes.get(name)
        for quantizer in (recipe.make_input_quantizer(), recipe.make_kernel_quantizer()):
            assert type(quantizer).__module__ == "larq.quantizers", (name, quantizer)  # no re-implementation
        constraint = recipe.make_kernel_constraint()
        assert isinstance(constraint, lq.constraints.WeightClip) and constraint.clip_value == 1.0
    assert recipes.get("swish_sign").make_input_quantizer().beta == 5.0  # larq's default
    assert recipes.get("swish_sign", beta=10.0).make_input_quantizer().beta == 10.0
    # bireal binarizes with the quantizers and constraint of larq-zoo's Bi-Real Net.
    zoo = larq_zoo.literature.BiRealNet(input_shape=(32, 32, 3), weights=None, num_classes=10)
    binary = [l for l in zoo.layers if getattr(l, "input_quantizer", None) is not None]
    assert binary
    def what(obj):  # class and configuration, without the instance's name
        return type(obj), {k: v for k, v in obj.get_config().items() if k != "name"}

    bireal = recipes.get("bireal")
    for layer in binary:
        assert what(layer.input_quantizer) == what(bireal.make_input_quantizer())
        assert what(layer.kernel_quantizer) == what(bireal.make_kernel_quantizer())
        # larq's alias "weight_clip" is a subclass of WeightClip with the same clip
        assert isinstance(layer.kernel_constraint, lq.constraints.WeightClip)
        assert layer.kernel_constraint.get_config() == bireal.make_kernel_constraint().get_config()


def test_binarize_replaces_quantizers_of_a_larq_model():
    model = tf.keras.Sequential(
        [
            tf.keras.Input((6, 6, 3)),
            lq.layers.QuantConv2D(8, 3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip", name="fp_input"),
            lq.layers.QuantConv2D(8, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign", name="binary"),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(2, name="classifier"),
        ]
    )
    binarized, callbacks = tfbin.binarize(model, "irnet", epochs=5, t_min=0.01)
    assert isinstance(binarized.get_layer("binary").kernel_quantizer, Q.LibraSign)
    assert isinstance(binarized.get_layer("fp_input").kernel_quantizer, lq.quantizers.SteSign)  # 1w32a: kept
    np.testing.assert_array_equal(binarized.get_layer("binary").kernel.numpy(), model.get_layer("binary").kernel.numpy())
    assert callbacks[0].schedules["t"](0) == pytest.approx(0.01)


def irnet_loss_ratio(seed=0):
    """Last over first epoch's training loss of a float model binarized with `irnet`, 8 epochs
    on a learnable 4-class problem (seed: data, initial weights)."""
    tf.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(256, 8, 8, 3)).astype("float32")
    y = (x[:, :4].mean((1, 2, 3)) > 0).astype("int64") + 2 * (x[..., 0].mean((1, 2)) > 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, callbacks = tfbin.binarize(float_model(), "irnet", epochs=8)
    model.compile(tf.keras.optimizers.Adam(1e-2), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = model.fit(x, y, epochs=8, batch_size=64, verbose=0, callbacks=callbacks).history["loss"]
    return {"recipes_irnet_loss_ratio": loss[-1] / loss[0]}


@pytest.mark.margin("recipes_irnet_loss_ratio")
def test_binarized_float_model_trains_and_lowers_its_loss():
    # Bound 0.8; the measured spread (seeds 0-2 x oneDNN 0/1) is in bench/results/test_margins.json.
    assert irnet_loss_ratio(0)["recipes_irnet_loss_ratio"] < 0.8


def test_recipe_config_round_trip_and_overrides():
    recipe = recipes.get("irnet", epochs=40, t_min=0.001)
    clone = recipes.Recipe.from_json(recipe.to_json())
    assert clone == recipe
    assert clone.schedules["t"](0) == pytest.approx(0.001) and clone.params["t_min"] == 0.001
    assert recipes.get(recipe.get_config()) == recipe


def test_users_can_register_their_own_recipe():
    @recipes.register("sbn_ede_test")
    def sbn_ede(epochs=None):
        return recipes.Recipe("sbn_ede_test", Q.EDESign(), Q.SelfBinarizingSign(), schedules=tfbin.schedules.ede(0.1, 10, epochs))

    try:
        assert "sbn_ede_test" in recipes.available()
        model, callbacks = tfbin.binarize(tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(4), tf.keras.layers.Dense(4), tf.keras.layers.Dense(2)]), "sbn_ede_test", epochs=3)
        assert isinstance([l for l in model.layers if hasattr(l, 'kernel_quantizer')][0].kernel_quantizer, Q.SelfBinarizingSign)
    finally:
        recipes._FACTORIES.pop("sbn_ede_test")


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda: recipes.get("xnor"), ValueError, r"Unknown recipe 'xnor'; the recipes are \['abc', 'abr', 'approx_sign', 'bireal', 'blrnet', 'dab', 'irnet', 'irnet_cmim', 'self_binarizing', 'ste', 'swish_sign'\]"),
        (lambda: recipes.get("irnet", epochs=3, tmin=1), ValueError, r"no parameter\(s\) \['tmin'\]"),
        (lambda: recipes.get("irnet"), ValueError, "pass epochs=N"),
        (lambda: recipes.Recipe("bad", "libra_sign", "ste_sign"), ValueError, "kernel-only"),
        (lambda: recipes.Recipe("bad", "nope_sign", "ste_sign"), ValueError, r"Unknown quantizer 'nope_sign'; tfbin's are \['bounded_rectifier', 'dab_sign', 'ede_sign'"),
        (lambda: recipes.Recipe("bad", "ste_sign", "dorefa_quantizer"), ValueError, "not a 1-bit"),
        (lambda: recipes.Recipe("bad", None, None, layer_type="xnor"), ValueError, "unknown layer_type 'xnor'"),
        (lambda: recipes.Recipe("bad", "ste_sign", None, layer_type="abc"), ValueError, "quantizers must be None"),
        (lambda: tfbin.binarize(tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)]), "ste"), ValueError, "nothing to binarize"),
        (lambda: tfbin.binarize(float_model(), "ste", keep_full_precision=["nope"]), ValueError, "does not have"),
    ],
)
def test_bad_input_gives_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_self_binarizing_kernel_sharpness_can_end_apart_from_the_activations():
    recipe = recipes.get("self_binarizing", epochs=4, v_end=100.0, v_kernel_end=3.0, sharpen=0.5, warmup=0.0)
    v, v_kernel = recipe.schedules["v"], recipe.schedules["v_kernel"]
    assert v(0.0) == pytest.approx(1.0) and v_kernel(0.0) == pytest.approx(1.0)
    # geometric over the first half of training, then held
    assert v(1.0) == pytest.approx(10.0) and v_kernel(1.0) == pytest.approx(3.0 ** 0.5)
    assert v(4.0) == pytest.approx(100.0) and v_kernel(4.0) == pytest.approx(3.0)
    same = recipes.get("self_binarizing", epochs=4, v_end=100.0, v_kernel_end=None, sharpen=0.5, warmup=0.0)
    assert same.schedules["v_kernel"](1.0) == pytest.approx(10.0)


def test_load_takes_a_name_a_recipe_or_a_recipe_file_stretched_to_the_run(tmp_path):
    by_name = recipes.load("irnet", epochs=4)
    assert (by_name.name, by_name.params) == ("irnet", recipes.get("irnet", epochs=4).params)
    assert recipes.load("ste", epochs=4).params == recipes.get("ste").params  # no schedule: epochs ignored
    made = recipes.get("irnet", epochs=3, t_max=5.0)
    assert recipes.load(made, epochs=10) is made  # a Recipe object is complete as it is
    made.params["training"] = {"lr": 2e-3, "lr_decay": "cosine"}  # as tfbin tune writes it
    path = tmp_path / "best_recipe.json"
    path.write_text(made.to_json())
    assert recipes.load(str(path), epochs=3) == made  # its own length: used as written
    assert recipes.load(str(path)) == made
    longer = recipes.load(str(path), epochs=10)
    assert longer.params["epochs"] == 10 and longer.params["t_max"] == 5.0
    assert longer.params["training"] == made.params["training"]
    assert longer.get_config()["schedules"]["t"]["config"]["epochs"] == 10


def test_load_refuses_a_file_it_cannot_read_or_rebuild_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="cannot read the recipe file"):
        recipes.load(str(tmp_path / "missing.json"), epochs=3)
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "irnet"}')
    with pytest.raises(ValueError, match="not a tfbin recipe JSON file"):
        recipes.load(str(bad), epochs=3)
    config = recipes.get("irnet", epochs=1).get_config()
    config["kernel_constraint"] = "weight_clip"  # an edit its factory would not make
    edited = tmp_path / "edited.json"
    edited.write_text(recipes.Recipe.from_config(config).to_json())
    assert recipes.load(str(edited), epochs=1).kernel_constraint == "weight_clip"  # used as written
    with pytest.raises(ValueError, match="edited by hand.*pass --epochs 1"):
        recipes.load(str(edited), epochs=2)
    config = recipes.get("irnet", epochs=1).get_config()
    config["name"] = "not_registered"
    unknown = tmp_path / "unknown.json"
    unknown.write_text(recipes.Recipe.from_config(config).to_json())
    with pytest.raises(ValueError, match="span 1 epochs and it cannot be rebuilt for 2 .*pass --epochs 1"):
        recipes.load(str(unknown), epochs=2)
