"""Model files from someone else: a Lambda's stored code must not run unless the user says so."""
import os
import subprocess
import sys

import pytest
import tensorflow as tf

import tfbin
from tfbin import saving


def _lambda_model(marker):
    # The stored function writes `marker` when it runs: the proof that loading ran it.
    write_marker = lambda x, path=str(marker): (open(path, "w").close(), x)[1]  # noqa: E731
    inputs = tf.keras.Input((4,))
    x = tf.keras.layers.Lambda(write_marker, name="writes_a_file")(inputs)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(2)(x))


@pytest.mark.parametrize("fmt", ["model.h5", "saved_model", "model.keras"])
def test_a_lambda_file_is_refused_and_its_code_does_not_run(tmp_path, fmt):
    marker = tmp_path / "marker"
    _lambda_model(marker).save(tmp_path / fmt)
    marker.unlink()  # building and saving ran it; loading must not
    assert saving.code_holding_layers(tmp_path / fmt) == ["writes_a_file"]
    with pytest.raises(saving.UnsafeModelError, match=r"writes_a_file.*safe_mode=False \(CLI: --unsafe\)"):
        saving.load_model(tmp_path / fmt)
    assert not marker.exists()
    # The file really holds code that runs: trusted explicitly, it loads and writes the marker.
    loaded = saving.load_model(tmp_path / fmt, safe_mode=False)
    loaded(tf.zeros((1, 4)))
    assert marker.exists()


def test_files_without_code_load_in_safe_mode(tmp_path):
    model, _ = tfbin.models.build("lenet_bnn", "irnet", epochs=1)
    for fmt in ("model.h5", "saved_model", "model.keras"):
        model.save(tmp_path / fmt)
        assert saving.code_holding_layers(tmp_path / fmt) == []
        loaded = saving.load_model(tmp_path / fmt)
        assert [l.name for l in loaded.layers] == [l.name for l in model.layers]


def test_cli_export_refuses_a_lambda_file_in_one_line(tmp_path):
    marker = tmp_path / "marker"
    _lambda_model(marker).save(tmp_path / "model.h5")
    marker.unlink()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "tfbin.cli", "export", str(tmp_path / "model.h5"), "-o", str(tmp_path / "o.tflite")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("tfbin export: error:") and "writes_a_file" in last and "--unsafe" in last
    assert not marker.exists() and not (tmp_path / "o.tflite").exists()
