import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tfbin  # noqa: E402,F401  (selects Keras 2 before TensorFlow loads)
import tensorflow as tf  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    tf.keras.utils.set_random_seed(1234)
    yield
    tf.keras.backend.clear_session()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
