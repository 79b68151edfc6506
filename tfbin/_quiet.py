"""Quiet defaults for the `tfbin` command, applied before TensorFlow is imported.

`import tfbin` imports TensorFlow (it must select Keras 2 first), so the command's logging
defaults cannot wait for `tfbin.cli.main`: TensorFlow reads `TF_CPP_MIN_LOG_LEVEL` once, at
import. A library import changes nothing; only the `tfbin` command (console script or
`python -m tfbin.cli`) gets them, and only where the user has not set `TF_CPP_MIN_LOG_LEVEL`
(setting it, to any value, shows TensorFlow's logging as the user asked).

What stays quiet, and why:

- TensorFlow's C++ INFO and WARNING lines (oneDNN, CPU features, SavedModel loading, MLIR
  passes): level 2, errors still show.
- Lines the CPU build of TensorFlow 2.19 prints on import and first device query through absl
  before absl's log is initialised, so `TF_CPP_MIN_LOG_LEVEL` cannot reach them: CUDA plugins
  registered twice, "computation placer already registered", "failed call to cuInit" on a machine
  without a GPU. They are dropped by exact pattern while TensorFlow is imported; any other line
  printed then is passed through.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

# Known, harmless lines of TensorFlow's import and device discovery on a CPU-only machine.
_IMPORT_NOISE = re.compile(
    r"Unable to register cu(FFT|DNN|BLAS) factory"
    r"|computation placer already registered"
    r"|All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|failed call to cuInit"
)


def is_cli() -> bool:
    """Whether this process is the `tfbin` command rather than a program importing tfbin."""
    argv = getattr(sys, "orig_argv", sys.argv)
    if "-m" in argv[:-1] and argv[argv.index("-m") + 1] == "tfbin.cli":
        return True
    return os.path.basename(sys.argv[0]) == "tfbin"


def wanted() -> bool:
    """Quiet only the command, and only when the user has not chosen a TensorFlow log level."""
    return is_cli() and "TF_CPP_MIN_LOG_LEVEL" not in os.environ


@contextlib.contextmanager
def tensorflow_import():
    """Around TensorFlow's import: set the CLI's log level and drop the known import noise from
    file descriptor 2 (C++ writes there directly); every other line is written back to stderr."""
    if not wanted():
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
            import tensorflow as tf

            tf.config.list_physical_devices()  # device discovery prints its noise now, not later
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not _IMPORT_NOISE.search(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
