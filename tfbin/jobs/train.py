"""The main job in one call: train a binarized model, look at it, export it, verify the `.tflite`.

```python
from tfbin.jobs.train import train
result = train(model="fmnist_small", recipe="irnet", dataset="fashion_mnist", epochs=3, out="run")
result["hard_accuracy"], result["tflite_accuracy"]
```

`tfbin train` is the same on the command line. Everything lands in `out`:

| file | what |
|---|---|
| `model.keras` | the trained model (the deployable one; auxiliary-loss heads are not in it) |
| `model.tflite`, `model.report.json`/`.md` | the LCE export and its verification report |
| `recipe.json` | the recipe, loadable with `tfbin.recipes.Recipe.from_json` |
| `history.csv`, `history.json` | per-epoch logs: losses, soft/hard accuracy, sharpness, saturation, flips |
| `activations.npz` | per-epoch histograms of the binarized layers' input activations |
| `summary.json` | the final table |
| `*.png` | pictures (`tfbin.jobs.plots`); `tfbin report DIR` redraws them |
| `tensorboard/` | TensorBoard logs |
| `backup/` | the checkpoint of the last finished epoch while a run is unfinished (`resume=True` continues it); removed once every file above is written |

The job runs in three stages a test can call one by one: `prepare` (every argument and image
checked, nothing written) -> `fit` (training, continuing a checkpoint) -> `ship` (evaluate, save,
export, verify, draw). `train` runs them and turns the faults a run meets into one line each:

- **SIGINT (Ctrl-C) or SIGTERM** stops the run with `TrainingInterrupted` (a `KeyboardInterrupt`)
  that says which epoch's checkpoint is kept; `tfbin train` prints it and exits 128 + the signal.
  A signal that arrives while a checkpoint is being written takes effect once it is complete.
- **A crash** (any exception) keeps the checkpoint of the last finished epoch.
- **A full disk** raises `DiskFullError` naming the file that could not be written; nothing
  partial is left (files are written atomically; a checkpoint that could not be completed is
  removed) and the previous checkpoint is intact.

In each case `resume=True` (`--resume`) continues from the checkpoint. Each epoch's data order
and augmentation are drawn from the seed and the epoch's index alone, so under
`tf.config.experimental.enable_op_determinism()` (or `TF_DETERMINISTIC_OPS=1`) a resumed run
ends on exactly the weights of an uninterrupted one (docs/reliability.md).
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import shutil
import signal
import threading
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from tfbin import _io, export, models, regimen
from tfbin import data as data_lib
from tfbin import recipes as recipes_lib
from tfbin.data import FolderScan, adapt, load_folder, scan_folder
from tfbin.callbacks import BinarizationMonitor, StopOnNonFinite
from tfbin.auxiliary import unwrap
from tfbin.jobs import plots

__all__ = ["train", "prepare", "fit", "ship", "Run", "Fitted", "TrainingInterrupted", "DiskFullError", "format_summary"]

RESULT_FILES = ("model.keras", "model.tflite", "model.report.json", "recipe.json", "history.csv", "history.json", "summary.json")


class _SaveActivations(tf.keras.callbacks.Callback):
    """Writes the monitor's activation histograms after every epoch (atomically); a resumed run
    starts from the epochs already in the file."""

    def __init__(self, monitor: BinarizationMonitor, path: str):
        super().__init__()
        self.monitor, self.path, self.epochs = monitor, path, {}
        if os.path.exists(path):
            with np.load(path) as old:
                self.epochs = {k: old[k] for k in old.files}

    def on_epoch_end(self, epoch, logs=None):
        # Keyed by the layer's position: layer names can differ between a run and its resumption.
        names = list(dict.fromkeys(key.split("/", 1)[1] for key in self.monitor.histograms))
        for key, counts in self.monitor.histograms.items():
            kind, name = key.split("/", 1)
            self.epochs[f"epoch{epoch:04d}/{kind}/{names.index(name)}"] = counts
        self.epochs["layer_names"] = np.array(names)
        self.epochs["latent_bin_edges"] = self.monitor.bin_edges
        self.epochs["soft_bin_edges"] = self.monitor.soft_bin_edges
        _io.write_npz_atomic(self.path, self.epochs)


@dataclasses.dataclass
class _Data:
    """The datasets of a run and what the start line and summary.json say about them.

    `train` and `test` are as the model is evaluated on them (preprocessed, not augmented);
    `raw_train` holds the training images before preprocessing, in their stored order, and
    `preprocess(dataset, training, seed)` is the pipeline both go through (`training=True`
    adds the augmentation, if any, drawn with `seed`).
    """

    train: tf.data.Dataset
    test: tf.data.Dataset
    class_names: list
    description: str
    input_shape: tuple
    shape_source: str
    train_images: int
    test_images: int
    skipped_images: int = 0
    raw_train: tf.data.Dataset | None = None
    preprocess: Callable | None = None
    source: str | None = None
    augmentation: str | None = None
    normalization: dict | None = None

    def __post_init__(self):
        if self.raw_train is None:  # images ready as they are (a folder, resized on load)
            self.raw_train = self.train
            self.preprocess = lambda dataset, training, seed=None: dataset


def _input_shape(model: str, input_shape, scan: FolderScan | None):
    """`(H, W, C)` to build and feed the model at, and where it came from. The small nets are
    built for their own input size; a zoo net takes any, so a folder's images decide there."""
    if input_shape:
        return tuple(int(d) for d in input_shape), "from --input-shape"
    if scan is None or model in models.SMALL:
        return tuple(models.default_input_shape(model)), "the model's own"
    shape, count = scan.shapes.most_common(1)[0]
    share = "all images" if count == len(scan.files) else f"{count} of {len(scan.files)} images; the others are resized"
    return shape, f"from the images: {share}"


def _count(dataset: tf.data.Dataset) -> int:
    cardinality = int(dataset.cardinality())
    return cardinality if cardinality >= 0 else sum(1 for _ in dataset)


def _folder_data(model, data_dir, input_shape, seed, train_samples, test_samples, skip_bad_images) -> _Data:
    scan = scan_folder(data_dir, skip_bad_images)
    shape, source = _input_shape(model, input_shape, scan)
    train_ds, test_ds, class_names = load_folder(data_dir, shape, seed, scan=scan)
    # No cache in this pipeline, so `take` after the split is cheap and safe.
    train_ds = train_ds.take(train_samples) if train_samples else train_ds
    test_ds = test_ds.take(test_samples) if test_samples else test_ds
    return _Data(train_ds, test_ds, class_names, f"folder {data_dir}", shape, source,
                 _count(train_ds), _count(test_ds), len(scan.skipped))


CIFAR_AUGMENTATION = "4-pixel zero padding, random 32x32 crop, random horizontal flip (tfbin.data.cifar_augment)"


def _builtin_data(model, dataset, input_shape, train_samples, test_samples, augment) -> _Data:
    """A built-in dataset; CIFAR-10 goes through the papers' pipeline (`tfbin.data.cifar_preprocess`:
    augmentation of the training images unless `augment` is false, per-channel normalization of
    every image), then anything is adapted (resized, channels repeated or averaged) to the model."""
    if dataset not in data_lib.available():
        raise ValueError(f"Unknown dataset {dataset!r}; the built-in datasets are {data_lib.available()} (or use --data-dir).")
    shape, shape_source = _input_shape(model, input_shape, None)
    # TFDS caches small datasets in memory; slicing the split (rather than `take` on the whole
    # of it) cuts before that cache, so every pass reads the cache to its end.
    train_ds = data_lib.load(dataset, f"train[:{train_samples}]" if train_samples else "train")
    test_ds = data_lib.load(dataset, f"test[:{test_samples}]" if test_samples else "test")
    info = data_lib.info(dataset)
    native = tuple(int(d) for d in info.features["image"].shape)
    if native != tuple(shape):  # `adapt`: resized, grey repeated to colour or colour averaged to grey
        h, w, c = native
        how = (["resized"] if (h, w) != tuple(shape[:2]) else []) + (
            [f"channels {'averaged' if c > shape[2] else 'repeated'}"] if c != shape[2] else [])
        shape_source += f"; the dataset's {h}x{w}x{c} images are adapted: {', '.join(how)}"
    cifar = dataset == "cifar10"

    def preprocess(images, training, seed=None):
        if cifar:
            images = data_lib.cifar_preprocess(images, training=training and augment, seed=seed)
        return images if native == tuple(shape) else adapt(images, shape)

    try:
        source = data_lib.source(dataset)
    except data_lib.DataUnavailableError:  # e.g. TFDS's mock data in tests
        source = None
    description = dataset if source is None or source.endswith("(TFDS)") else f"{dataset} ({source})"
    return _Data(
        preprocess(train_ds, False), preprocess(test_ds, False), list(info.features["label"].names), description,
        shape, shape_source, _count(train_ds), _count(test_ds), raw_train=train_ds, preprocess=preprocess, source=source,
        augmentation=CIFAR_AUGMENTATION if cifar and augment else None,
        normalization={"mean": list(data_lib.CIFAR10_MEAN), "std": list(data_lib.CIFAR10_STD)} if cifar else None,
    )


def _load_data(model, dataset, data_dir, input_shape, seed, train_samples, test_samples, skip_bad_images, augment) -> _Data:
    """The run's datasets, checked (names, folder, every image) before anything is written."""
    if (dataset is None) == (data_dir is None):
        raise ValueError("Give exactly one of dataset (a built-in name) or data_dir (a folder of class sub-folders).")
    for name, value in (("train_samples", train_samples), ("test_samples", test_samples)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1 (or None for all), got {value}.")
    if data_dir is not None:
        return _folder_data(model, data_dir, input_shape, seed, train_samples, test_samples, skip_bad_images)
    return _builtin_data(model, dataset, input_shape, train_samples, test_samples, augment)


_SHUFFLE_BUFFER = 10_000


def _training_batches(data: _Data, batch_size: int, first: int, epochs: int) -> tf.data.Dataset:
    """The training batches of epochs `first` .. `epochs - 1`, one epoch after the other.

    Epoch `e` is shuffled and augmented with op seeds `2e` and `2e + 1` (combined with the global
    seed `fit` sets), never with a reshuffling iterator's state: that depends on how many epochs
    this process has run, and `BackupAndRestore` checkpoints the model, not the input pipeline.
    So a run resumed at epoch `first` sees the batches an uninterrupted run sees there. The
    epochs are concatenated as a balanced tree (depth log2 of their number)."""
    def epoch(e):
        shuffled = data.raw_train.shuffle(_SHUFFLE_BUFFER, seed=2 * e, reshuffle_each_iteration=False)
        return data.preprocess(shuffled, True, 2 * e + 1).batch(batch_size)

    def span(a, b):
        if b - a == 1:
            return epoch(a)
        middle = (a + b) // 2
        return span(a, middle).concatenate(span(middle, b))

    # A run whose every epoch is saved trains none (fit restores and stops); fit still wants data.
    return span(min(first, epochs - 1), epochs).prefetch(2)


def _check_out(out: str, resume: bool):
    """Refuse an --out that would mix runs, and a --resume with nothing to continue."""
    backup = os.path.join(out, "backup")
    finished = os.path.exists(os.path.join(out, "summary.json"))
    if resume:
        if not os.path.isdir(out) or not os.listdir(out):
            state = "is empty" if os.path.isdir(out) else "does not exist"
            raise ValueError(f"--resume: {out} {state}, so there is no run to continue; leave out --resume to start one.")
        if finished and not os.path.exists(backup):
            raise ValueError(f"{out} holds a finished run (summary.json); there is nothing to resume.")
        if not os.path.isdir(backup):
            raise ValueError(f"--resume: {out} holds no interrupted run (no backup/ folder); leave out --resume to start afresh.")
        return
    if os.path.exists(backup) or finished:
        raise ValueError(f"{out} already holds a run; pass --resume to continue it, or choose another --out.")


def _epochs_saved(out: str) -> int:
    """How many epochs the checkpoint in `out/backup` holds (0 without one)."""
    latest = tf.train.latest_checkpoint(os.path.join(out, "backup", "chief"))
    if latest is None:
        return 0
    # BackupAndRestore stores the index of the epoch it saved beside the model.
    return int(tf.train.load_checkpoint(latest).get_tensor("ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE")) + 1


def _forget_unsaved_epochs(out: str, first: int) -> None:
    """Drop the rows of epochs `first` and later from history.csv: a resumed run trains them again,
    and one may have been logged before its checkpoint failed (the logger comes first)."""
    path = os.path.join(out, "history.csv")
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        lines = f.read().splitlines(keepends=True)

    def kept(line):
        try:
            return int(float(line.split(",", 1)[0])) < first
        except ValueError:  # a row cut short
            return False

    rows = lines[:1] + [line for line in lines[1:] if kept(line)]
    if rows != lines:
        _io.write_text_atomic(path, "".join(rows))


@contextlib.contextmanager
def _removed_on_failure(out: str, keep=lambda: False):
    """Create `out`; if the block fails, remove it again when this call created it and `keep()`
    is false (a folder that existed before, with whatever it holds, is never removed)."""
    created = not os.path.exists(out)
    os.makedirs(out, exist_ok=True)
    try:
        yield
    except BaseException:
        if created and not keep():
            shutil.rmtree(out)
        raise


class TrainingInterrupted(KeyboardInterrupt):
    """`train` was stopped by SIGINT (Ctrl-C, or a `KeyboardInterrupt`) or SIGTERM; the message says
    which checkpoint is kept and how to continue. `signum` is the signal's number."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = int(signum)


class DiskFullError(OSError):
    """A file of the run could not be written: no space left on its device. The message names the
    file and says how to continue; `filename` is the file."""

    def __init__(self, message: str, filename: str | None = None):
        super().__init__(message)
        self.errno, self.filename = errno.ENOSPC, filename

    def __str__(self):
        return self.args[0]


def _no_space(err: BaseException) -> bool:
    """Whether `err` is a full disk: an OSError with ENOSPC, or TensorFlow's (RESOURCE_EXHAUSTED,
    with the system's message)."""
    if isinstance(err, OSError):
        return err.errno == errno.ENOSPC
    return isinstance(err, tf.errors.OpError) and os.strerror(errno.ENOSPC) in str(err)


class _Signals:
    """While `installed()`, SIGINT and SIGTERM raise `TrainingInterrupted` in the main thread (SIGTERM's
    default would end the process on the spot, past the job's clean-up and message). Inside
    `held()` a signal waits until the block has ended: a checkpoint is never cut in half."""

    def __init__(self):
        self._held, self._pending = 0, None

    def _raise(self, signum):
        raise TrainingInterrupted(f"stopped by {signal.Signals(signum).name}", signum)

    def _handle(self, signum, frame):
        if self._held:
            self._pending = signum
        else:
            self._raise(signum)

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield  # handlers can only be set in the main thread
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, signal.SIG_DFL if handler is None else handler)
            self._pending = None

    @contextlib.contextmanager
    def held(self):
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
        if not self._held and self._pending is not None:
            signum, self._pending = self._pending, None
            self._raise(signum)


_SIGNALS = _Signals()


class _Backup(tf.keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` whose checkpoint stays after `fit` (`ship` removes it once every result is
    written), is never cut in half by SIGINT/SIGTERM, and whose failed write leaves the previous
    checkpoint as it was: the files of the unfinished one are removed, and a full disk raises
    `DiskFullError` naming the checkpoint."""

    def __init__(self, backup_dir: str):
        super().__init__(backup_dir, delete_checkpoint=False)

    def _backup(self, epoch, batch=0):
        folder = os.path.join(self.backup_dir, "chief")
        existed = {d: os.path.isdir(d) for d in (self.backup_dir, folder)}
        before = set(os.listdir(folder)) if existed[folder] else set()
        with _SIGNALS.held():
            try:
                super()._backup(epoch, batch)
            except BaseException as err:
                for d in (folder, self.backup_dir):
                    if not existed[d]:
                        shutil.rmtree(d, ignore_errors=True)
                if existed[folder]:
                    for name in set(os.listdir(folder)) - before:
                        path = os.path.join(folder, name)
                        if os.path.isdir(path):
                            shutil.rmtree(path)
                        else:
                            os.remove(path)
                if _no_space(err):
                    out = os.path.dirname(self.backup_dir)
                    raise _disk_full(out, self.params["epochs"], f"the checkpoint of epoch {epoch + 1} in {folder}", folder) from err
                raise


def _what_is_kept(out: str, epochs: int) -> str:
    """What a failed or stopped run left to continue from, and how."""
    saved = _epochs_saved(out)
    backup = os.path.join(out, "backup")
    if saved >= epochs:
        return (f"training had finished and its checkpoint is kept in {backup}: run the same command with --resume "
                "to write the results from it (no epoch is trained again)")
    if saved:
        return (f"the checkpoint of epoch {saved} is kept in {backup}: run the same command with --resume to "
                f"continue from it")
    gone = "" if os.path.exists(out) else f" ({out} was removed)"
    return f"no epoch was saved yet, so there is nothing to resume{gone}: start again"


def _disk_full(out: str, epochs: int, what: str, filename: str | None) -> DiskFullError:
    return DiskFullError(
        f"disk full (no space left on the device) while writing {what}; nothing partial was left and the files "
        f"written before it are intact. Free some space; {_what_is_kept(out, epochs)}.", filename,
    )


@contextlib.contextmanager
def _faults(run):
    """Run the stages with SIGINT/SIGTERM stopping them cleanly, `run.out` removed when it was
    created and no epoch was saved, and an interruption or a full disk told in one line that says
    what is kept (`TrainingInterrupted`, `DiskFullError`)."""
    try:
        with _SIGNALS.installed(), _removed_on_failure(run.out, keep=lambda: _epochs_saved(run.out) > 0):
            yield
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", signal.SIGINT)
        name = signal.Signals(signum).name + (" (Ctrl-C)" if signum == signal.SIGINT else "")
        saved = _epochs_saved(run.out)
        when = f"in epoch {saved + 1} of {run.epochs}" if saved < run.epochs else "while writing the results"
        raise TrainingInterrupted(f"stopped by {name} {when}; {_what_is_kept(run.out, run.epochs)}.", signum) from err
    except (OSError, tf.errors.OpError) as err:
        if not _no_space(err) or isinstance(err, DiskFullError):
            raise
        filename = err.filename if isinstance(err, OSError) else None
        raise _disk_full(run.out, run.epochs, filename or f"a file in {run.out}", filename) from err


def _start_line(run) -> str:
    """What is about to run, in one paragraph, before anything slow happens."""
    data = run.data
    h, w, c = data.input_shape
    skipped = f" ({data.skipped_images} unreadable image(s) skipped)" if data.skipped_images else ""
    lines = [
        f"tfbin train: {run.model} + {run.recipe.name}, {run.epochs} epoch{'s' * (run.epochs != 1)}, batch {run.batch_size}, "
        f"Adam {run.lr:g}{' cosine-decayed to 0' if run.lr_decay == 'cosine' else ''}, seed {run.seed}",
        f"  data    {data.description}: {data.train_images:,} training and {data.test_images:,} test images{skipped}",
        f"  input   {h}x{w}x{c} ({data.shape_source})",
    ]
    if data.normalization:
        augmented = f"training images: {data.augmentation.split(' (')[0]}; " if data.augmentation else "no augmentation; "
        lines.append(f"  prep    {augmented}every image: (x - mean) / std per channel")
    lines.append(f"  output  {run.out}{' (resuming)' if run.resume else ''}")
    return "\n".join(lines)


@dataclasses.dataclass
class Run:
    """What `prepare` decided: every argument checked, the recipe made, the data loaded; nothing written."""

    model: str
    recipe: recipes_lib.Recipe
    data: _Data
    dataset: str | None
    data_dir: str | None
    epochs: int
    batch_size: int
    lr: float
    lr_decay: str
    seed: int
    out: str
    resume: bool


@dataclasses.dataclass
class Fitted:
    """What `fit` hands to `ship`: the trained, deployable model (auxiliary-loss heads unwrapped)."""

    model: tf.keras.Model
    train_seconds: float
    start: float


def prepare(
    model: str = "fmnist_small",
    recipe: str = "irnet",
    dataset: str | None = "fashion_mnist",
    data_dir: str | None = None,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float | None = None,
    lr_decay: str | None = None,
    seed: int = 0,
    out: str = "run",
    resume: bool = False,
    input_shape=None,
    train_samples: int | None = None,
    test_samples: int | None = None,
    skip_bad_images: bool = False,
    augment: bool = True,
) -> Run:
    """`train`'s first stage: check every argument, make the recipe, load the data (every image of
    `data_dir` decoded once) and check `out`; nothing is written."""
    if epochs < 1 or batch_size < 1 or not (lr is None or lr > 0):
        raise ValueError(f"Need epochs >= 1, batch_size >= 1 and lr > 0; got {epochs}, {batch_size}, {lr}.")
    recipe_obj = recipes_lib.load(recipe, epochs)
    lr, lr_decay = regimen.optimizer_settings(recipe_obj, lr, lr_decay)
    if model not in models.available():
        raise ValueError(f"Unknown model {model!r}; the models are {models.available()}.")
    _check_out(out, resume)
    data = _load_data(model, dataset, data_dir, input_shape, seed, train_samples, test_samples, skip_bad_images, augment)
    return Run(model, recipe_obj, data, dataset if data_dir is None else None, data_dir, epochs, batch_size, lr,
               lr_decay, seed, out, resume)


def fit(run: Run, callbacks=(), verbose: int = 1) -> Fitted:
    """`train`'s second stage: build and compile the model, then train it, continuing from the
    checkpoint in `run.out/backup` if there is one (it stays there for `ship` to remove)."""
    start = time.time()
    tf.keras.utils.set_random_seed(run.seed)
    data, out = run.data, run.out
    binarized = models.build(run.model, run.recipe, input_shape=data.input_shape, num_classes=len(data.class_names))
    keras_model = binarized.model
    steps_per_epoch = math.ceil(data.train_images / run.batch_size)
    keras_model.compile(
        optimizer=regimen.adam(run.lr, run.lr_decay, steps_per_epoch * run.epochs),
        loss="sparse_categorical_crossentropy", metrics=["accuracy"],
    )
    os.makedirs(out, exist_ok=True)
    _io.write_text_atomic(os.path.join(out, "recipe.json"), run.recipe.to_json() + "\n")
    first = _epochs_saved(out)
    if run.resume:
        _forget_unsaved_epochs(out, first)
    test_batches = data.test.batch(512).prefetch(2)
    monitor = BinarizationMonitor(test_batches)
    fit_callbacks = [
        *binarized.callbacks,
        monitor,
        _SaveActivations(monitor, os.path.join(out, "activations.npz")),
        tf.keras.callbacks.CSVLogger(os.path.join(out, "history.csv"), append=run.resume),
        tf.keras.callbacks.TensorBoard(os.path.join(out, "tensorboard")),
        StopOnNonFinite(os.path.join(out, "backup") + " (continue with --resume)"),
        # Last: it saves after every other callback has updated its state for the epoch.
        _Backup(os.path.join(out, "backup")),
        *callbacks,
    ]
    fit_start = time.time()
    # No validation_data for fit: the monitor's soft pass is the same evaluation (plus the hard
    # one), and a third pass over the test set would cost as much again.
    keras_model.fit(_training_batches(data, run.batch_size, first, run.epochs), epochs=run.epochs,
                    steps_per_epoch=steps_per_epoch, callbacks=fit_callbacks, verbose=verbose)
    return Fitted(unwrap(keras_model), time.time() - fit_start, start)


def _input_description(data: _Data) -> str:
    """How an app must feed the exported model (the report's `normalization`)."""
    h, w, c = data.input_shape
    if not data.normalization:
        return f"float32 {h}x{w}x{c} in [0, 1]"
    mean, std = (", ".join(f"{v:g}" for v in data.normalization[k]) for k in ("mean", "std"))
    return (f"float32 {h}x{w}x{c}: RGB in [0, 1], then (x - mean) / std per channel with mean ({mean}) and std ({std})"
            + ("" if (h, w, c) == (32, 32, 3) else f", then adapted to {h}x{w}x{c} (tfbin.data.adapt)"))


def ship(run: Run, fitted: Fitted, print_fn=None) -> dict:
    """`train`'s last stage: recalibrate, save, evaluate, export and verify, write summary.json and
    the pictures, then remove the checkpoint (the run is complete). Prints the table with
    `print_fn`; returns the summary."""
    out, data, deployed = run.out, run.data, fitted.model
    # BN statistics were averaged over training, largely on soft activations: re-estimate them
    # on the deployed (hard) form where that helps (tfbin.recalibrate).
    recalibration = regimen.recalibrate_if_it_helps(deployed, data.train.batch(run.batch_size))
    _io.save_model_atomic(deployed, os.path.join(out, "model.keras"))

    history = plots.read_history(out)
    _io.write_text_atomic(os.path.join(out, "history.json"), json.dumps(history, indent=1) + "\n")
    # The monitor evaluated the final weights on the whole test set after the last epoch.
    soft, hard_before = history["val_soft_accuracy"][-1], history["val_hard_accuracy"][-1]

    # Test images preprocessed as in evaluation: the parity check feeds what the model saw.
    x_sample = np.concatenate([x.numpy() for x, _ in data.test.batch(500).take(2)])
    tflite_path = os.path.join(out, "model.tflite")
    # The full verification (float-twin size, host latency): the run's record, a small share of its time.
    export_report = export.convert(
        deployed, tflite_path, verify="full", sample_inputs=x_sample, labels=data.class_names,
        normalization=_input_description(data), report_path=os.path.join(out, "model.report.json"),
    )
    with open(tflite_path, "rb") as f:
        scored = export.tflite_accuracy(f.read(), data.test, deployed, 512)
        tflite_accuracy, agreement, hard_accuracy = scored["tflite_accuracy"], scored["agreement"], scored["keras_accuracy"]
    binary_layers = sum(r["lce_op"] == "LceBconv2d" for r in export_report.layers)
    summary = {
        "model": run.model,
        "recipe": run.recipe.name,
        "recipe_params": run.recipe.params,
        "data": data.description,
        "dataset": run.dataset,
        "data_dir": run.data_dir,
        "data_source": data.source,
        "train_images": data.train_images,
        "test_images": data.test_images,
        "skipped_images": data.skipped_images,
        "input_shape": list(data.input_shape),
        "input_shape_source": data.shape_source,
        "augmentation": data.augmentation,
        "normalization": data.normalization,
        "epochs": run.epochs,
        "batch_size": run.batch_size,
        "lr": run.lr,
        "lr_decay": run.lr_decay,
        "seed": run.seed,
        "soft_accuracy": round(soft, 4),
        "hard_accuracy": round(hard_accuracy, 4),
        "hard_accuracy_before_recalibration": round(hard_before, 4),
        "recalibration": recalibration,
        "tflite_accuracy": round(tflite_accuracy, 4),
        "tflite_keras_agreement": round(agreement, 4),
        "tflite_bytes": export_report.size_bytes,
        "float_tflite_bytes": export_report.float_size_bytes,
        "one_bit_limit_bytes": export_report.one_bit_limit_bytes,
        "binarized_layers_as_lce_bconv": f"{binary_layers}/{len(export_report.layers)}",
        "train_seconds": round(fitted.train_seconds, 1),
        "total_seconds": round(time.time() - fitted.start, 1),
    }
    _io.write_text_atomic(os.path.join(out, "summary.json"), json.dumps(summary, indent=2) + "\n")
    pictures = plots.draw(out)
    shutil.rmtree(os.path.join(out, "backup"), ignore_errors=True)
    if print_fn is not None:
        print_fn(format_summary(summary, out, pictures))
    return summary


def train(*, callbacks=(), verbose: int = 1, print_fn=print, **settings) -> dict:
    """Train `model` with `recipe`, then evaluate, save, draw, export and verify; see the module doc.

    `settings` are `prepare`'s keyword arguments (`model`, `recipe`, `dataset`, ...; its defaults).
    Returns the summary (also in `out/summary.json`): soft, hard and TFLite test accuracy, the
    `.tflite`'s size against float TFLite and the 1-bit limit, Keras–TFLite parity, timings.
    `callbacks` are added to `fit`'s (e.g. to stop early). With `resume=True` an interrupted run in
    `out` continues at the epoch it reached, with the same schedules and optimizer state.
    `train_samples`/`test_samples` (>= 1, None for all) take the first images of each split;
    `skip_bad_images` trains without the unreadable files of `data_dir` instead of refusing.
    `dataset="cifar10"` runs the papers' CIFAR pipeline (`tfbin.data.cifar_preprocess`): training
    images padded by 4 pixels, randomly cropped and flipped (`augment=False`: not), every image
    normalized per channel; the test images, the monitor's and the export's samples are
    normalized the same way, and summary.json records it with the data's source.
    `recipe` is a `tfbin.recipes` name, a `Recipe`, or the path of a recipe JSON file (e.g.
    `tfbin tune`'s `best_recipe.json`), made again for `epochs` (`tfbin.recipes.load`). `lr`
    (Adam): default the recipe's searched `params["training"]["lr"]` if it has one, else 1e-3;
    `lr_decay` (`"constant"` or `"cosine"` to 0 over the run, `tfbin.regimen.learning_rate`):
    default the recipe's searched one, else constant (`tfbin.regimen.optimizer_settings`).

    Everything is checked (names, data, every image of `data_dir`, `out`) before `out` is created,
    and an `out` this call created is removed again when the run fails before its first epoch
    is saved: a failed start leaves nothing behind. SIGINT and SIGTERM stop the run with
    `TrainingInterrupted`, a full disk with `DiskFullError`; both say what is kept.
    """
    run = prepare(**settings)
    if print_fn is not None:
        print_fn(_start_line(run))
    with _faults(run):
        return ship(run, fit(run, callbacks, verbose), print_fn)


def format_summary(summary: dict, out: str, pictures=()) -> str:
    size = summary["tflite_bytes"]
    lines = [
        "",
        f"  {summary['model']} + {summary['recipe']} on {summary['data']}, {summary['epochs']} epoch{'s' * (summary['epochs'] != 1)}",
        "  | soft acc | hard acc | TFLite acc | TFLite/Keras agreement | .tflite | vs float TFLite | vs 1-bit limit | binary layers |",
        "  |---|---|---|---|---|---|---|---|",
        f"  | {summary['soft_accuracy']:.4f} | {summary['hard_accuracy']:.4f} | {summary['tflite_accuracy']:.4f} "
        f"| {summary['tflite_keras_agreement']:.4f} | {size:,} B | {summary['float_tflite_bytes'] / size:.1f}x smaller "
        f"| {size / summary['one_bit_limit_bytes']:.2f}x | {summary['binarized_layers_as_lce_bconv']} |",
        "",
        f"  model       {os.path.join(out, 'model.keras')}",
        f"  tflite      {os.path.join(out, 'model.tflite')}",
        f"  report      {os.path.join(out, 'model.report.md')}",
        f"  pictures    {', '.join(os.path.join(out, p) for p in pictures)}",
        f"  tensorboard tensorboard --logdir {os.path.join(out, 'tensorboard')}",
    ]
    return "\n".join(lines)
