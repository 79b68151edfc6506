"""`import tfbin` selects Keras 2, or says what to do when it cannot."""
import os
import subprocess
import sys


def run(code):
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_import_tfbin_first_gives_tf_keras():
    result = run("import tfbin, tensorflow as tf, larq; print(tf.keras.Model.__module__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("tf_keras.")


def test_tensorflow_imported_with_keras3_first_is_a_clear_error():
    # `import tfbin` itself succeeds there (`tfbin.keras3` is the Keras 3 path); the first use of
    # the Keras 2 API, or an import of a Keras 2 module, raises.
    assert "TensorFlow was imported with Keras 3 before tfbin" in run("import tensorflow as tf\nimport tfbin.quantizers").stderr
    result = run("import tensorflow as tf\nimport tfbin\ntfbin.binarize")
    assert result.returncode != 0
    assert "ImportError: TensorFlow was imported with Keras 3 before tfbin" in result.stderr
    assert "TF_USE_LEGACY_KERAS=1" in result.stderr
