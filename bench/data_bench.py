"""Data benchmark: what tfbin's CIFAR-10 copy (TFDS `cifar10_local`, `tfbin.data`) costs to prepare
and to read, against decoding the JPEG files directly, and the channel statistics of its images.

    python bench/data_bench.py [--archive ../shared/datasets/cifar10-jpeg.tar.gz] [--prepare-runs 2]
                               [--batch 128] [--out bench/results/data.json]

On the shared JPEG copy (`../shared/datasets/cifar10-jpeg.tar.gz`; skipped, writing nothing, when
it is absent) this measures, in one process:

- preparing it (`tfbin.data.prepare("cifar10", manual_dir=ARCHIVE)`, as `tfbin data cifar10
  --manual-dir` does) into a fresh temporary TFDS data dir, `--prepare-runs` times: wall seconds,
  of which the scan (reading the archive, checking the layout, decoding every image: the
  `scan_seconds` the builder records in its metadata), TFRecord bytes written and their sha256
  (the same digest in every run: the build is deterministic). The user's prepared data is not
  touched;
- one epoch over the 50,000 prepared training images as `load("cifar10", "train").batch(BATCH)`
  gives them, twice on the same dataset object (TFDS caches a dataset this small in memory on the
  first pass);
- one epoch decoding the JPEG files of an extracted copy directly (`tf.io.read_file` +
  `tf.io.decode_jpeg`, parallel `tf.data` map, the same batch); the extraction is not timed;
- the per-channel statistics of the 50,000 training images as `load` gives them (float64
  accumulation): mean, std over all pixels, and the mean of the per-image stds (each image's
  std over its 1,024 pixels, per channel), beside `tfbin.data.CIFAR10_MEAN`/`CIFAR10_STD`.

Times are wall seconds on whatever else the host runs; `load_average` records how busy it was.
Budget: about 5 minutes on a quiet 2-core machine.
"""
import argparse
import hashlib
import json
import os
import platform
import sys
import tarfile
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tfbin  # noqa: E402,F401  (Keras 2 before TensorFlow)
import tensorflow as tf  # noqa: E402
from tfbin import _io, data  # noqa: E402

ARCHIVE = os.path.join(ROOT, "..", "shared", "datasets", "cifar10-jpeg.tar.gz")


def _tfrecords(data_dir):
    """(total bytes, sha256 over the TFRecord files in path order) of a prepared data dir."""
    files = sorted(
        os.path.join(root, name) for root, _, names in os.walk(data_dir) for name in names if ".tfrecord" in name
    )
    digest, total = hashlib.sha256(), 0
    for path in files:
        digest.update(os.path.relpath(path, data_dir).encode() + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
                total += len(chunk)
    return total, digest.hexdigest(), len(files)


def prepare_once(archive, data_dir):
    start = time.perf_counter()
    builder = data.prepare("cifar10", data_dir=data_dir, manual_dir=archive, download=False)
    seconds = time.perf_counter() - start
    scan_seconds = float(dict(builder.info.metadata or {}).get("scan_seconds", float("nan")))
    size, sha256, files = _tfrecords(data_dir)
    return {
        "seconds": round(seconds, 1),
        "scan_seconds": round(scan_seconds, 1),
        "write_seconds": round(seconds - scan_seconds, 1),
        "tfrecord_bytes": size,
        "tfrecord_files": files,
        "tfrecord_sha256": sha256,
        "source": data.source("cifar10", data_dir=data_dir),
    }


def epoch_seconds(dataset):
    """Wall seconds of one pass over `dataset` and the number of images it gave."""
    count, start = 0, time.perf_counter()
    for images, _ in dataset:
        count += int(images.shape[0])
    return time.perf_counter() - start, count


def jpeg_dataset(folder, batch):
    """The training JPEGs of an extracted copy, decoded directly: `(float32 image in [0, 1], label)` batches."""
    train = os.path.join(folder, "train")
    files, labels = [], []
    for label, name in enumerate(data.CIFAR10_CLASSES):
        names = sorted(os.listdir(os.path.join(train, name)))
        files += [os.path.join(train, name, n) for n in names]
        labels += [label] * len(names)

    def decode(file, label):
        image = tf.io.decode_jpeg(tf.io.read_file(file), channels=3)
        return tf.cast(image, tf.float32) / 255.0, tf.cast(label, tf.int64)

    dataset = tf.data.Dataset.from_tensor_slices((files, labels))
    return dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(batch)


def extracted_root(archive, into):
    """Extract `archive` into `into`; the folder that holds `train/` and `test/`."""
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)
    for root, dirs, _ in os.walk(into):
        if "train" in dirs and "test" in dirs:
            return root
    raise SystemExit(f"{archive}: no train/ and test/ folders after extraction")


def channel_statistics(dataset):
    """Per-channel mean, std over all pixels and mean per-image std of `(image, label)` batches (float64)."""
    total, squares, image_std, pixels, images = np.zeros(3), np.zeros(3), np.zeros(3), 0, 0
    for batch, _ in dataset:
        x = batch.numpy().astype(np.float64)
        total += x.sum(axis=(0, 1, 2))
        squares += np.square(x).sum(axis=(0, 1, 2))
        image_std += x.std(axis=(1, 2)).sum(axis=0)
        pixels += x.shape[0] * x.shape[1] * x.shape[2]
        images += x.shape[0]
    mean = total / pixels
    std = np.sqrt(squares / pixels - np.square(mean))
    return {
        "images": images,
        "mean": [round(float(v), 5) for v in mean],
        "std_all_pixels": [round(float(v), 5) for v in std],
        "mean_per_image_std": [round(float(v), 5) for v in image_std / images],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default=ARCHIVE)
    parser.add_argument("--prepare-runs", type=int, default=2, help="preparations, each into a fresh data dir (at least 1)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "data.json"))
    args = parser.parse_args()
    archive = os.path.abspath(args.archive)
    if args.prepare_runs < 1:
        parser.error("--prepare-runs must be at least 1")
    if not os.path.isfile(archive):
        print(f"data_bench: skipped: no CIFAR-10 JPEG copy at {archive} (see ../shared/datasets/README.md); "
              f"nothing written to {args.out}.")
        return
    started, load_before = time.time(), os.getloadavg()
    runs = []
    for _ in range(args.prepare_runs - 1):  # the earlier runs: preparation only
        with tempfile.TemporaryDirectory(prefix="tfbin-data-bench-") as data_dir:
            runs.append(prepare_once(archive, data_dir))
            print(json.dumps({"prepare_run": len(runs), **runs[-1]}), flush=True)
    with tempfile.TemporaryDirectory(prefix="tfbin-data-bench-") as data_dir:
        runs.append(prepare_once(archive, data_dir))
        print(json.dumps({"prepare_run": len(runs), **runs[-1]}), flush=True)
        prepared = data.load("cifar10", "train", data_dir=data_dir).batch(args.batch)
        first, images = epoch_seconds(prepared)
        second, _ = epoch_seconds(prepared)
        statistics = channel_statistics(data.load("cifar10", "train", data_dir=data_dir).batch(1000))
    with tempfile.TemporaryDirectory(prefix="tfbin-data-bench-jpeg-") as folder:
        direct, jpeg_images = epoch_seconds(jpeg_dataset(extracted_root(archive, folder), args.batch))
    if jpeg_images != images:
        raise SystemExit(f"the prepared copy gave {images} training images, the JPEG files {jpeg_images}")
    epochs = {"prepared_first_s": round(first, 2), "prepared_second_s": round(second, 2), "jpeg_direct_s": round(direct, 2)}
    print(json.dumps(epochs), json.dumps(statistics), flush=True)
    command = "python bench/data_bench.py" + "".join(f" {a}" for a in sys.argv[1:])
    payload = {
        "benchmark": "data",
        "command": command,
        "dataset": "CIFAR-10, JPEG copy",
        "archive": {"name": os.path.basename(archive), "bytes": os.path.getsize(archive)},
        "host": {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "load_average": {"before": [round(v, 2) for v in load_before], "after": [round(v, 2) for v in os.getloadavg()]},
        "versions": {"tensorflow": tf.__version__, "tensorflow_datasets": __import__("tensorflow_datasets").__version__},
        "wall_seconds": round(time.time() - started, 1),
        "prepare": runs,
        "prepare_identical": len({r["tfrecord_sha256"] for r in runs}) == 1,
        "epoch": {"images": images, "batch_size": args.batch, **epochs},
        "statistics": {**statistics, "reference_mean": list(data.CIFAR10_MEAN), "reference_std": list(data.CIFAR10_STD)},
    }
    _io.write_text_atomic(args.out, json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
