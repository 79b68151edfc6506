"""Which LceBconv2d each binarized layer became: found by the signs of its exported kernel, not by
tensor names, which LCE cuts at 50 characters (larq-zoo's MeliusNet-22 mapped 0 of its 34 layers
by name)."""
import larq as lq
import numpy as np
import tensorflow as tf

import tfbin
from tfbin import export
from tfbin.export import flatbuffer as flatbuffer_lib
from tfbin.export.converter import layer_bconvs
from tfbin.export.rewrite import export_model
from tfbin.layers import ABCConv2D
from tfbin.testing import randomize_batch_norm

LONG = "a_binarized_layer_with_a_name_far_longer_than_the_converter_keeps_"  # 66 characters


def binary(filters, name, **kwargs):
    return lq.layers.QuantConv2D(filters, 3, padding="same", pad_values=1.0, use_bias=False, input_quantizer="ste_sign",
                                 kernel_quantizer="ste_sign", kernel_constraint="weight_clip", name=name, **kwargs)


def long_named_model():
    """Float stem, binary convs with BN → sign fused between them (with negative γ: LCE flips
    those output channels of the first conv's filter), a DAB conv (its kernel with 8 all-ones
    channels added), a binary conv after it, a binarized dense (a 1×1 bconv)."""
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = binary(32, LONG + "conv_1")(x)
    x = tf.keras.layers.BatchNormalization(name="bn_after_conv_1")(x)
    x = binary(32, LONG + "conv_2")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(16, 3, padding="same", pad_values=1.0, use_bias=False, input_quantizer="ste_sign",
                              kernel_quantizer=tfbin.quantizers.DistributionAwareSign(), kernel_constraint="weight_clip",
                              name=LONG + "conv_dab")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = binary(16, LONG + "after_dab")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = lq.layers.QuantDense(16, input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                             name=LONG + "dense")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3)(x), name="a_model_whose_name_also_takes_room")
    randomize_batch_norm(model)
    gamma = model.get_layer("bn_after_conv_1").gamma
    gamma.assign(gamma.numpy() * np.where(np.arange(32) % 3 == 0, -1.0, 1.0))  # some channels' multipliers negative
    return model


def test_layers_with_cut_names_map_to_their_bconvs_by_kernel_signs():
    model = long_named_model()
    report = export.convert(model, strict=True, num_samples=16, latency=False)
    rows = report.layers
    assert [r["layer"] for r in rows] == [LONG + s for s in ("conv_1", "conv_2", "conv_dab", "after_dab", "dense")]
    assert [(r["lce_op"], r["bconv_count"], r["reason"]) for r in rows] == [("LceBconv2d", 1, None)] * 5
    assert [r["sign_input"] for r in rows] == ["float", "fused", "fused", "float", "float"]
    assert "two unequal kernel levels" in rows[3]["sign_input_detail"]  # DAB's offset term before it
    assert "GlobalAveragePooling2D between" in rows[4]["sign_input_detail"]
    assert report.op_histogram["LceBconv2d"] == 5 and report.all_binary and report.parity["passed"]

    # The premise: no tensor name holds a layer's export name, so names cannot map these layers ...
    _, names = flatbuffer_lib.main_graph(report.flatbuffer)
    assert max(map(len, names)) <= 52 and not any(f"{LONG}conv" in n for n in names)
    # ... and the first conv writes its output bitpacked, with the negative-γ channels flipped.
    bconvs = flatbuffer_lib.main_bconvs(report.flatbuffer)
    exported, mapping, _ = export_model(model)
    conv_1 = exported.get_layer(mapping[LONG + "conv_1"]).conv.kernel.numpy()
    negative = np.transpose(conv_1, (3, 0, 1, 2)) < 0
    assert bconvs[0][2] and not flatbuffer_lib.holds_signs(bconvs[0][1], negative)
    assert flatbuffer_lib.holds_signs(bconvs[0][1], negative, flipped_channels=True)


def test_abc_layers_with_cut_names_map_all_their_bconvs():
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((6, 6, 4))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = ABCConv2D(8, 3, weight_bases=2, activation_bases=2, padding="same", pad_values=1.0, use_bias=False, name=LONG + "abc")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = binary(8, LONG + "after_abc")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3)(x))
    randomize_batch_norm(model)
    exported, mapping, refused = export_model(model)
    assert not refused
    import larq_compute_engine as lce

    with tfbin.hard(model):
        flatbuffer = lce.convert_keras_model(exported)
    found = layer_bconvs(model, exported, mapping, flatbuffer)
    operators, _ = flatbuffer_lib.main_graph(flatbuffer)
    bconvs = [i for i, (name, _, _) in enumerate(operators) if name == "LceBconv2d"]
    assert len(found[LONG + "abc"]) == 4 and len(found[LONG + "after_abc"]) == 1  # M·N = 4, then 1
    assert sorted(found[LONG + "abc"] + found[LONG + "after_abc"]) == bconvs  # each bconv once
