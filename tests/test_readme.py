"""The Python examples of the README and of docs/*.md run as written."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [block for page in PAGES for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.S)]


def run(code, cwd):
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
@pytest.mark.margin(exact="the quick start exits 0 and exports one LceBconv2d into a non-empty file")
def test_quick_start_runs(tmp_path):
    block = re.search(r"## Quick start\s+```python\n(.*?)```", README.read_text(), re.S).group(1)
    result = run(block, tmp_path)
    if "DataUnavailableError" in result.stderr:
        pytest.skip("Fashion-MNIST cannot be installed on this machine")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'LceBconv2d': 1" in result.stdout
    assert (tmp_path / "model.tflite").stat().st_size > 0


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_every_other_example_runs(tmp_path, index):
    block = BLOCKS[index]
    if "data.load(" in block:
        pytest.skip("the quick start has its own test")
    result = run(block, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
