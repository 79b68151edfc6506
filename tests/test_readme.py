"""The README's quick start runs as written."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_quick_start_runs(tmp_path):
    block = re.search(r"## Quick start\s+```python\n(.*?)```", README.read_text(), re.S).group(1)
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=900)
    if "DataUnavailableError" in result.stderr:
        pytest.skip("Fashion-MNIST cannot be installed on this machine")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'LceBconv2d': 1" in result.stdout
    assert (tmp_path / "model.tflite").stat().st_size > 0
