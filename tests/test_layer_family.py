"""Layer families (tfbin.layer_family, tfbin.families): a toy family defined in this file alone —
a binary layer whose output is doubled, exported as an LceBconv2d and a multiply — is binarized
by `tfbin.binarize`, listed by introspection, exported with the op count its family declares and
passes parity, with no edit anywhere else. Then the registry's rules, and the built-in families'
answers against what the exporter's float twin does."""
import warnings

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin import export, families, recipes
from tfbin.export import float_twin
from tfbin.export.parity import margins
from tfbin.export.rewrite import lce_runs_as
from tfbin.introspect import binarized_layers, is_binarized
from tfbin.layer_family import LayerFamily
from tfbin.testing import randomize_batch_norm


# --- the toy family: everything a new family needs, in one place ------------------------------


class DoubledSignConv2D(tf.keras.layers.Conv2D):
    """`2·conv(sign(x), sign(W)) + b` ('valid' padding only): no larq quantizer attributes, so
    only its family can say that it is binarized."""

    def __init__(self, filters, kernel_size, pad_values=0.0, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        if self.padding != "valid":
            raise ValueError("DoubledSignConv2D: 'valid' padding only.")
        self.pad_values = float(pad_values)

    def call(self, inputs):
        x, w = lq.quantizers.ste_sign(inputs), lq.quantizers.ste_sign(self.kernel)
        y = 2.0 * tf.nn.convolution(x, w, strides=self.strides, padding="VALID", dilations=self.dilation_rate)
        y = tf.nn.bias_add(y, self.bias) if self.use_bias else y
        return self.activation(y)

    def get_config(self):
        return {**super().get_config(), "pad_values": self.pad_values}


class DoubledSignDense(tf.keras.layers.Dense):
    """`2·sign(x)·sign(W) + b`."""

    def call(self, inputs):
        y = 2.0 * tf.matmul(lq.quantizers.ste_sign(inputs), lq.quantizers.ste_sign(self.kernel))
        y = tf.nn.bias_add(y, self.bias) if self.use_bias else y
        return self.activation(y)


class DoubledSignExport(tf.keras.layers.Layer):
    """The deployed form: one binary conv (larq `QuantConv2D`, `ste_sign` input, ±1 kernel),
    then ×2, the bias and the activation."""

    def __init__(self, layer, **kwargs):
        super().__init__(name=f"{layer.name}_export", **kwargs)
        self.dense = isinstance(layer, tf.keras.layers.Dense)
        kernel = np.where(layer.kernel.numpy() >= 0, 1.0, -1.0).astype(np.float32)
        self.kernel_value = kernel[None, None] if self.dense else kernel
        self.bias_value = layer.bias.numpy() if layer.use_bias else None
        self.activation = layer.activation
        strides = (1, 1) if self.dense else layer.strides
        self.conv = lq.layers.QuantConv2D(kernel.shape[-1], self.kernel_value.shape[:2], strides=strides,
                                          input_quantizer="ste_sign", kernel_quantizer=None, use_bias=False)

    def build(self, input_shape):
        self.conv.build((None, 1, 1, input_shape[-1]) if self.dense else input_shape)
        self.conv.kernel.assign(self.kernel_value)
        super().build(input_shape)

    def call(self, inputs):
        x = tf.reshape(inputs, [-1, 1, 1, inputs.shape[-1]]) if self.dense else inputs
        y = 2.0 * self.conv(x)
        y = tf.reshape(y, [-1, y.shape[-1]]) if self.dense else y
        y = y + self.bias_value if self.bias_value is not None else y
        return self.activation(y)


class DoubledSignFamily(LayerFamily):
    name = "doubled_sign"
    conv, dense = DoubledSignConv2D, DoubledSignDense

    def export(self, layer):
        return DoubledSignExport(layer)


@pytest.fixture
def doubled_sign():
    family = families.register(DoubledSignFamily())
    yield family
    families.unregister(family.name)


# --- the toy family through binarize, introspection, export and parity ------------------------


def float_model():
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Conv2D(8, 3, name="conv")(x)  # 'valid'
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(16, name="hidden")(x)  # straight into the float classifier
    outputs = tf.keras.layers.Dense(4, name="classifier")(x)
    return tf.keras.Model(inputs, outputs)


def test_a_family_in_one_file_is_binarized_introspected_exported_and_verified(doubled_sign):
    recipe = recipes.Recipe("doubled_sign", None, None, layer_type="doubled_sign")
    original = float_model()
    with pytest.warns(UserWarning, match="BatchNormalization"):
        model = tfbin.binarize(original, recipe).model
    # binarize: the family's layers replace Conv2D/Dense, weights kept; its output is not on the
    # float scale (float_scaled_output False), so a BN follows the Dense before the float classifier.
    assert [(type(l).__name__, l.name) for l in binarized_layers(model)] == [("DoubledSignConv2D", "conv"), ("DoubledSignDense", "hidden")]
    assert model.get_layer("conv").pad_values == 0.0 and "hidden_output_bn" in [l.name for l in model.layers]
    np.testing.assert_array_equal(model.get_layer("conv").kernel.numpy(), original.get_layer("conv").kernel.numpy())
    # introspection asks the family: no quantizer says these layers are binary
    assert all(families.family_of(l) is doubled_sign for l in binarized_layers(model))
    assert not is_binarized(model.get_layer("stem")) and lce_runs_as(model.get_layer("hidden")) == "LceBconv2d"

    randomize_batch_norm(model)
    x = np.random.default_rng(1).normal(0, 1, (200, 8, 8, 3)).astype("float32")
    assert np.all(np.isfinite(margins(model, x)))  # the family's input thresholds (a sign at 0)
    report = export.convert(model, strict=True, sample_inputs=x, latency=False)
    assert [(r["layer"], r["lce_op"], r["bconv_count"]) for r in report.layers] == [("conv", "LceBconv2d", 1), ("hidden", "LceBconv2d", 1)]
    assert report.op_histogram["LceBconv2d"] == 2 and report.all_binary
    assert report.parity["passed"] and report.parity["tie_free_fraction"] > 0.5
    assert report.parity["max_abs_diff"] < 1e-3 * max(1.0, float(np.abs(model(x[:8])).max()))


def test_the_exporter_counts_the_binary_convolutions_the_family_declares(doubled_sign, monkeypatch):
    monkeypatch.setattr(DoubledSignFamily, "binary_convolutions", lambda self, layer: 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # binarize's changes, convert's problems (asserted below)
        model = tfbin.binarize(float_model(), recipes.Recipe("doubled_sign", None, None, layer_type="doubled_sign")).model
        report = export.convert(model, sample_inputs=np.zeros((4, 8, 8, 3), np.float32), latency=False)
    assert [r["reason"] for r in report.layers] == ["1 LceBconv2d found, 2 expected (its layer family's binary convolutions)"] * 2
    assert not report.all_binary


# --- the registry --------------------------------------------------------------------------------


def test_the_registry_names_the_recipe_layer_types_and_refuses_clashes(doubled_sign):
    assert families.names() == ["abc", "blrnet", "doubled_sign"]
    assert families.get("doubled_sign") is doubled_sign and families.register(doubled_sign) is doubled_sign
    with pytest.raises(ValueError, match="Another layer family is registered as 'doubled_sign'"):
        families.register(DoubledSignFamily())
    with pytest.raises(ValueError, match="a name other than 'larq'"):
        families.register(type("Nameless", (LayerFamily,), {})())
    with pytest.raises(ValueError, match=r"Unknown layer type 'nope'; the layer types are \['abc', 'blrnet', 'doubled_sign'\]"):
        families.get("nope")
    with pytest.raises(ValueError, match=r"unknown layer_type 'nope'"):
        recipes.Recipe("r", None, None, layer_type="nope")
    # a float layer, a larq layer: the default family (larq's) answers
    assert families.family_of(tf.keras.layers.Dense(2)) is families.DEFAULT
    assert families.family_of(lq.layers.QuantDense(2)) is families.DEFAULT


def test_a_later_family_for_a_subclass_owns_its_layers(doubled_sign):
    class Narrower(DoubledSignFamily):
        name = "narrower"
        dense = type("NarrowDense", (DoubledSignDense,), {})

    narrower = families.register(Narrower())
    try:
        assert families.family_of(narrower.dense(2)) is narrower
        assert families.family_of(DoubledSignDense(2)) is doubled_sign
    finally:
        families.unregister("narrower")
    assert families.names() == ["abc", "blrnet", "doubled_sign"]


# --- the built-in families' answers ----------------------------------------------------------


def test_the_built_in_families_float_layers_are_the_float_twins_layers():
    for recipe in ("abc", "blrnet", "ste"):
        model, _ = tfbin.models.build("fmnist_small", recipe, epochs=1)
        twin = {l.name: l for l in float_twin(model).layers}
        for layer in model.layers[1:]:  # the input layer is cloned
            family = families.family_of(layer)
            plain = family.float_layer(layer)
            if plain is None:
                assert twin[layer.name] is layer, (recipe, layer.name)
                continue
            assert type(plain) is type(twin[layer.name]) and plain.get_config() == twin[layer.name].get_config(), (recipe, layer.name)
        bits = {l.name: families.family_of(l).kernel_bits(l) for l in binarized_layers(model)}
        assert set(bits.values()) == ({3} if recipe == "abc" else {1})
