"""Quiet defaults for the `tfbin` command, applied before TensorFlow is imported.

`import tfbin` imports TensorFlow (it must select Keras 2 first), so the command's logging
defaults cannot wait for `tfbin.cli.main`: TensorFlow reads `TF_CPP_MIN_LOG_LEVEL` once, at
import. A library import changes nothing; only the `tfbin` command (console script or
`python -m tfbin.cli`) gets them, and not with `--verbose`. A `TF_CPP_MIN_LOG_LEVEL` the user set
is kept.

What stays quiet, and why:

- TensorFlow's C++ INFO and WARNING lines (oneDNN, CPU features, SavedModel loading, MLIR
  passes): level 2 unless the user chose one; errors still show.
- Lines the CPU build of TensorFlow 2.19 prints on import and first device query through absl
  before absl's log is initialised, so `TF_CPP_MIN_LOG_LEVEL` cannot reach them: CUDA plugins
  registered twice, "computation placer already registered", "failed call to cuInit" on a machine
  without a GPU. They are dropped by exact pattern while TensorFlow is imported; any other line
  printed then is passed through.
- larq's "may result in starved weights" warning while a recipe without a kernel constraint
  builds its layers (`starved_weights_intended`, used by `tfbin.binarize`): the recipe chose
  that, so the warning says nothing new; it still shows for every other model. This one applies
  to library use too.
- The same kind of absl lines from the TFLite converters ("Ignored output_format", "MLIR V1
  optimization pass is not enabled") and TFLite's "Created TensorFlow Lite XNNPACK delegate",
  dropped the same way around `tfbin.export.convert`'s conversions and interpreters.
"""
from __future__ import annotations

import contextlib
import logging
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
# Known lines of a TFLite conversion (TensorFlow's and LCE's converters) and interpreter start.
_CONVERSION_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|tf_tfl_flatbuffer_helpers.cc:\d+\] Ignored (output_format|drop_control_dependency)\."
    r"|MLIR V1 optimization pass is not enabled"
    r"|^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"
)


def is_cli() -> bool:
    """Whether this process is the `tfbin` command rather than a program importing tfbin."""
    argv = getattr(sys, "orig_argv", sys.argv)
    if "-m" in argv[:-1] and argv[argv.index("-m") + 1] == "tfbin.cli":
        return True
    return os.path.basename(sys.argv[0]) == "tfbin"


def wanted() -> bool:
    """Quiet only the command, and not with `--verbose` (which shows everything)."""
    return is_cli() and "--verbose" not in sys.argv


@contextlib.contextmanager
def _filtered_stderr(noise: re.Pattern):
    """Capture file descriptor 2 (C++ writes there directly) for the block, then write back
    every captured line that `noise` does not match."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not noise.search(line)))
            sys.stderr.flush()


@contextlib.contextmanager
def tensorflow_import():
    """Around TensorFlow's import: the CLI's log level, and the known import noise dropped."""
    if not wanted():
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _filtered_stderr(_IMPORT_NOISE):
        yield
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery prints its noise now, not later


@contextlib.contextmanager
def conversion():
    """Around a TFLite conversion and interpreter start in the command: drop the converters'
    absl lines (printed before absl's log is initialised, so no log level reaches them) and
    TFLite's XNNPACK note; a no-op for library use."""
    if not wanted():
        yield
        return
    with _filtered_stderr(_CONVERSION_NOISE):
        yield


class _DropStarvedWeights(logging.Filter):
    def filter(self, record):
        return "may result in starved weights" not in record.getMessage()


@contextlib.contextmanager
def starved_weights_intended():
    """larq warns, once per layer, that a binary kernel quantizer without `kernel_constraint`
    "may result in starved weights". Around the building of layers whose recipe chose no
    constraint (IR-Net's `LibraSign` standardises the latent kernels every step and its official
    code clips nothing; BLRNet's logits get their gradient through tanh(θ), not the sign), the
    warning says nothing new and is dropped."""
    logger, drop = logging.getLogger("larq.layers_base"), _DropStarvedWeights()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)
