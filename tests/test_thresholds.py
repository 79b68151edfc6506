"""Binary BatchNorm: which BN → sign became an LCE output threshold, read from the flatbuffer."""
import larq as lq
import larq_compute_engine as lce
import tensorflow as tf

import tfbin
from tfbin import models
from tfbin.export.converter import layer_bconvs
from tfbin.export.rewrite import export_model
from tfbin.export.thresholds import sign_inputs


def converted(model):
    """The LCE flatbuffer of `model` and each binarized layer's LceBconv2d operators."""
    exported, mapping, _ = export_model(model)
    with tfbin.hard(model):
        flatbuffer = lce.convert_keras_model(exported)
    return flatbuffer, layer_bconvs(model, exported, mapping, flatbuffer)


def test_fmnist_small_fuses_only_the_bn_that_directly_follows_a_binary_conv():
    model, _ = models.build("fmnist_small", "irnet", epochs=1)
    rows = sign_inputs(model, *converted(model))
    assert [r["sign"] for r in rows] == ["float", "float", "fused", "float"]
    assert "is float" in rows[0]["detail"]  # after the float stem
    assert "MaxPooling2D between" in rows[1]["detail"] and "MaxPooling2D between" in rows[3]["detail"]


def test_conv_bn_pool_order_lets_lce_threshold_and_pool_in_binary():
    def binary(filters):
        return lq.layers.QuantConv2D(filters, 3, padding="same", pad_values=1.0, use_bias=False,
                                     input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip")

    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 3)),
        tf.keras.layers.Conv2D(16, 3, padding="same", use_bias=False),
        tf.keras.layers.BatchNormalization(),
        binary(32), tf.keras.layers.BatchNormalization(), tf.keras.layers.MaxPooling2D(),
        binary(32), tf.keras.layers.BatchNormalization(),
        tf.keras.layers.GlobalAveragePooling2D(), tf.keras.layers.Dense(3),
    ])
    rows = sign_inputs(model, *converted(model))
    assert [r["sign"] for r in rows] == ["float", "fused"]
    assert "LceBMaxPool2d" in rows[1]["detail"]  # thresholds, then LCE's binary max-pool


def test_resnet20_names_the_residual_add_as_why_its_signs_run_in_float():
    # IR-Net's ResNet-20 feeds every binary conv hardtanh(BN(conv(x)) + shortcut): the sign is of
    # a sum of two branches, so no single conv's BatchNorm can become its threshold.
    model, _ = models.build("resnet20", "irnet", epochs=1)
    rows = sign_inputs(model, *converted(model))
    assert len(rows) == 18 and all(r["sign"] == "float" for r in rows)
    assert "is float" in rows[0]["detail"]  # the first binary conv reads the float stem's block
    assert all("Add" in r["detail"] and "merges 2 branches" in r["detail"] for r in rows[1:]), [r["detail"] for r in rows]
