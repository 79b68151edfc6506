"""`tfbin train` / `tfbin.jobs.train.train` end to end on a generated image folder, `tfbin report`,
and runs that survive faults: SIGTERM, SIGINT, a crash, a full disk."""
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time

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


# Faults. Each run trains lenet_bnn for a few 4-batch epochs on pure noise (nothing to learn, so the
# loss never reaches 0 and every batch moves the weights: a wrong data order after resuming would
# show in them). Where weights are compared, TF_DETERMINISTIC_OPS=1 (op determinism, which TF
# reads from the environment) is set in every process that trains.

DETERMINISTIC = {"TF_DETERMINISTIC_OPS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def noise_folder(tmp_path_factory):
    """Two classes of 40 uniform-noise 28x28 grey PNGs: 64 training and 16 test images."""
    root = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(1)
    for label in ("a", "b"):
        os.makedirs(root / label)
        for i in range(40):
            tf.keras.utils.save_img(str(root / label / f"{i}.png"), rng.integers(0, 256, (28, 28, 1)).astype("uint8"), scale=False)
    return str(root)


def _tfbin_train(out, folder, *extra, epochs=3):
    """`tfbin train` of lenet_bnn on `folder` in a new process, under op determinism."""
    argv = [sys.executable, "-m", "tfbin.cli", "train", "--data-dir", folder, "--model", "lenet_bnn", "--epochs",
            str(epochs), "--batch-size", "16", "--out", out, "--quiet", *extra]
    return subprocess.Popen(argv, env={**os.environ, **DETERMINISTIC}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finished(process):
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]


@pytest.fixture(scope="module")
def uninterrupted(noise_folder, tmp_path_factory):
    """The run every interrupted one must end on: 3 epochs in one go, in its own process."""
    out = str(tmp_path_factory.mktemp("uninterrupted") / "run")
    _finished(_tfbin_train(out, noise_folder))
    return out


def _weights(out):
    return tf.keras.models.load_model(os.path.join(out, "model.keras")).get_weights()


def _assert_same_weights(out, reference):
    got, expected = _weights(out), _weights(reference)
    assert len(got) == len(expected) > 10  # kernels, BN statistics, the schedules' t and k
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype and np.array_equal(a, b)  # bitwise (NaN-free weights)


def _logged_epochs(out):
    return json.load(open(os.path.join(out, "history.json")))["epoch"]


@pytest.mark.slow  # ~2 min: three processes (the uninterrupted run, the stopped one, its resumption)
@pytest.mark.margin(exact="final weights bitwise equal to an uninterrupted run in another process (op determinism); exit code, the stop line, logged epochs")
def test_sigterm_then_resume_ends_on_the_weights_of_an_uninterrupted_run(noise_folder, uninterrupted, tmp_path):
    out = str(tmp_path / "run")
    process = _tfbin_train(out, noise_folder)
    checkpoint = os.path.join(out, "backup", "chief", "checkpoint")  # written once epoch 1's checkpoint is complete
    deadline = time.time() + 600
    while not os.path.exists(checkpoint) and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    line = err.strip().splitlines()[-1]
    stop = re.fullmatch(rf"tfbin train: stopped by SIGTERM in epoch (\d) of 3; the checkpoint of epoch (\d) is kept in "
                        rf"{re.escape(os.path.join(out, 'backup'))}: run the same command with --resume to continue from it\.", line)
    assert stop, line
    assert int(stop[2]) == int(stop[1]) - 1 >= 1  # stopped mid-run (in practice in epoch 2, right after the signal)
    assert not os.path.exists(os.path.join(out, "summary.json"))

    _finished(_tfbin_train(out, noise_folder, "--resume"))
    assert _logged_epochs(out) == [0.0, 1.0, 2.0]
    assert not os.path.exists(os.path.join(out, "backup"))
    _assert_same_weights(out, uninterrupted)


# Run in a new process with DETERMINISTIC set: a crash (an exception) and a Ctrl-C (SIGINT sent by
# the process to itself) in the middle of epoch 2, each resumed in the same process.
CRASH_OR_CTRL_C_THEN_RESUME = r"""
import json, os, signal, sys
import numpy as np
import tfbin
import tensorflow as tf
from tfbin.jobs.train import train

folder, reference, tmp = sys.argv[1:4]
KWARGS = dict(model="lenet_bnn", dataset=None, data_dir=folder, epochs=3, batch_size=16, verbose=0, print_fn=None)


class Fault(tf.keras.callbacks.Callback):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 1:  # epoch 2, after 2 of its 4 batches
            if self.kind == "crash":
                raise RuntimeError("simulated crash")
            signal.raise_signal(signal.SIGINT)


def weights(out):
    return tf.keras.models.load_model(os.path.join(out, "model.keras")).get_weights()


expected = weights(reference)
result = {}
for kind in ("crash", "sigint"):
    out = os.path.join(tmp, kind)
    handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    try:
        train(**KWARGS, out=out, callbacks=[Fault(kind)])
        message = "not stopped"
    except (RuntimeError, KeyboardInterrupt) as err:
        message = f"{type(err).__name__}: {err}"
    with open(os.path.join(out, "history.csv")) as f:
        logged = len(f.read().splitlines()) - 1
    train(**KWARGS, out=out, resume=True)
    got = weights(out)
    result[kind] = {
        "message": message, "logged_before_resume": logged, "count": len(got),
        "handlers_restored": handlers == [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)],
        "bitwise": all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(got, expected)),
        "epochs": json.load(open(os.path.join(out, "history.json")))["epoch"],
    }
print(json.dumps(result))
"""


@pytest.mark.slow  # ~2 min: one process, four runs
@pytest.mark.margin(exact="final weights bitwise equal to an uninterrupted run in another process (op determinism); messages, logged epochs, signal handlers restored")
def test_a_crash_or_ctrl_c_mid_epoch_then_resume_ends_on_the_weights_of_an_uninterrupted_run(noise_folder, uninterrupted, tmp_path):
    result = subprocess.run([sys.executable, "-c", CRASH_OR_CTRL_C_THEN_RESUME, noise_folder, uninterrupted, str(tmp_path)],
                            capture_output=True, text=True, timeout=900, env={**os.environ, **DETERMINISTIC})
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(result.stdout.strip().splitlines()[-1])
    kept = "the checkpoint of epoch 1 is kept in {}: run the same command with --resume to continue from it."
    assert runs["crash"]["message"] == "RuntimeError: simulated crash"
    assert runs["sigint"]["message"] == "TrainingInterrupted: stopped by SIGINT (Ctrl-C) in epoch 2 of 3; " + kept.format(
        os.path.join(tmp_path, "sigint", "backup"))
    for kind, run in runs.items():
        assert run["logged_before_resume"] == 1, kind  # epoch 1; epoch 2 was cut
        assert run["epochs"] == [0.0, 1.0, 2.0], kind
        assert run["handlers_restored"], kind
        assert run["count"] > 10 and run["bitwise"], kind


def _files(folder):
    """Every file under `folder`: relative path -> bytes."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                found[os.path.relpath(os.path.join(root, name), folder)] = f.read()
    return found


def _last_error_line(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.slow  # ~1 min
@pytest.mark.margin(exact="files byte for byte (the last checkpoint, no partial one), the error line and exit code, logged epochs after --resume")
def test_a_full_disk_while_writing_a_checkpoint_keeps_the_previous_one(noise_folder, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "run")
    chief = os.path.join(out, "backup", "chief")
    real_save, before = tf.train.CheckpointManager.save, {}

    def save(manager, *args, **kwargs):
        if not os.path.exists(os.path.join(chief, "checkpoint")):
            return real_save(manager, *args, **kwargs)  # epoch 1's
        before.update(_files(chief))
        # What TensorFlow's writer leaves when the disk fills mid-write: a temporary shard, a cut index.
        os.makedirs(os.path.join(chief, "ckpt-2_temp"))
        with open(os.path.join(chief, "ckpt-2_temp", "part-00000-of-00001.data-00000-of-00001"), "wb") as f:
            f.write(b"\0" * 100)
        with open(os.path.join(chief, "ckpt-2.index"), "wb") as f:
            f.write(b"\0" * 10)
        raise tf.errors.ResourceExhaustedError(None, None, f"{chief}/ckpt-2_temp/part-00000-of-00001.data-00000-of-00001; "
                                               "No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    argv = ["train", "--data-dir", noise_folder, "--model", "lenet_bnn", "--epochs", "2", "--batch-size", "16", "--out", out, "--quiet"]
    assert cli.main(argv) == 1
    assert _last_error_line(capsys) == (
        f"tfbin train: error: disk full (no space left on the device) while writing the checkpoint of epoch 2 in {chief}; "
        "nothing partial was left and the files written before it are intact. Free some space; the checkpoint of epoch 1 "
        f"is kept in {os.path.join(out, 'backup')}: run the same command with --resume to continue from it."
    )
    assert before and _files(chief) == before  # epoch 1's checkpoint byte for byte, nothing else
    assert {"recipe.json", "history.csv", "activations.npz"} <= set(os.listdir(out))
    assert not [name for name in os.listdir(out) if name.startswith(".")]  # no temporary file

    monkeypatch.undo()  # space again
    assert cli.main([*argv, "--resume"]) == 0
    assert _logged_epochs(out) == [0.0, 1.0]  # epoch 2 once, although logged before its checkpoint failed
    assert not os.path.exists(os.path.join(out, "backup"))


@pytest.mark.slow  # ~1 min
@pytest.mark.margin(exact="file names and bytes (no partial or temporary file, history unchanged by --resume), the error line and exit code")
def test_a_full_disk_while_writing_a_result_file_keeps_the_checkpoint(noise_folder, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "run")
    real_fdopen = os.fdopen

    class FullDisk:
        """A file whose writes stop halfway, as on a disk that has just filled up."""

        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        return FullDisk(f) if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".summary.json.") else f

    monkeypatch.setattr(os, "fdopen", fdopen)
    argv = ["train", "--data-dir", noise_folder, "--model", "lenet_bnn", "--epochs", "1", "--batch-size", "16", "--out", out, "--quiet"]
    assert cli.main(argv) == 1
    assert _last_error_line(capsys) == (
        f"tfbin train: error: disk full (no space left on the device) while writing {os.path.join(out, 'summary.json')}; "
        "nothing partial was left and the files written before it are intact. Free some space; training had finished "
        f"and its checkpoint is kept in {os.path.join(out, 'backup')}: run the same command with --resume to write the "
        "results from it (no epoch is trained again)."
    )
    written = _files(out)
    assert "summary.json" not in written and not [name for name in written if os.path.basename(name).startswith(".")]
    assert {"model.keras", "model.tflite", "history.json", "backup/chief/checkpoint"} <= set(written)
    assert json.loads(written["history.json"])["epoch"] == [0.0]

    monkeypatch.undo()
    assert cli.main([*argv, "--resume"]) == 0
    assert _files(out)["history.csv"] == written["history.csv"]  # no epoch trained again
    assert json.load(open(os.path.join(out, "summary.json")))["epochs"] == 1
    assert not os.path.exists(os.path.join(out, "backup"))
