"""Every recipe's model round-trips through .h5, SavedModel and .keras without custom objects:
same sharpness values, same predictions in both forms, the same .tflite (checked for .keras)."""
import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin.testing import tflite_without_names
from tfbin import export, models, recipes
from tfbin.testing import randomize_batch_norm
from tfbin.auxiliary import unwrap

FORMATS = ["model.h5", "model.keras", "saved_model"]


def _predict(model, x):
    soft = model.predict(x, verbose=0)
    with tfbin.hard(model):
        hard = model.predict(x, verbose=0)
    return soft, hard


@pytest.mark.slow
# larq's approx_sign and swish_sign hold nothing of tfbin's (larq's quantizers, ste's constraint):
# ste and bireal stand for the baselines here.
@pytest.mark.parametrize("recipe", [r for r in recipes.available() if r not in recipes.LARQ_BASELINES[1:3]])
def test_every_recipe_round_trips_in_every_format(tmp_path, recipe):
    model = unwrap(models.build("lenet_bnn", recipe, epochs=4).model)
    randomize_batch_norm(model)
    names = tfbin.sharpness.names(model)
    for i, name in enumerate(names):
        tfbin.sharpness.set(model, name, 0.37 + i)  # not the initial values
    x = np.random.default_rng(0).uniform(0, 1, (64, 28, 28, 1)).astype("float32")
    soft, hard = _predict(model, x)
    reference = tflite_without_names(export.convert(model, latency=False, sample_inputs=x).flatbuffer)
    for fmt in FORMATS:
        path = str(tmp_path / fmt)
        model.save(path)
        loaded = tf.keras.models.load_model(path)  # no custom_objects: tfbin registered them
        for name in names:
            assert tfbin.sharpness.get(loaded, name) == pytest.approx(tfbin.sharpness.get(model, name)), (fmt, name)
        loaded_soft, loaded_hard = _predict(loaded, x)
        np.testing.assert_allclose(loaded_soft, soft, atol=1e-6, err_msg=fmt)
        np.testing.assert_allclose(loaded_hard, hard, atol=1e-6, err_msg=fmt)
        if fmt == "model.keras":  # one export per recipe keeps the suite fast; all formats load the same config
            assert tflite_without_names(export.convert(loaded, latency=False, sample_inputs=x).flatbuffer) == reference
