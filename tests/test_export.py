"""Hard forms that are ±1 (or ±scale per output channel) convert into LCE binary convs."""
import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from tfbin import export
from tfbin import quantizers as Q


def conv_net(input_quantizer, kernel_quantizer, binary_convs=3):
    layers = [tf.keras.Input((16, 16, 3)), tf.keras.layers.Conv2D(32, 3, padding="same"), tf.keras.layers.BatchNormalization()]
    for _ in range(binary_convs):
        layers += [
            lq.layers.QuantConv2D(
                32, 3, padding="same", pad_values=1.0, use_bias=False,
                input_quantizer=input_quantizer(), kernel_quantizer=kernel_quantizer(),
            ),
            tf.keras.layers.BatchNormalization(),
        ]
    layers += [tf.keras.layers.GlobalAveragePooling2D(), tf.keras.layers.Dense(10)]
    return tf.keras.Sequential(layers)


PM_ONE_FORMS = {
    "sbn/sbn": (Q.SelfBinarizingSign, Q.SelfBinarizingSign),
    "ede/libra": (Q.EDESign, Q.LibraSign),
    "ede/ede": (Q.EDESign, Q.EDESign),
    "abr_symmetric/libra": (lambda: Q.BoundedRectifier(symmetric=True), Q.LibraSign),
}


@pytest.mark.parametrize("name", PM_ONE_FORMS)
@pytest.mark.parametrize("binary_convs", [2, 3])
def test_pm_one_hard_forms_become_exactly_one_bconv_per_binary_conv(tmp_path, name, binary_convs):
    model = conv_net(*PM_ONE_FORMS[name], binary_convs=binary_convs)
    path = tmp_path / "model.tflite"
    flatbuffer = export.convert(model, path)
    ops = export.op_histogram(flatbuffer)
    assert ops["LceBconv2d"] == binary_convs
    assert ops["CONV_2D"] == 1  # only the full-precision stem stays float
    assert path.read_bytes() == flatbuffer
    assert not any(q.hard_mode for q in model.submodules if isinstance(q, Q.SoftHardQuantizer))


def test_converted_hard_model_computes_what_keras_hard_model_computes():
    import larq_compute_engine as lce

    import tfbin

    model = conv_net(Q.EDESign, Q.LibraSign)
    flatbuffer = export.convert(model)
    x = np.random.default_rng(0).uniform(-1, 1, size=(20, 16, 16, 3)).astype("float32")
    with tfbin.hard(model):
        expected = model.predict(x, verbose=0)
    got = lce.testing.Interpreter(flatbuffer).predict(x)
    np.testing.assert_allclose(got, expected, atol=1e-3)
