"""SlopeGrowth: value and gradient against the formula; attached by the abr recipe."""
import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin import models
from tfbin import quantizers as Q
from tfbin.losses import SlopeGrowth


def abr_model():
    return models.build("lenet_bnn", "abr", epochs=1, slope_growth=0.5).model


def test_value_and_gradient_match_the_formula():
    model = models.build("lenet_bnn", "abr", epochs=1, slope_growth=0.0).model
    slopes = [m.slope for m in model.submodules if isinstance(m, Q.BoundedRectifier)]
    rng = np.random.default_rng(0)
    for s in slopes:
        s.assign(rng.uniform(0.2, 3.0, s.shape))
    loss = SlopeGrowth(0.5)
    all_slopes = np.concatenate([s.numpy() for s in slopes])
    with tf.GradientTape() as tape:
        value = loss(model)
    np.testing.assert_allclose(value.numpy(), 0.5 * np.mean(1 / all_slopes), rtol=1e-6)
    grads = tape.gradient(value, slopes)
    for s, g in zip(slopes, grads):
        np.testing.assert_allclose(g.numpy(), -0.5 / (len(all_slopes) * s.numpy() ** 2), rtol=1e-5)


def slope_growth(seed=0):
    """Mean ABR slope after 3 epochs (slope-growth weight 0.5) minus before, on random data."""
    tf.keras.utils.set_random_seed(seed)
    model = abr_model()
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, 1, (64, 28, 28, 1)).astype("float32"), rng.integers(0, 10, 64)
    slopes = [m.slope for m in model.submodules if isinstance(m, Q.BoundedRectifier)]
    before = np.concatenate([s.numpy() for s in slopes]).mean()
    model.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    return {"abr_mean_slope_growth": float(np.concatenate([s.numpy() for s in slopes]).mean() - before)}


@pytest.mark.margin("abr_mean_slope_growth")
def test_abr_recipe_puts_the_term_inside_the_model_and_it_grows_slopes():
    assert len(abr_model().losses) == 1
    # Bound > 0 (the term pushes every slope up); measured spread in bench/results/test_margins.json.
    assert slope_growth(0)["abr_mean_slope_growth"] > 0
    config = tfbin.recipes.get("abr", epochs=1, slope_growth=0.25).get_config()
    assert tfbin.recipes.Recipe.from_config(config).losses[0].weight == 0.25


def test_bad_input():
    with pytest.raises(ValueError, match=">= 0"):
        SlopeGrowth(-1)
    with pytest.raises(ValueError, match="no built BoundedRectifier"):
        SlopeGrowth().attach(models.build("lenet_bnn", "ste").model)
