"""The `tfbin` command: success and one-line failures.

Every bad input must give a non-zero exit, exactly one line on stderr (no traceback), and leave
nothing behind (no --out folder, no .tflite).
"""
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfbin import cli
from tfbin.data import FolderScan
from tfbin.jobs.train import _input_shape


def tfbin(*args, env=None, merged=False):
    """Run the command as a user does: without the TensorFlow log level conftest sets."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} if env is None else env
    return subprocess.run(
        [sys.executable, "-m", "tfbin.cli", *args], capture_output=not merged, text=True, env=env, timeout=600,
        stdout=subprocess.PIPE if merged else None, stderr=subprocess.STDOUT if merged else None,
    )


def one_line_error(result, code=1):
    """The single stderr line of a failed command (and the checks that it is one)."""
    assert result.returncode == code, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Two classes of five 28x28 grey PNGs each, and a PNG-named file that is no image."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        os.makedirs(root / label)
        for i in range(5):
            tf.keras.utils.save_img(str(root / label / f"{i}.png"), rng.integers(0, 255, (28, 28, 1)).astype("uint8"), scale=False)
    (root / "b" / "broken.png").write_bytes(b"this is not a PNG")
    return root


def test_data_with_an_empty_manual_dir_fails_in_one_line(tmp_path):
    result = tfbin("data", "mnist", "--data-dir", str(tmp_path / "tfds"), "--manual-dir", str(tmp_path))
    assert one_line_error(result).startswith("tfbin data: error: manual_dir")


def test_data_unknown_name():
    result = tfbin("data", "imagenet2012")
    assert result.returncode == 1 and "built-in datasets are ['cifar10', 'fashion_mnist', 'mnist']" in result.stderr


@pytest.mark.parametrize("option, value, expected", [
    ("--train-samples", "0", "argument --train-samples: expected a number of images >= 1 or 'all', got 0"),
    ("--test-samples", "-5", "argument --test-samples: expected a number of images >= 1 or 'all', got -5"),
    ("--input-shape", "abc", "argument --input-shape: expected H,W,C (three positive integers, e.g. 32,32,3), got 'abc'"),
    ("--epochs", "0", "argument --epochs: must be > 0, got 0"),
])
@pytest.mark.margin(exact="the command fails at option parsing, before training: exit code 2, message, no --out folder")
def test_bad_numbers_name_their_option(tmp_path, option, value, expected):
    out = tmp_path / "run"
    result = tfbin("train", option, value, "--out", str(out))
    assert one_line_error(result, code=2) == f"tfbin train: error: {expected} (see tfbin train --help)"
    assert not out.exists()


@pytest.mark.margin(exact="parsed option values only (it parses a `train` argv; nothing trains)")
def test_sample_counts_accept_all():
    args = cli.build_parser().parse_args(["train", "--train-samples", "all", "--test-samples", "7"])
    assert args.train_samples is None and args.test_samples == 7


@pytest.mark.parametrize("flag, value, message", [
    ("--recipe", "nope", "nope"),
    ("--dataset", "nope", "Unknown dataset 'nope'"),
    ("--model", "nope", "Unknown model 'nope'"),
])
@pytest.mark.margin(exact="the command fails before training: exit code, message, no --out folder")
def test_a_failed_start_leaves_no_out_folder(tmp_path, flag, value, message):
    out = tmp_path / "run"
    line = one_line_error(tfbin("train", flag, value, "--out", str(out)))
    assert line.startswith("tfbin train: error: ") and message in line
    assert not out.exists()


@pytest.mark.margin(exact="the command fails before training: exit code, message, the folder left as it was")
def test_a_failed_start_keeps_a_folder_that_existed(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    one_line_error(tfbin("train", "--dataset", "nope", "--out", str(out)))
    assert os.listdir(out) == ["notes.txt"]


@pytest.mark.margin(exact="the command fails before training: exit code, message, no --out folder")
def test_data_dir_missing_or_without_classes(tmp_path):
    out = tmp_path / "run"
    line = one_line_error(tfbin("train", "--data-dir", str(tmp_path / "none"), "--out", str(out)))
    assert line == f"tfbin train: error: --data-dir {tmp_path / 'none'}: no such directory (it needs one sub-folder of images per class)."
    (tmp_path / "empty").mkdir()
    line = one_line_error(tfbin("train", "--data-dir", str(tmp_path / "empty"), "--out", str(out)))
    assert "found 0 class folder(s); a classifier needs at least 2" in line
    assert not out.exists()


@pytest.mark.margin(exact="the command fails at the image scan, before training: exit code, message, no --out folder")
def test_data_dir_with_a_corrupt_image_names_it(image_folder, tmp_path):
    out = tmp_path / "run"
    line = one_line_error(tfbin("train", "--data-dir", str(image_folder), "--out", str(out), "--epochs", "1"))
    assert line.startswith(f"tfbin train: error: --data-dir: {image_folder / 'b' / 'broken.png'} is not a readable image (")
    assert line.endswith("or pass --skip-bad-images to train without it.")
    assert not out.exists()  # no recipe.json, no tensorboard/


@pytest.mark.margin(exact="the command fails before training: exit code, the one message, nothing on stdout, no --out folder")
def test_data_dir_with_too_few_images_says_so_once(tmp_path):
    for label in ("a", "b"):
        (tmp_path / "few" / label).mkdir(parents=True)
        tf.keras.utils.save_img(str(tmp_path / "few" / label / "0.png"), np.zeros((8, 8, 1), "uint8"), scale=False)
    out = tmp_path / "run"
    result = tfbin("train", "--data-dir", str(tmp_path / "few"), "--out", str(out))
    assert one_line_error(result) == (
        f"tfbin train: error: --data-dir {tmp_path / 'few'}: found 2 readable image(s); need at least 5 so that 20% of "
        "them (at least one) can be held out for testing."
    )
    assert result.stdout == "" and not out.exists()


def test_input_shape_comes_from_the_model_or_the_images():
    scan = FolderScan("d", ["a", "b"], ["1", "2", "3"], [0, 1, 1], [], __import__("collections").Counter({(64, 48, 3): 2, (10, 10, 1): 1}))
    assert _input_shape("fmnist_small", None, scan) == ((28, 28, 1), "the model's own")
    assert _input_shape("quicknet", None, scan) == ((64, 48, 3), "from the images: 2 of 3 images; the others are resized")
    assert _input_shape("quicknet", (32, 32, 3), scan) == ((32, 32, 3), "from --input-shape")


@pytest.mark.parametrize("state", ["missing", "empty"])
@pytest.mark.margin(exact="the command fails before training: exit code and message")
def test_resume_needs_a_run_to_continue(tmp_path, state):
    out = tmp_path / "run"
    if state == "empty":
        out.mkdir()
    line = one_line_error(tfbin("train", "--resume", "--out", str(out)))
    what = "is empty" if state == "empty" else "does not exist"
    assert line == f"tfbin train: error: --resume: {out} {what}, so there is no run to continue; leave out --resume to start one."
    assert out.exists() == (state == "empty")


@pytest.mark.margin(exact="the command fails before training: exit code and the traceback's message")
def test_verbose_works_after_the_verb(tmp_path):
    result = tfbin("train", "--resume", "--out", str(tmp_path / "run"), "--verbose")
    assert result.returncode == 1 and "Traceback" in result.stderr and "there is no run to continue" in result.stderr


def test_train_and_tune_help_show_defaults_and_every_option_has_help():
    parser = cli.build_parser()
    verbs = parser._subparsers._group_actions[0].choices
    for name, sub in verbs.items():
        for action in sub._actions:
            assert action.help, f"tfbin {name} {action.option_strings or action.dest} has no help"
    assert "(default: fmnist_small)" in verbs["train"].format_help()
    assert "(default: a searched recipe file's, else 1e-3)" in " ".join(verbs["train"].format_help().split())
    assert "(default: 10)" in verbs["tune"].format_help()
    assert "default: beside OUTPUT" in verbs["export"].format_help()


def test_export_checks_the_output_directory_before_anything_else(tmp_path):
    # The model does not exist either: the output check must come first (before loading, before converting).
    line = one_line_error(tfbin("export", str(tmp_path / "nope.keras"), "-o", str(tmp_path / "no" / "dir" / "m.tflite")))
    assert line == f"tfbin export: error: --output {tmp_path / 'no' / 'dir' / 'm.tflite'}: directory {tmp_path / 'no' / 'dir'} does not exist; create it or choose another path."


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    inputs = tf.keras.Input((8, 8, 1))
    x = tf.keras.layers.Conv2D(4, 3)(inputs)
    outputs = tf.keras.layers.Dense(3)(tf.keras.layers.Flatten()(x))
    path = tmp_path_factory.mktemp("float") / "float.keras"
    tf.keras.Model(inputs, outputs).save(path)
    return path


def test_export_strict_refuses_a_float_model(float_model, tmp_path):
    out = tmp_path / "f.tflite"
    line = one_line_error(tfbin("export", str(float_model), "-o", str(out), "--strict", "--no-latency"))
    assert line.startswith("tfbin export: error: tfbin.export (strict): the model has no binarized layer")
    assert line.endswith(f"(report: {tmp_path / 'f.report.json'})")
    assert not out.exists()
    assert json.loads((tmp_path / "f.report.json").read_text())["all_binary"] is False


def test_export_without_strict_warns_loudly_about_a_float_model(float_model, tmp_path):
    out = tmp_path / "f.tflite"
    result = tfbin("export", str(float_model), "-o", str(out), "--no-latency")
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [l for l in result.stderr.splitlines() if l.startswith("tfbin export: warning: ")]
    assert len(warnings) == 2 and "no binarized layer" in warnings[0]
    assert warnings[1] == f"tfbin export: warning: {out} is NOT a fully binary model (see {tmp_path / 'f.report.json'}); --strict refuses such a model."
    assert out.exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny `tfbin train` as a user runs it: umask 022, no TensorFlow logging variables set,
    stdout and stderr in one stream in the order they were written."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONUNBUFFERED"] = "1"
    old = os.umask(0o022)
    try:
        result = tfbin("train", "--train-samples", "64", "--test-samples", "32", "--epochs", "1", "--out", str(out),
                       "--quiet", env=env, merged=True)
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stdout[-3000:]
    return out, result.stdout


@pytest.mark.slow  # ~25 s: one tiny training, shared by the three tests below
@pytest.mark.margin(exact="the printed lines before and of the start paragraph, and the absence of log noise")
def test_nothing_is_printed_before_the_start_paragraph(tiny_run):
    out, printed = tiny_run
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("tfbin train: "))
    # Bound: 0 lines. Measured on this machine (TF 2.19 CPU): 60 lines before the fix
    # (TensorFlow/absl/CUDA import logging, larq's starved-weights warnings, tf.data cache warnings).
    assert lines[:start] == []
    assert lines[start:start + 4] == [
        "tfbin train: fmnist_small + irnet, 1 epoch, batch 128, Adam 0.001, seed 0",
        "  data    fashion_mnist: 64 training and 32 test images",
        "  input   28x28x1 (the model's own)",
        f"  output  {out}",
    ]
    for noise in ("starved weights", "did not fully read the dataset being cached", "compiled metrics have yet",
                  "tf.lite.Interpreter is deprecated", "Unable to register cu"):
        assert noise not in printed


@pytest.mark.slow
@pytest.mark.margin(exact="names and permission bits of the files of a tiny run")
def test_files_get_the_umask_permissions(tiny_run):
    out, _ = tiny_run
    modes = {}
    for root, dirs, files in os.walk(out):
        for name in files:
            path = os.path.join(root, name)
            modes[os.path.relpath(path, out)] = stat.S_IMODE(os.stat(path).st_mode)
    assert "model.keras" in modes and "summary.json" in modes and "curves.png" in modes
    assert {name: oct(mode) for name, mode in modes.items() if mode != 0o644} == {}


@pytest.mark.slow
@pytest.mark.margin(exact="summary fields of a tiny run: names, image counts, epochs, seed")
def test_summary_records_what_ran(tiny_run):
    out, _ = tiny_run
    summary = json.loads((out / "summary.json").read_text())
    assert {k: summary[k] for k in ("model", "recipe", "dataset", "data_dir", "train_images", "test_images", "epochs", "seed")} == {
        "model": "fmnist_small", "recipe": "irnet", "dataset": "fashion_mnist", "data_dir": None,
        "train_images": 64, "test_images": 32, "epochs": 1, "seed": 0,
    }
