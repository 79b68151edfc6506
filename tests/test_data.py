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


def test_a_truncated_image_in_a_folder_is_named_before_training_or_skipped(tmp_path):
    """`tfbin train --data-dir` scans with `scan_folder` before anything is written: a PNG or JPEG cut
    short (a copy that stopped halfway) is named like a file that is no image at all."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(3):
            (tmp_path / label / f"{i}.png").write_bytes(tf.io.encode_png(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).numpy())
    for ext, encode in {"png": tf.io.encode_png, "jpg": tf.io.encode_jpeg}.items():
        blob = encode(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).numpy()
        (tmp_path / "b" / f"cut.{ext}").write_bytes(blob[: len(blob) * 9 // 10])
    with pytest.raises(ValueError, match=rf"^--data-dir: {tmp_path / 'b' / 'cut.jpg'} is not a readable image \(.*\); remove "
                                         r"or replace it, or pass --skip-bad-images to train without it\.$"):
        data.scan_folder(str(tmp_path))
    (tmp_path / "b" / "cut.jpg").unlink()
    with pytest.raises(ValueError, match=rf"^--data-dir: {tmp_path / 'b' / 'cut.png'} is not a readable image \(.*Invalid PNG"):
        data.scan_folder(str(tmp_path))
    scan = data.scan_folder(str(tmp_path), skip_bad_images=True)
    assert [file for file, _ in scan.skipped] == [str(tmp_path / "b" / "cut.png")] and len(scan.files) == 6
