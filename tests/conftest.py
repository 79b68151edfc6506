import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import importlib.util  # noqa: E402

# Keras 2 before TensorFlow loads; `make test-keras3`'s virtualenv has no Keras 2 (no `[larq]` extra)
# and runs only the tests of the Keras 3 path.
if importlib.util.find_spec("larq") is not None:
    import tfbin  # noqa: F401
import tensorflow as tf  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    tf.keras.utils.set_random_seed(1234)
    yield
    tf.keras.backend.clear_session()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# The CIFAR-10 JPEG copy beside the repository (never inside it): ../shared/datasets/.
CIFAR10_JPEG_TAR = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets", "cifar10-jpeg.tar.gz"))


@pytest.fixture
def cifar10_jpeg_tar():
    """Path of the shared CIFAR-10 JPEG copy (60,000 images as `cifar10/{train,test}/<class>/NNNN.jpg`);
    skips the test when it is absent."""
    if not os.path.isfile(CIFAR10_JPEG_TAR):
        pytest.skip(f"the CIFAR-10 JPEG copy is not on this machine ({CIFAR10_JPEG_TAR}, i.e. "
                    "../shared/datasets/cifar10-jpeg.tar.gz relative to the repository)")
    return CIFAR10_JPEG_TAR


def pytest_sessionfinish(session, exitstatus):
    """With TFBIN_PEAK_RSS_LOG=PATH, each pytest process (every xdist worker too) appends its
    peak resident memory (VmHWM) to PATH: how `make test`'s memory figure is measured."""
    path = os.environ.get("TFBIN_PEAK_RSS_LOG")
    if not path:
        return
    with open("/proc/self/status") as f:
        peak = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(path, "a") as f:
        f.write(f"{worker} {int(peak) / 1024 / 1024:.2f} GiB\n")


def pytest_runtest_teardown(item, nextitem):
    """With TFBIN_RSS_TRACE=PATH, each test appends its process's resident memory after it ran,
    to find which tests hold memory."""
    path = os.environ.get("TFBIN_RSS_TRACE")
    if not path:
        return
    with open("/proc/self/status") as f:
        rss = next(line.split()[1] for line in f if line.startswith("VmRSS:"))
    with open(path, "a") as f:
        f.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')} {int(rss) // 1024} MiB {item.nodeid}\n")
