"""The `tfbin` command: success and one-line failures."""
import os
import subprocess
import sys


def tfbin(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "tfbin.cli", *args], capture_output=True, text=True, env=env, timeout=600)


def test_data_with_an_empty_manual_dir_fails_in_one_line(tmp_path):
    result = tfbin("data", "mnist", "--data-dir", str(tmp_path / "tfds"), "--manual-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("tfbin data: error: manual_dir")
    assert "Traceback" not in result.stderr


def test_data_unknown_name():
    result = tfbin("data", "imagenet2012")
    assert result.returncode == 1 and "built-in datasets are ['fashion_mnist', 'mnist']" in result.stderr
