"""Datasets: real examples through TFDS from local files; clear errors otherwise."""
import numpy as np
import pytest

from tfbin import data


def load_or_skip(name, split):
    try:
        return data.load(name, split)
    except data.DataUnavailableError as err:
        pytest.skip(f"{name} cannot be installed on this machine: {err}")


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist"])
def test_real_test_split(name):
    images, labels = [], []
    for x, y in load_or_skip(name, "test").batch(2500):
        images.append(x.numpy())
        labels.append(y.numpy())
    images, labels = np.concatenate(images), np.concatenate(labels)
    assert images.shape == (10_000, 28, 28, 1) and images.dtype == np.float32
    assert labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    counts = np.bincount(labels, minlength=10)
    if name == "fashion_mnist":
        assert counts.tolist() == [1000] * 10
    else:  # MNIST's test split is not balanced; these are its known class counts.
        assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_split_strings_are_tfds_splits():
    dataset = load_or_skip("fashion_mnist", "train[:1%]")
    assert sum(1 for _ in dataset) == 600


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"'cifar100'.*\['cifar10', 'fashion_mnist', 'mnist'\]"):
        data.load("cifar100")


def test_manual_dir_without_the_files_says_what_is_missing(tmp_path):
    with pytest.raises(data.DataUnavailableError, match="train-images-idx3-ubyte.gz"):
        data.prepare("fashion_mnist", data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path))
