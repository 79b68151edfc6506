"""tfbin.regimen: the optimizer, its learning rate and the BatchNorm recalibration rule that
`tfbin train`, `tfbin tune` and the benchmarks share."""
import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin import regimen


def test_the_optimizer_settings_come_from_the_arguments_then_the_searched_recipe_then_the_default():
    plain = tfbin.recipes.get("irnet", epochs=2)
    assert regimen.optimizer_settings(plain) == (regimen.LR, "constant")
    searched = tfbin.recipes.get("irnet", epochs=2)
    searched.params["training"] = {"lr": 2e-3, "lr_decay": "cosine"}
    assert regimen.optimizer_settings(searched) == (2e-3, "cosine")
    assert regimen.optimizer_settings(searched, lr=5e-4, lr_decay="constant") == (5e-4, "constant")
    with pytest.raises(ValueError, match="Unknown lr_decay 'linear'"):
        regimen.optimizer_settings(plain, lr_decay="linear")


def test_adam_runs_at_the_rate_and_decay_asked_for():
    constant = regimen.adam(2e-3)
    assert isinstance(constant, tf.keras.optimizers.Adam) and constant.get_config()["learning_rate"] == pytest.approx(2e-3)
    schedule = regimen.adam(2e-3, "cosine", total_steps=10).get_config()["learning_rate"]
    assert schedule["class_name"] == "CosineDecay"
    assert schedule["config"]["initial_learning_rate"] == pytest.approx(2e-3) and schedule["config"]["decay_steps"] == 10
    with pytest.raises(ValueError, match="cosine decay needs the run's number of steps"):
        regimen.adam(2e-3, "cosine")


def test_the_recipes_module_still_offers_the_learning_rate_helpers():
    # Public before they moved to tfbin.regimen (docs, user code).
    assert tfbin.recipes.learning_rate is regimen.learning_rate
    assert tfbin.recipes.LR_DECAYS is regimen.LR_DECAYS
    assert {"learning_rate", "LR_DECAYS", "load"} <= set(tfbin.recipes.__all__)


def _labelled(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 28, 28, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, rng.integers(0, 10, n))).batch(16)


def test_recalibrate_if_it_helps_reads_the_rule_and_reports_what_it_did():
    model, _ = tfbin.models.build("lenet_bnn", "self_binarizing", epochs=1)
    report = regimen.recalibrate_if_it_helps(model, _labelled())
    # 4 batches of 16, fewer than the rule's 100; the check reads the same 64 training images.
    assert report["steps"] == 4 and report["check_images"] == 64
    assert report["applied"] == (report["check_accuracy_after"] >= report["check_accuracy_before"])
    held_out = _labelled(32, seed=1)
    assert regimen.recalibrate_if_it_helps(model, _labelled(), check=held_out)["check_images"] == 32
    assert (regimen.RECALIBRATION_BATCHES, regimen.CHECK_IMAGES) == (100, 2000)


def test_a_model_without_batch_norm_is_left_as_it_is():
    model = tf.keras.Sequential([tf.keras.Input((28, 28, 1)), tf.keras.layers.Flatten(), tf.keras.layers.Dense(10)])
    assert regimen.recalibrate_if_it_helps(model, _labelled()) == {"applied": False, "reason": "no BatchNormalization"}
