"""The main job in one call: train a binarized model, look at it, export it, verify the `.tflite`.

```python
from tfbin.train import train
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
| `*.png` | pictures (`tfbin.report`); `tfbin report DIR` redraws them |
| `tensorboard/` | TensorBoard logs |
| `backup/` | `BackupAndRestore` state while a run is unfinished (`resume=True` continues it) |
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
import tensorflow as tf

from tfbin import _io, export, models, report
from tfbin import data as data_lib
from tfbin import recipes as recipes_lib
from tfbin.data import adapt
from tfbin.batchnorm import recalibrate
from tfbin.callbacks import BinarizationMonitor, StopOnNonFinite
from tfbin.mode import hard
from tfbin.training import unwrap

__all__ = ["train", "load_folder"]

RESULT_FILES = ("model.keras", "model.tflite", "model.report.json", "recipe.json", "history.csv", "history.json", "summary.json")


def load_folder(path: str, input_shape, seed: int = 0, validation_fraction: float = 0.2):
    """`(train, validation, class_names)` from a folder of class sub-folders of images, in [0, 1]."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--data-dir {path}: no such directory (it needs one sub-folder of images per class).")
    height, width, channels = (int(d) for d in input_shape)
    splits = tf.keras.utils.image_dataset_from_directory(
        path, labels="inferred", label_mode="int", color_mode="grayscale" if channels == 1 else "rgb",
        image_size=(height, width), batch_size=None, shuffle=True, seed=seed,
        validation_split=validation_fraction, subset="both",
    )
    class_names = splits[0].class_names
    if len(class_names) < 2:
        raise ValueError(f"--data-dir {path}: found {len(class_names)} class folder(s); a classifier needs at least 2.")
    scale = lambda x, y: (x / 255.0, tf.cast(y, tf.int64))  # noqa: E731
    return splits[0].map(scale), splits[1].map(scale), class_names


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


def _datasets(dataset, data_dir, input_shape, seed, train_samples, test_samples):
    if (dataset is None) == (data_dir is None):
        raise ValueError("Give exactly one of dataset (a built-in name) or data_dir (a folder of class sub-folders).")
    if data_dir is not None:
        train_ds, test_ds, class_names = load_folder(data_dir, input_shape, seed)
        description = f"folder {data_dir}"
    else:
        if dataset not in data_lib.available():
            raise ValueError(f"Unknown dataset {dataset!r}; the built-in datasets are {data_lib.available()} (or use --data-dir).")
        train_ds, test_ds = data_lib.load(dataset, "train"), data_lib.load(dataset, "test")
        class_names = data_lib.info(dataset).features["label"].names
        description = dataset
    if train_samples:
        train_ds = train_ds.take(train_samples)
    if test_samples:
        test_ds = test_ds.take(test_samples)
    return adapt(train_ds, input_shape), adapt(test_ds, input_shape), list(class_names), description


def _check_out(out: str, resume: bool):
    backup = os.path.join(out, "backup")
    finished = os.path.exists(os.path.join(out, "summary.json"))
    if resume:
        if finished and not os.path.exists(backup):
            raise ValueError(f"{out} holds a finished run (summary.json); there is nothing to resume.")
        return
    if os.path.exists(backup) or finished:
        raise ValueError(f"{out} already holds a run; pass --resume to continue it, or choose another --out.")


def _hard_accuracy(model, batches) -> float:
    """Accuracy of the hard (deployed) form of `model` on `(x, y)` batches."""
    correct = total = 0
    with hard(model):
        for x, y in batches:
            correct += int((model.predict_on_batch(x).argmax(-1) == y.numpy()).sum())
            total += len(y)
    return correct / total


def _recalibrate_if_it_helps(model, train_ds, batch_size, steps=100, check_images=2000) -> dict:
    """`tfbin.recalibrate` the deployed model's BatchNorm statistics on `steps` training batches
    and keep them when the hard accuracy on `check_images` training images does not drop (the
    test set is not consulted: it scores the result once)."""
    norms = [l for l in model.submodules if isinstance(l, tf.keras.layers.BatchNormalization)]
    if not norms:
        return {"applied": False, "reason": "no BatchNormalization"}
    check = train_ds.take(check_images).batch(512)
    saved = [(bn.moving_mean.numpy(), bn.moving_variance.numpy()) for bn in norms]
    before = _hard_accuracy(model, check)
    recalibrate(model, train_ds.batch(batch_size), steps=steps)
    after = _hard_accuracy(model, check)
    if after < before:
        for bn, (mean, variance) in zip(norms, saved):
            bn.moving_mean.assign(mean)
            bn.moving_variance.assign(variance)
    return {"applied": after >= before, "steps": steps, "check_images": check_images,
            "train_hard_accuracy_before": round(before, 4), "train_hard_accuracy_after": round(after, 4)}


def _tflite_accuracy(flatbuffer: bytes, test_ds, keras_model, batch_size):
    """Accuracy of the `.tflite` on the whole test set (LCE interpreter), its argmax agreement
    with the hard Keras model on the same images, and the hard Keras model's accuracy."""
    import larq_compute_engine as lce

    interpreter = lce.testing.Interpreter(flatbuffer, num_threads=2, use_reference_bconv=False)
    correct, agree, keras_correct, total = 0, 0, 0, 0
    with hard(keras_model):
        for x, y in test_ds.batch(batch_size):
            x = x.numpy()
            lite = np.asarray(interpreter.predict(x)).reshape(len(x), -1).argmax(-1)
            keras = keras_model.predict_on_batch(x).argmax(-1)
            correct += int((lite == y.numpy()).sum())
            agree += int((lite == keras).sum())
            keras_correct += int((keras == y.numpy()).sum())
            total += len(x)
    return correct / total, agree / total, keras_correct / total


def train(
    model: str = "fmnist_small",
    recipe: str = "irnet",
    dataset: str | None = "fashion_mnist",
    data_dir: str | None = None,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    out: str = "run",
    resume: bool = False,
    input_shape=None,
    train_samples: int | None = None,
    test_samples: int | None = None,
    callbacks=(),
    verbose: int = 1,
    print_fn=print,
) -> dict:
    """Train `model` with `recipe`, then evaluate, save, draw, export and verify; see the module doc.

    Returns the summary (also in `out/summary.json`): soft, hard and TFLite test accuracy, the
    `.tflite`'s size against float TFLite and the 1-bit limit, Keras–TFLite parity, timings.
    `callbacks` are added to `fit`'s (e.g. to stop early). With `resume=True` an interrupted run in
    `out` continues at the epoch it reached, with the same schedules and optimizer state.
    """
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"Need epochs >= 1, batch_size >= 1 and lr > 0; got {epochs}, {batch_size}, {lr}.")
    if model not in models.available():
        raise ValueError(f"Unknown model {model!r}; the models are {models.available()}.")
    _check_out(out, resume)
    os.makedirs(out, exist_ok=True)
    tf.keras.utils.set_random_seed(seed)
    start = time.time()

    recipe_obj = recipes_lib.get(recipe, epochs=epochs) if isinstance(recipe, str) else recipes_lib.get(recipe)
    shape = tuple(input_shape) if input_shape else None
    if shape is None:
        if data_dir is not None:
            shape = (32, 32, 3)
        else:
            shape = models.default_input_shape(model)
    train_ds, test_ds, class_names, description = _datasets(dataset, data_dir, shape, seed, train_samples, test_samples)
    binarized = models.build(model, recipe_obj, input_shape=shape, num_classes=len(class_names))
    keras_model = binarized.model
    keras_model.compile(
        optimizer=tf.keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
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

    history = report.read_history(out)
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
        tflite_accuracy, agreement, hard_accuracy = _tflite_accuracy(f.read(), test_ds, deployed, 512)
    binary_layers = sum(r["lce_op"] == "LceBconv2d" for r in export_report.layers)
    summary = {
        "model": model,
        "recipe": recipe_obj.name,
        "recipe_params": recipe_obj.params,
        "data": description,
        "input_shape": list(shape),
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "soft_accuracy": round(soft, 4),
        "hard_accuracy": round(hard_accuracy, 4),
        "hard_accuracy_before_recalibration": round(hard_before, 4),
        "recalibration": recalibration,
        "tflite_accuracy": round(tflite_accuracy, 4),
        "tflite_keras_agreement": round(agreement, 4),
        "test_images": sum(1 for _ in test_ds),
        "tflite_bytes": export_report.size_bytes,
        "float_tflite_bytes": export_report.float_size_bytes,
        "one_bit_limit_bytes": export_report.one_bit_limit_bytes,
        "binarized_layers_as_lce_bconv": f"{binary_layers}/{len(export_report.layers)}",
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - start, 1),
    }
    _io.write_text_atomic(os.path.join(out, "summary.json"), json.dumps(summary, indent=2) + "\n")
    pictures = report.draw(out)
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
