"""CIFAR-10: tfbin's copy built from image files (a tiny synthetic copy; the shared JPEG copy when
present), the source order, and the papers' augmentation and normalization."""
import json
import os
import tarfile
import time

import numpy as np
import pytest
import tensorflow as tf

import tfbin
from tfbin import cli, data

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_CLASS = 2  # images per class and split: 20 training and 20 test images
SPLITS = ("train", "test")


def write_copy(root, per_class=PER_CLASS, seed=0):
    """A CIFAR-10-like copy `root/cifar10/{train,test}/<class>/NNNN.jpg` of random-looking JPEGs."""
    rng = np.random.default_rng(seed)
    for split in SPLITS:
        for name in CLASSES:
            folder = root / "cifar10" / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                # smooth colour ramps plus noise: JPEG's losses are visible, as in real photos
                image = np.clip(rng.integers(0, 256, 3) + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
                (folder / f"{i:04d}.jpg").write_bytes(tf.io.encode_jpeg(image, quality=75).numpy())
    (root / "cifar10" / "README.md").write_text("beside the split folders: ignored\n")
    return root / "cifar10"


def make_tar(folder, path, arcname="cifar10"):
    with tarfile.open(path, "w:gz") as archive:
        archive.add(folder, arcname=arcname)
    return path


@pytest.fixture(scope="module")
def copy_folder(tmp_path_factory):
    return write_copy(tmp_path_factory.mktemp("copy"))


@pytest.fixture(scope="module")
def prepared(copy_folder, tmp_path_factory):
    """The synthetic copy prepared from its .tar.gz into a fresh data dir (one build for the module)."""
    tar = make_tar(copy_folder, tmp_path_factory.mktemp("tar") / "cifar10.tar.gz")
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    data.prepare("cifar10", data_dir=data_dir, manual_dir=str(tar))
    return data_dir, tar


def with_ids(data_dir, split):
    builder = data._cifar10_local_builder(data_dir)
    return [(x["id"].numpy().decode(), x["image"].numpy(), int(x["label"])) for x in builder.as_dataset(split=split)]


def test_class_names_are_cifar10s_order():
    assert list(data.CIFAR10_CLASSES) == CLASSES
    assert "cifar10" in data.available()


def test_prepared_copy_holds_the_decoded_jpeg_pixels_exactly(prepared, copy_folder):
    data_dir, _ = prepared
    assert data.source("cifar10", data_dir=data_dir) == "CIFAR-10, JPEG copy"
    for split in SPLITS:
        examples = with_ids(data_dir, split)
        assert sorted(key for key, _, _ in examples) == sorted(
            f"{split}/{name}/{i:04d}.jpg" for name in CLASSES for i in range(PER_CLASS))
        for key, image, label in examples:
            expected = tf.io.decode_jpeg(tf.io.read_file(str(copy_folder / key))).numpy()
            assert image.dtype == np.uint8 and image.shape == (32, 32, 3)
            np.testing.assert_array_equal(image, expected)  # PNG storage is lossless
            assert label == CLASSES.index(key.split("/")[1])
        # load(): the same examples in the same order, as float32 in [0, 1] and int64 labels
        images, labels = next(iter(data.load("cifar10", split, data_dir=data_dir).batch(100)))
        assert images.dtype == tf.float32 and labels.dtype == tf.int64 and images.shape == (20, 32, 32, 3)
        np.testing.assert_array_equal(images.numpy(), np.stack([i for _, i, _ in examples]).astype(np.float32) / 255.0)
        assert labels.numpy().tolist() == [label for _, _, label in examples]
    assert sum(1 for _ in data.load("cifar10", "train[:5]", data_dir=data_dir)) == 5
    metadata = data._cifar10_local_builder(data_dir).info.metadata
    assert metadata["kind"] == "archive" and metadata["formats"] == {"jpeg": 40} and len(metadata["sha256"]) == 64


def test_folder_and_archive_give_the_same_dataset(prepared, copy_folder, tmp_path):
    data_dir, _ = prepared
    builder = data.prepare("cifar10", data_dir=str(tmp_path), manual_dir=str(copy_folder.parent))
    assert builder.name == "cifar10_local" and builder.info.metadata["kind"] == "folder"
    for split in SPLITS:
        ours, theirs = with_ids(str(tmp_path), split), with_ids(data_dir, split)
        assert [k for k, _, _ in ours] == [k for k, _, _ in theirs]  # the same order on disk: deterministic
        for (_, a, la), (_, b, lb) in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)
            assert la == lb


def test_archive_without_a_top_folder_or_inside_a_folder(copy_folder, tmp_path):
    flat = make_tar(copy_folder, tmp_path / "flat.tgz", arcname=".")
    scan = data._scan_cifar10_copy(str(flat))
    assert {split: len(v) for split, v in scan.examples.items()} == {"train": 20, "test": 20}
    holder = tmp_path / "manual"
    holder.mkdir()
    make_tar(copy_folder, holder / "cifar10-jpeg.tar.gz")
    scan = data._scan_cifar10_copy(str(holder))  # TFDS's manual_dir form: a folder holding the archive
    assert scan.kind == "archive" and scan.examples["train"][0] == ("train/airplane/0000.jpg", 0)


def test_an_unreadable_image_is_named_before_anything_is_written(copy_folder, tmp_path):
    import shutil

    source = tmp_path / "src"
    shutil.copytree(copy_folder, source / "cifar10")
    good = (source / "cifar10/train/cat/0000.jpg").read_bytes()
    (source / "cifar10/train/cat/0000.jpg").write_bytes(good[: len(good) // 2])  # truncated
    data_dir = tmp_path / "tfds"
    with pytest.raises(ValueError, match=r"train/cat/0000\.jpg is not a readable 32×32 image \(.*Invalid JPEG data"):
        data.prepare("cifar10", data_dir=str(data_dir), manual_dir=str(source))
    assert not data_dir.exists()  # checked before TFDS wrote anything
    tar = make_tar(source / "cifar10", tmp_path / "bad.tar.gz")
    with pytest.raises(ValueError, match=rf"cifar10/train/cat/0000\.jpg in {tar} is not a readable"):
        data.prepare("cifar10", data_dir=str(data_dir), manual_dir=str(tar))
    (source / "cifar10/test/dog/notes.txt").write_text("not an image")
    (source / "cifar10/train/cat/0000.jpg").write_bytes(good)
    with pytest.raises(ValueError, match=r"test/dog/notes\.txt is not a readable 32×32 image \(not a JPEG, PNG"):
        data.prepare("cifar10", data_dir=str(data_dir), manual_dir=str(source))
    assert not data_dir.exists()

    builder = data.prepare("cifar10", data_dir=str(data_dir), manual_dir=str(source), skip_bad_images=True)
    assert builder.info.splits["test"].num_examples == 20 and builder.info.metadata["skipped"] == 1
    assert data.source("cifar10", data_dir=str(data_dir)) == "CIFAR-10, JPEG copy, 1 unreadable image(s) left out"


@pytest.mark.parametrize("layout, message", [
    ({"cifar10/training/cat/0.jpg": 1, "cifar10/testing/cat/0.jpg": 1}, r"found split folders \['testing', 'training'\]"),
    ({"a/train/cat/0.jpg": 1, "b/test/cat/0.jpg": 1}, r"no train/ and test/ folders \(found folders \['a', 'b'\]\)"),
    ({"train/0.jpg": 1, "test/0.jpg": 1}, r"test/0\.jpg is not directly in a class folder of its split \(2 such file\(s\)\)"),
    ({"train/plane/0.jpg": 1, "train/cat/0.jpg": 1, "test/cat/0.jpg": 1}, r"unknown class folder\(s\) \['plane'\]"),
    ({**{f"train/{c}/0.jpg": 1 for c in CLASSES}, "test/cat/0.jpg": 1}, r"test/ lacks the class folder\(s\) \['airplane'"),
])
def test_a_wrong_layout_says_the_expected_one(tmp_path, layout, message):
    for name in layout:
        (tmp_path / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / name).write_bytes(b"\xff\xd8\xff")
    with pytest.raises(ValueError, match=message) as caught:
        data.prepare("cifar10", data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path / "src"))
    assert r"expected [one top folder/]{train,test}/<class>/<image>" in str(caught.value)
    assert "airplane, automobile, bird" in str(caught.value)
    assert not (tmp_path / "tfds").exists()


def test_a_failed_build_leaves_nothing_a_later_load_would_use(copy_folder, tmp_path, monkeypatch):
    builder_class = data._cifar10_local_class()
    original = builder_class._generate_examples

    def dies_midway(self, split):
        for i, example in enumerate(original(self, split)):
            if i == 7:
                raise OSError("disk full (simulated)")
            yield example

    monkeypatch.setattr(builder_class, "_generate_examples", dies_midway)
    with pytest.raises(OSError, match="simulated"):
        data.prepare("cifar10", data_dir=str(tmp_path), manual_dir=str(copy_folder))
    assert not list(tmp_path.rglob("dataset_info.json")) and not list(tmp_path.rglob("*.tfrecord*"))
    with pytest.raises(data.DataUnavailableError, match="is not prepared"):
        data.source("cifar10", data_dir=str(tmp_path))
    monkeypatch.setattr(builder_class, "_generate_examples", original)
    assert data.prepare("cifar10", data_dir=str(tmp_path), manual_dir=str(copy_folder)).info.splits["train"].num_examples == 20


def test_source_order_tfds_then_the_copy(prepared, monkeypatch):
    data_dir, tar = prepared
    real = data._is_prepared
    # TFDS's own (upstream) cifar10 comes first wherever it is prepared, even with a manual_dir
    monkeypatch.setattr(data, "_is_prepared", lambda builder: builder.name == "cifar10" or real(builder))
    assert data.prepare("cifar10", data_dir=data_dir, manual_dir=str(tar)).name == "cifar10"
    assert data.source("cifar10", data_dir=data_dir) == "CIFAR-10 (TFDS)"
    monkeypatch.setattr(data, "_is_prepared", real)
    assert data.prepare("cifar10", data_dir=data_dir).name == "cifar10_local"  # no manual_dir needed any more


def test_no_source_says_how_to_get_it_without_a_long_download(tmp_path, monkeypatch):
    start = time.time()
    with pytest.raises(data.DataUnavailableError, match=r"tfbin data cifar10 --manual-dir PATH"):
        data.prepare("cifar10", data_dir=str(tmp_path), download=False)
    monkeypatch.setattr(data, "_online", lambda host: False)
    with pytest.raises(data.DataUnavailableError, match=r"offline .*tfbin data cifar10 --manual-dir PATH"):
        data.load("cifar10", "test", data_dir=str(tmp_path))
    with pytest.raises(data.DataUnavailableError, match="no such file or directory"):
        data.prepare("cifar10", data_dir=str(tmp_path), manual_dir=str(tmp_path / "nowhere.tar.gz"))
    assert time.time() - start < 30
    assert not list(tmp_path.rglob("dataset_info.json"))


def test_cli_prepares_a_copy_and_notes_a_missing_one(copy_folder, tmp_path, capsys, monkeypatch):
    tar = make_tar(copy_folder, tmp_path / "copy.tar.gz")
    assert cli.main(["data", "cifar10", "--data-dir", str(tmp_path / "a"), "--manual-dir", str(tar)]) == 0
    assert "cifar10: ready in " in capsys.readouterr().out
    assert cli.main(["data", "cifar10", "--data-dir", str(tmp_path / "a")]) == 0  # prepared: no --manual-dir needed
    assert "(CIFAR-10, JPEG copy; {'train': 20, 'test': 20}; " in capsys.readouterr().out
    # `tfbin data` with no names (make test) notes cifar10 in one line instead of downloading it
    monkeypatch.setattr(data, "available", lambda: ["cifar10"])
    monkeypatch.setattr(data, "_online", lambda host: pytest.fail("`tfbin data` must not try to download cifar10"))
    assert cli.main(["data", "--data-dir", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["cifar10: not prepared, no source on this machine (skipped); to add it: tfbin data cifar10 --manual-dir PATH"]
    assert cli.main(["data", "--data-dir", str(tmp_path / "b"), "--manual-dir", str(tar)]) == 1
    assert "--manual-dir needs the name of the dataset" in capsys.readouterr().err


def test_cli_skip_bad_images(copy_folder, tmp_path, capsys):
    import shutil

    shutil.copytree(copy_folder, tmp_path / "src")
    (tmp_path / "src/train/frog/0001.jpg").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert cli.main(["data", "cifar10", "--data-dir", str(tmp_path / "t"), "--manual-dir", str(tmp_path / "src")]) == 1
    assert f"tfbin data: error: CIFAR-10 copy: {tmp_path / 'src/train/frog/0001.jpg'} is not a readable" in capsys.readouterr().err
    args = ["data", "cifar10", "--data-dir", str(tmp_path / "t"), "--manual-dir", str(tmp_path / "src"), "--skip-bad-images"]
    assert cli.main(args) == 0
    assert "CIFAR-10, JPEG copy, 1 unreadable image(s) left out; {'train': 19, 'test': 20}" in capsys.readouterr().out


# Augmentation and normalization

def image(seed=0):
    return tf.constant(np.random.default_rng(seed).random((32, 32, 3)), tf.float32)


def test_augment_is_a_padded_shift_or_its_mirror():
    x = image()
    padded = np.pad(x.numpy(), ((4, 4), (4, 4), (0, 0)))  # zeros, as torchvision's RandomCrop(32, padding=4)
    offsets, flips = set(), set()
    for s in range(300):
        out, label = data.cifar_augment(x, tf.constant(7, tf.int64), tf.constant([s, 1], tf.int64))
        assert out.shape == (32, 32, 3) and out.dtype == tf.float32 and int(label) == 7
        out = out.numpy()
        matches = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
                   if np.array_equal(out[:, ::-1] if flip else out, padded[dy:dy + 32, dx:dx + 32])]
        assert len(matches) == 1, s  # exactly one crop of the padded image, mirrored or not
        offsets.add(matches[0][:2])
        flips.add(matches[0][2])
        np.testing.assert_array_equal(out, data.cifar_augment(x, 0, tf.constant([s, 1], tf.int64))[0])  # stateless
    assert flips == {False, True} and len(offsets) >= 70  # all 81 offsets are possible (300 draws)


def test_normalize_is_the_formula():
    x = image(1)
    out, label = data.cifar_normalize(x, 3)
    expected = (x.numpy() - np.float32([0.4914, 0.4822, 0.4465])) / np.float32([0.2023, 0.1994, 0.2010])
    np.testing.assert_array_equal(out.numpy(), expected)  # float32 subtraction and division, bit for bit
    assert label == 3
    out, _ = data.cifar_normalize(x, 3, data.IMAGENET_MEAN, data.IMAGENET_STD)
    np.testing.assert_allclose(out.numpy(), (x.numpy() - np.float32([0.485, 0.456, 0.406])) / np.float32([0.229, 0.224, 0.225]),
                               rtol=1e-6, atol=1e-6)


def dataset(n=16):
    return tf.data.Dataset.from_tensor_slices((tf.stack([image(i) for i in range(n)]), tf.range(n, dtype=tf.int64)))


def epochs(ds, count=2):
    return [np.stack([x.numpy() for x, _ in ds]) for _ in range(count)]


def test_evaluation_only_normalizes():
    images = np.stack([x.numpy() for x, _ in dataset()])
    out = np.stack([x.numpy() for x, _ in data.cifar_preprocess(dataset(), training=False)])
    np.testing.assert_array_equal(out, np.stack([data.cifar_normalize(x, 0)[0].numpy() for x in images]))


def test_training_pipeline_is_reproducible_and_new_each_epoch():
    tf.keras.utils.set_random_seed(5)
    first = epochs(data.cifar_preprocess(dataset(), training=True))
    tf.keras.utils.set_random_seed(5)
    again = epochs(data.cifar_preprocess(dataset(), training=True))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])  # fresh crops and flips every epoch
    labels = [int(y) for _, y in data.cifar_preprocess(dataset(), training=True)]
    assert labels == list(range(16))
    tf.keras.utils.set_random_seed(99)
    seeded = epochs(data.cifar_preprocess(dataset(), training=True, seed=3), 1)[0]
    other = epochs(data.cifar_preprocess(dataset(), training=True, seed=4), 1)[0]
    tf.keras.utils.set_random_seed(99)
    np.testing.assert_array_equal(seeded, epochs(data.cifar_preprocess(dataset(), training=True, seed=3), 1)[0])
    assert not np.array_equal(seeded, other)
    # each training image is an augmented copy of its own image, normalized
    original = [x.numpy() for x, _ in dataset()]
    std, mean = np.float32(data.CIFAR10_STD), np.float32(data.CIFAR10_MEAN)
    for x, out in zip(original, first[0]):
        unnormalized = out * std + mean
        padded = np.pad(x, ((4, 4), (4, 4), (0, 0)))
        assert any(np.allclose(u, padded[dy:dy + 32, dx:dx + 32], atol=1e-5)
                   for dy in range(9) for dx in range(9) for u in (unnormalized, unnormalized[:, ::-1]))


# `tfbin train --dataset cifar10` (tfbin.jobs.train) on the synthetic copy

@pytest.fixture
def in_prepared(prepared, monkeypatch):
    """tfbin.data's loaders reading the synthetic copy's data dir (the job names no data dir)."""
    import functools

    data_dir, _ = prepared
    for name in ("load", "info", "source"):
        monkeypatch.setattr(data, name, functools.partial(getattr(data, name), data_dir=data_dir))
    return data_dir


def images(ds):
    return np.stack([x.numpy() for x, _ in ds]), [int(y) for _, y in ds]


def test_train_job_feeds_cifar10_through_the_papers_pipeline(in_prepared):
    from tfbin.jobs import train

    run = train.prepare(model="resnet20", dataset="cifar10", out="unused", batch_size=8)
    normalized = data.cifar_preprocess(data.load("cifar10", "test"), training=False)
    np.testing.assert_array_equal(images(run.data.test)[0], images(normalized)[0])  # evaluation: normalization only
    assert run.data.input_shape == (32, 32, 3) and run.data.description == "cifar10 (CIFAR-10, JPEG copy)"
    assert run.data.augmentation.startswith("4-pixel zero padding, random 32x32 crop, random horizontal flip")
    clean = images(data.cifar_preprocess(data.load("cifar10", "train"), training=False))

    def epoch_images(run, first, epoch):
        tf.keras.utils.set_random_seed(0)  # as `fit` does
        batches = list(train._training_batches(run.data, 8, first, 2))[(epoch - first) * 3:(epoch - first + 1) * 3]
        return np.concatenate([x.numpy() for x, _ in batches]), [int(label) for _, ys in batches for label in ys]

    # An epoch's images depend on the seed and the epoch's index only: epoch 2 of a run resumed at
    # epoch 2 is epoch 2 of a run from the start, in a fresh pipeline.
    second, labels = epoch_images(run, 1, 1)
    np.testing.assert_array_equal(second, epoch_images(run, 0, 1)[0])
    first = epoch_images(run, 0, 0)[0]
    assert not np.array_equal(first, second)  # a new order and new crops every epoch
    assert sorted(labels) == sorted(clean[1]) and len(second) == 20
    assert sum(any(np.array_equal(x, c) for c in clean[0]) for x in second) < 10  # augmented: most are shifted or mirrored

    plain = train.prepare(model="resnet20", dataset="cifar10", out="unused", augment=False)
    assert plain.data.augmentation is None
    unaugmented, labels = epoch_images(plain, 0, 0)
    order = [next(i for i, c in enumerate(clean[0]) if np.array_equal(x, c)) for x in unaugmented]
    assert sorted(order) == list(range(20)) and order != list(range(20))  # the clean images, shuffled
    assert labels == [clean[1][i] for i in order]


def test_train_job_adapts_cifar10_to_the_default_model(in_prepared):
    from tfbin.jobs import train

    run = train.prepare(dataset="cifar10", out="unused", train_samples=4, test_samples=4)  # fmnist_small: 28x28x1
    assert run.data.input_shape == (28, 28, 1)
    assert run.data.shape_source == "the model's own; the dataset's 32x32x3 images are adapted: resized, channels averaged"
    normalized = data.adapt(data.cifar_preprocess(data.load("cifar10", "test[:4]"), training=False), (28, 28, 1))
    np.testing.assert_array_equal(images(run.data.test)[0], images(normalized)[0])  # normalized, then adapted
    assert "  prep    training images: 4-pixel zero padding, random 32x32 crop, random horizontal flip; every image: " \
           "(x - mean) / std per channel" in train._start_line(run).splitlines()


@pytest.mark.slow  # ~2 min: resnet20, one epoch of 3 batches, export and pictures
@pytest.mark.margin(exact="the pipeline's calls, summary and report fields, the reloaded model's hard accuracy on the normalized test images against the reported one")
def test_train_job_on_cifar10_records_its_pipeline_and_evaluates_as_it_trained(in_prepared, tmp_path, monkeypatch):
    from tfbin.jobs.train import train

    calls = []
    preprocess = data.cifar_preprocess

    def spy(dataset, *, training, seed=None, **kwargs):
        calls.append((training, seed))
        return preprocess(dataset, training=training, seed=seed, **kwargs)

    monkeypatch.setattr(data, "cifar_preprocess", spy)
    out = str(tmp_path / "run")
    summary = train(model="resnet20", dataset="cifar10", epochs=1, batch_size=8, out=out, verbose=0, print_fn=None)
    # the training and test images for evaluation, then epoch 1's training images, augmented
    assert calls == [(False, None), (False, None), (True, 1)]
    assert summary["data"] == "cifar10 (CIFAR-10, JPEG copy)" and summary["data_source"] == "CIFAR-10, JPEG copy"
    assert summary["augmentation"] == "4-pixel zero padding, random 32x32 crop, random horizontal flip (tfbin.data.cifar_augment)"
    assert summary["normalization"] == {"mean": list(data.CIFAR10_MEAN), "std": list(data.CIFAR10_STD)}
    assert (summary["train_images"], summary["test_images"], summary["input_shape"]) == (20, 20, [32, 32, 3])
    report = json.loads((tmp_path / "run" / "model.report.json").read_text())
    assert "(x - mean) / std per channel with mean (0.4914, 0.4822, 0.4465)" in json.dumps(report)
    for picture in ("curves.png", "sharpness.png", "activations.png", "saturation.png"):
        assert (tmp_path / "run" / picture).stat().st_size > 0
    model = tf.keras.models.load_model(str(tmp_path / "run" / "model.keras"))
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with tfbin.hard(model):
        again = model.evaluate(preprocess(data.load("cifar10", "test"), training=False).batch(8), verbose=0, return_dict=True)
    assert abs(again["accuracy"] - summary["hard_accuracy"]) < 1e-4  # 20 images: exact


# The shared JPEG copy (skips when absent)

@pytest.mark.slow
@pytest.mark.release  # preparing the 60,000 JPEGs takes ~100 s on a fresh machine; the fast tests cover the path
def test_the_shared_jpeg_copy(cifar10_jpeg_tar):
    """Prepared once into the default data dir (its cost: `bench/data_bench.py`); later runs reuse it."""
    builder = data.prepare("cifar10", manual_dir=cifar10_jpeg_tar)
    splits = builder.info.splits
    assert (splits["train"].num_examples, splits["test"].num_examples) == (50_000, 10_000)
    if builder.name == "cifar10_local":
        assert data.source("cifar10") == "CIFAR-10, JPEG copy"
        assert builder.info.metadata["sha256"] == "252462edcdb9a2e8b3e32b71391b76706e4812111117a14bb4e723eade528a2e"
    images, labels = next(iter(data.load("cifar10", "test[:64]").batch(64)))
    assert images.shape == (64, 32, 32, 3) and images.dtype == tf.float32 and labels.dtype == tf.int64
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
    assert set(labels.numpy().tolist()) <= set(range(10)) and len(set(labels.numpy().tolist())) >= 5
    assert os.path.commonpath([builder.data_dir, os.getcwd()]) != os.getcwd()  # never inside the repository
