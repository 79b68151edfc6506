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
| `backup/` | `BackupAndRestore` state while a run is unfinished (`resume=True` continues it) |
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import time

import numpy as np
import tensorflow as tf

from tfbin import _io, export, models
from tfbin import data as data_lib
from tfbin import recipes as recipes_lib
from tfbin.recipes import LR_DECAYS, learning_rate
from tfbin.data import FolderScan, adapt, load_folder, scan_folder
from tfbin.batchnorm import _batch_norms, recalibrate
from tfbin.callbacks import BinarizationMonitor, StopOnNonFinite
from tfbin.mode import hard
from tfbin.auxiliary import unwrap
from tfbin.jobs import plots

__all__ = ["train", "format_summary"]

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
    """The datasets of a run and what the start line and summary.json say about them."""

    train: tf.data.Dataset
    test: tf.data.Dataset
    class_names: list
    description: str
    input_shape: tuple
    shape_source: str
    train_images: int
    test_images: int
    skipped_images: int = 0


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


def _builtin_data(model, dataset, input_shape, train_samples, test_samples) -> _Data:
    if dataset not in data_lib.available():
        raise ValueError(f"Unknown dataset {dataset!r}; the built-in datasets are {data_lib.available()} (or use --data-dir).")
    shape, source = _input_shape(model, input_shape, None)
    # TFDS caches small datasets in memory; slicing the split (rather than `take` on the whole
    # of it) cuts before that cache, so every pass reads the cache to its end.
    train_ds = data_lib.load(dataset, f"train[:{train_samples}]" if train_samples else "train")
    test_ds = data_lib.load(dataset, f"test[:{test_samples}]" if test_samples else "test")
    class_names = data_lib.info(dataset).features["label"].names
    return _Data(adapt(train_ds, shape), adapt(test_ds, shape), list(class_names), dataset, shape, source,
                 _count(train_ds), _count(test_ds))


def _load_data(model, dataset, data_dir, input_shape, seed, train_samples, test_samples, skip_bad_images) -> _Data:
    """The run's datasets, checked (names, folder, every image) before anything is written."""
    if (dataset is None) == (data_dir is None):
        raise ValueError("Give exactly one of dataset (a built-in name) or data_dir (a folder of class sub-folders).")
    for name, value in (("train_samples", train_samples), ("test_samples", test_samples)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1 (or None for all), got {value}.")
    if data_dir is not None:
        return _folder_data(model, data_dir, input_shape, seed, train_samples, test_samples, skip_bad_images)
    return _builtin_data(model, dataset, input_shape, train_samples, test_samples)


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


def _saved_an_epoch(out: str) -> bool:
    """Whether `BackupAndRestore` saved state in `out`: then a failed run can be resumed."""
    backup = os.path.join(out, "backup")
    return os.path.isdir(backup) and bool(os.listdir(backup))


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


def _start_line(model, recipe, data: _Data, epochs, batch_size, lr, lr_decay, seed, out, resume) -> str:
    """What is about to run, in one paragraph, before anything slow happens."""
    h, w, c = data.input_shape
    skipped = f" ({data.skipped_images} unreadable image(s) skipped)" if data.skipped_images else ""
    return "\n".join([
        f"tfbin train: {model} + {recipe.name}, {epochs} epoch{'s' * (epochs != 1)}, batch {batch_size}, "
        f"Adam {lr:g}{' cosine-decayed to 0' if lr_decay == 'cosine' else ''}, seed {seed}",
        f"  data    {data.description}: {data.train_images:,} training and {data.test_images:,} test images{skipped}",
        f"  input   {h}x{w}x{c} ({data.shape_source})",
        f"  output  {out}{' (resuming)' if resume else ''}",
    ])


def _recalibrate_if_it_helps(model, train_ds, batch_size, steps=100, check_images=2000) -> dict:
    """`tfbin.recalibrate` the deployed model's BatchNorm statistics on `steps` training batches,
    kept when the hard accuracy on `check_images` training images does not drop (the test set is
    not consulted: it scores the result once)."""
    if not _batch_norms(model):
        return {"applied": False, "reason": "no BatchNormalization"}
    return recalibrate(model, train_ds.batch(batch_size), steps=steps, check=train_ds.take(check_images).batch(512))


def _comparable(config):
    """A recipe config without the instance names Keras gives its quantizers (`ede_sign_1`)."""
    if isinstance(config, (list, tuple)):
        return [_comparable(v) for v in config]
    if not isinstance(config, dict):
        return config
    plain = {k: _comparable(v) for k, v in config.items()}
    if "class_name" in config and isinstance(plain.get("config"), dict):
        plain["config"].pop("name", None)
    return plain


def _recipe(recipe, epochs) -> recipes_lib.Recipe:
    """A name, a `Recipe` or a recipe JSON file, with its schedules spanning `epochs`."""
    if isinstance(recipe, str) and recipe.endswith(".json"):
        path = recipe
        try:
            with open(recipe) as f:
                text = f.read()
        except OSError as err:
            raise ValueError(f"--recipe {recipe}: cannot read the recipe file ({err.strerror}).") from None
        try:
            recipe = recipes_lib.Recipe.from_json(text)
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"--recipe {recipe}: not a tfbin recipe JSON file (e.g. tfbin tune's best_recipe.json): {err}") from None
        spans = recipe.params.get("epochs")
        if spans is None or spans == epochs:
            return recipe  # used as written
        try:
            as_made = recipes_lib.rebuild(recipe, epochs=spans)
        except ValueError as err:
            raise ValueError(f"--recipe {path}: its schedules span {spans} epochs and it cannot be rebuilt for {epochs} ({err}); pass --epochs {spans}.") from None
        if _comparable(as_made.get_config()) != _comparable(recipe.get_config()):
            raise ValueError(
                f"--recipe {path}: the file differs from what its factory makes of its params (edited by hand?), so it "
                f"cannot be rebuilt for {epochs} epochs; edit its params instead, or pass --epochs {spans}."
            )
        return recipes_lib.rebuild(recipe, epochs=epochs)
    return recipes_lib.get(recipe, epochs=epochs) if isinstance(recipe, str) else recipes_lib.get(recipe)


def train(
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
    callbacks=(),
    verbose: int = 1,
    print_fn=print,
) -> dict:
    """Train `model` with `recipe`, then evaluate, save, draw, export and verify; see the module doc.

    Returns the summary (also in `out/summary.json`): soft, hard and TFLite test accuracy, the
    `.tflite`'s size against float TFLite and the 1-bit limit, Keras–TFLite parity, timings.
    `callbacks` are added to `fit`'s (e.g. to stop early). With `resume=True` an interrupted run in
    `out` continues at the epoch it reached, with the same schedules and optimizer state.
    `train_samples`/`test_samples` (>= 1, None for all) take the first images of each split;
    `skip_bad_images` trains without the unreadable files of `data_dir` instead of refusing.
    `recipe` is a `tfbin.recipes` name, a `Recipe`, or the path of a recipe JSON file (e.g.
    `tfbin tune`'s `best_recipe.json`), made again for `epochs` (`tfbin.recipes.rebuild`). `lr`
    (Adam): default the recipe's searched `params["training"]["lr"]` if it has one, else 1e-3;
    `lr_decay` (`"constant"` or `"cosine"` to 0 over the run, `tfbin.recipes.learning_rate`):
    default the recipe's searched one, else constant.

    Everything is checked (names, data, every image of `data_dir`, `out`) before `out` is created,
    and an `out` this call created is removed again when the run fails before its first epoch
    is saved: a failed start leaves nothing behind.
    """
    if epochs < 1 or batch_size < 1 or not (lr is None or lr > 0):
        raise ValueError(f"Need epochs >= 1, batch_size >= 1 and lr > 0; got {epochs}, {batch_size}, {lr}.")
    recipe_obj = _recipe(recipe, epochs)
    searched = recipe_obj.params.get("training", {})
    if lr is None:
        lr = float(searched.get("lr", 1e-3))
    if lr_decay is None:
        lr_decay = str(searched.get("lr_decay", "constant"))
    if lr_decay not in LR_DECAYS:
        raise ValueError(f"Unknown lr_decay {lr_decay!r}; choose one of {list(LR_DECAYS)}.")
    if model not in models.available():
        raise ValueError(f"Unknown model {model!r}; the models are {models.available()}.")
    _check_out(out, resume)
    data = _load_data(model, dataset, data_dir, input_shape, seed, train_samples, test_samples, skip_bad_images)
    if print_fn is not None:
        print_fn(_start_line(model, recipe_obj, data, epochs, batch_size, lr, lr_decay, seed, out, resume))
    tf.keras.utils.set_random_seed(seed)
    start = time.time()
    train_ds, test_ds, class_names, shape = data.train, data.test, data.class_names, data.input_shape
    binarized = models.build(model, recipe_obj, input_shape=shape, num_classes=len(class_names))
    keras_model = binarized.model
    steps = math.ceil(data.train_images / batch_size) * epochs
    keras_model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate(lr, lr_decay, steps)), loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )

    with _removed_on_failure(out, keep=lambda: _saved_an_epoch(out)):
        _io.write_text_atomic(os.path.join(out, "recipe.json"), recipe_obj.to_json() + "\n")
        train_batches = train_ds.shuffle(10_000, seed=seed).batch(batch_size).prefetch(2)
        test_batches = test_ds.batch(512).prefetch(2)
        monitor = BinarizationMonitor(test_batches)
        fit_callbacks = [
            *binarized.callbacks,
            monitor,
            _SaveActivations(monitor, os.path.join(out, "activations.npz")),
            tf.keras.callbacks.CSVLogger(os.path.join(out, "history.csv"), append=resume),
            tf.keras.callbacks.TensorBoard(os.path.join(out, "tensorboard")),
            StopOnNonFinite(os.path.join(out, "backup") + " (continue with --resume)"),
            # Last: it saves after every other callback has updated its state for the epoch.
            tf.keras.callbacks.BackupAndRestore(os.path.join(out, "backup")),
            *callbacks,
        ]
        fit_start = time.time()
        # No validation_data for fit: the monitor's soft pass is the same evaluation (plus the hard
        # one), and a third pass over the test set would cost as much again.
        keras_model.fit(train_batches, epochs=epochs, callbacks=fit_callbacks, verbose=verbose)
    train_seconds = time.time() - fit_start
    backup = os.path.join(out, "backup")
    if os.path.isdir(backup) and not os.listdir(backup):  # BackupAndRestore empties it on success
        os.rmdir(backup)

    deployed = unwrap(keras_model)
    # BN statistics were averaged over training, largely on soft activations: re-estimate them
    # on the deployed (hard) form where that helps (tfbin.recalibrate).
    recalibration = _recalibrate_if_it_helps(deployed, train_ds, batch_size)
    model_path = os.path.join(out, "model.keras")
    _io.save_model_atomic(deployed, model_path)

    history = plots.read_history(out)
    _io.write_text_atomic(os.path.join(out, "history.json"), json.dumps(history, indent=1) + "\n")
    # The monitor evaluated the final weights on the whole test set after the last epoch.
    soft, hard_before = history["val_soft_accuracy"][-1], history["val_hard_accuracy"][-1]

    x_sample = np.concatenate([x.numpy() for x, _ in test_ds.batch(500).take(2)])
    tflite_path = os.path.join(out, "model.tflite")
    export_report = export.convert(
        deployed, tflite_path, sample_inputs=x_sample, labels=class_names,
        normalization=f"float32 {shape[0]}x{shape[1]}x{shape[2]} in [0, 1]",
        report_path=os.path.join(out, "model.report.json"),
    )
    with open(tflite_path, "rb") as f:
        scored = export.tflite_accuracy(f.read(), test_ds, deployed, 512)
        tflite_accuracy, agreement, hard_accuracy = scored["tflite_accuracy"], scored["agreement"], scored["keras_accuracy"]
    binary_layers = sum(r["lce_op"] == "LceBconv2d" for r in export_report.layers)
    summary = {
        "model": model,
        "recipe": recipe_obj.name,
        "recipe_params": recipe_obj.params,
        "data": data.description,
        "dataset": dataset if data_dir is None else None,
        "data_dir": data_dir,
        "train_images": data.train_images,
        "test_images": data.test_images,
        "skipped_images": data.skipped_images,
        "input_shape": list(shape),
        "input_shape_source": data.shape_source,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "lr_decay": lr_decay,
        "seed": seed,
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
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - start, 1),
    }
    _io.write_text_atomic(os.path.join(out, "summary.json"), json.dumps(summary, indent=2) + "\n")
    pictures = plots.draw(out)
    if print_fn is not None:
        print_fn(format_summary(summary, out, pictures))
    return summary


def format_summary(summary: dict, out: str, pictures=()) -> str:
    size = summary["tflite_bytes"]
    lines = [
        "",
        f"  {summary['model']} + {summary['recipe']} on {summary['data']}, {summary['epochs']} epochs",
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
