"""`tfbin train` / `tfbin.jobs.train.train` end to end on a generated image folder, and `tfbin report`."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin import cli
from tfbin.data import load_folder
from tfbin.jobs.train import RESULT_FILES, train

PICTURES = ("curves.png", "sharpness.png", "activations.png", "saturation.png")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Two classes a small net can tell apart: bright top half vs bright bottom half, noisy."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for label in ("top", "bottom"):
        os.makedirs(root / label)
        for i in range(40):
            image = rng.uniform(0, 80, (28, 28, 1))
            rows = slice(0, 14) if label == "top" else slice(14, 28)
            image[rows] += 150
            tf.keras.utils.save_img(str(root / label / f"{i}.png"), image.astype("uint8"), scale=False)
    return str(root)


def _png_has_content(path):
    import matplotlib.image

    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels[..., :3].std() > 0.05  # not blank


@pytest.mark.margin(exact="files and counts, summary against history, report and file sizes, tie-aware parity (every tie-free image agrees), the reloaded model's hard accuracy against the reported one")
def test_train_cli_writes_every_promised_file_and_the_table_matches_them(image_folder, tmp_path, capsys):
    out = str(tmp_path / "run")
    argv = ["train", "--data-dir", image_folder, "--input-shape", "28,28,1", "--recipe", "self_binarizing",
            "--epochs", "1", "--batch-size", "16", "--lr-decay", "cosine", "--out", out, "--quiet"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    for name in (*RESULT_FILES, "activations.npz", "model.report.md", *PICTURES):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    assert os.listdir(os.path.join(out, "tensorboard")) and not os.path.exists(os.path.join(out, "backup"))
    for name in PICTURES:
        _png_has_content(os.path.join(out, name))

    summary = json.load(open(os.path.join(out, "summary.json")))
    history = json.load(open(os.path.join(out, "history.json")))
    report = json.load(open(os.path.join(out, "model.report.json")))
    assert summary["test_images"] == 16  # 20 % of 80
    assert summary["lr_decay"] == "cosine"
    assert history["epoch"] == [0.0]
    # The monitor's hard accuracy after the last epoch is the accuracy before recalibration; the
    # reported one is after it when it was kept (decided on training images only), else the same.
    assert abs(history["val_hard_accuracy"][-1] - summary["hard_accuracy_before_recalibration"]) < 1e-4
    recal = summary["recalibration"]
    assert recal["applied"] == (recal["check_accuracy_after"] >= recal["check_accuracy_before"])
    assert recal["check_images"] == min(2000, summary["train_images"]) and recal["steps"] >= 1
    if not recal["applied"]:
        assert summary["hard_accuracy"] == summary["hard_accuracy_before_recalibration"]
    assert summary["tflite_bytes"] == report["size_bytes"] == os.path.getsize(os.path.join(out, "model.tflite"))
    assert summary["binarized_layers_as_lce_bconv"] == "4/4"
    # Exact: no TFLite/Keras difference that a threshold tie does not explain. The parity check
    # ran on the same 16 test images, so the agreement the summary reports is at least the
    # fraction of tie-free ones; an image with a pre-sign value within rounding of its threshold
    # may take the other sign on another CPU, so only those may disagree.
    parity = report["parity"]
    assert parity["unexplained_mismatches"] == 0 and parity["tie_free_agreement"] == 1.0
    assert parity["samples"] == summary["test_images"]
    assert summary["tflite_keras_agreement"] >= round(parity["tie_free_samples"] / parity["samples"], 4)
    assert f"| {summary['soft_accuracy']:.4f} | {summary['hard_accuracy']:.4f} | {summary['tflite_accuracy']:.4f} " in printed
    loaded = tf.keras.models.load_model(os.path.join(out, "model.keras"))
    assert loaded.output_shape == (None, 2)
    # The saved model, evaluated afresh in its hard form on the same test split, scores the
    # reported hard accuracy.
    _, test_split, _ = load_folder(image_folder, (28, 28, 1), seed=0)
    loaded.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with tfbin.hard(loaded):
        again = loaded.evaluate(test_split.batch(16), verbose=0, return_dict=True)["accuracy"]
    assert abs(again - summary["hard_accuracy"]) < 1e-4

    # `tfbin report` redraws; a second train into the same directory is refused.
    for name in PICTURES:
        os.remove(os.path.join(out, name))
    assert cli.main(["report", out]) == 0
    for name in PICTURES:
        _png_has_content(os.path.join(out, name))
    assert cli.main(argv) == 1
    assert "already holds a run" in capsys.readouterr().err


class _Interrupt(tf.keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if self.params and self._epoch == 1 and batch == 2:
            raise KeyboardInterrupt("simulated interruption in epoch 2")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch


@pytest.mark.slow
@pytest.mark.margin(exact="logged epochs, t against the schedule's formula, activation records per epoch after resuming")
def test_resume_continues_an_interrupted_run_at_the_right_epoch(image_folder, tmp_path):
    out = str(tmp_path / "run")
    kwargs = dict(model="fmnist_small", recipe="irnet", dataset=None, data_dir=image_folder, input_shape=(28, 28, 1),
                  epochs=3, batch_size=16, out=out, verbose=0, print_fn=None)
    with pytest.raises(KeyboardInterrupt):
        train(**kwargs, callbacks=[_Interrupt()])
    assert os.listdir(os.path.join(out, "backup"))
    with open(os.path.join(out, "history.csv")) as f:
        assert len(f.read().splitlines()) == 2  # header and epoch 0
    summary = train(**kwargs, resume=True)
    history = json.load(open(os.path.join(out, "history.json")))
    assert history["epoch"] == [0.0, 1.0, 2.0]
    t = tf.keras.utils.deserialize_keras_object(json.load(open(os.path.join(out, "recipe.json")))["schedules"]["t"])
    np.testing.assert_allclose(history["t"], [t(e) for e in range(3)], rtol=1e-6)
    assert summary["epochs"] == 3 and not os.path.exists(os.path.join(out, "backup"))
    with np.load(os.path.join(out, "activations.npz")) as npz:
        assert {k.split("/")[0] for k in npz.files if k.startswith("epoch")} == {"epoch0000", "epoch0001", "epoch0002"}


@pytest.mark.margin(exact="each start fails before training: exit codes, messages, nothing written")
def test_bad_input(tmp_path, capsys):
    assert cli.main(["train", "--model", "nope", "--out", str(tmp_path / "a")]) == 1
    assert "Unknown model 'nope'" in capsys.readouterr().err
    assert cli.main(["train", "--dataset", "cifar11", "--out", str(tmp_path / "b")]) == 1
    assert "Unknown dataset 'cifar11'" in capsys.readouterr().err
    assert cli.main(["train", "--data-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "c")]) == 1
    assert "no such directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage_error:  # a bad option value is a usage error (exit 2)
        cli.main(["train", "--input-shape", "28,28", "--out", str(tmp_path / "d")])
    assert usage_error.value.code == 2
    assert "argument --input-shape: expected H,W,C" in capsys.readouterr().err
    with pytest.raises(ValueError, match="Unknown lr_decay 'linear'"):
        train(lr_decay="linear", out=str(tmp_path / "e"), print_fn=None)
    assert not any((tmp_path / name).exists() for name in "abcde")  # failed starts leave nothing
    assert cli.main(["report", str(tmp_path)]) == 1
    assert "no history" in capsys.readouterr().err


class _Poison(tf.keras.callbacks.Callback):
    """Makes the loss NaN from epoch 2 on, as a diverging run would."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            layer = next(l for l in self.model.layers if l.name.startswith("dense") and l.trainable_weights)
            layer.kernel.assign(tf.fill(layer.kernel.shape, float("nan")))


@pytest.mark.slow
@pytest.mark.margin(exact="NaN kernels set at epoch 2: the error message, logged epochs; the resumed run's epoch count and finite losses")
def test_nan_stops_training_naming_the_epoch_and_keeps_the_last_good_checkpoint(image_folder, tmp_path):
    from tfbin.callbacks import NonFiniteLossError

    out = str(tmp_path / "run")
    kwargs = dict(model="lenet_bnn", recipe="ste", dataset=None, data_dir=image_folder, input_shape=(28, 28, 1),
                  epochs=3, batch_size=16, out=out, verbose=0, print_fn=None)
    with pytest.raises(NonFiniteLossError, match="at epoch 2, batch 1; the last good checkpoint is kept in"):
        train(**kwargs, callbacks=[_Poison()])
    with open(os.path.join(out, "history.csv")) as f:
        assert len(f.read().splitlines()) == 2  # epoch 1 only: the broken epoch was not logged
    summary = train(**kwargs, resume=True)  # from the good checkpoint of epoch 1
    assert np.isfinite(json.load(open(os.path.join(out, "history.json")))["loss"]).all()
    assert summary["epochs"] == 3
