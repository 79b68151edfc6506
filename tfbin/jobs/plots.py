"""Pictures of a training run (matplotlib, PNG), drawn from the files `tfbin train` writes.

`draw(out)` (and `tfbin report DIR`) reads `history.csv`, `recipe.json` and `activations.npz`
and writes:

- `curves.png`: training accuracy and soft / hard validation accuracy, and the losses;
- `sharpness.png`: each sharpening schedule of the recipe over training, with the logged values;
- `activations.png`: per binarized layer, the histogram of its latent input activations and of
  their quantized training form, one line per epoch (dark to light): how activations move from
  real values to two spikes (the training dynamics the ABR paper studies);
- `saturation.png`: per-layer fraction of saturated activations, and the weight sign flip ratio.

`trials(rows, path)` draws `tfbin tune`'s `trials.png`: the objective against each searched
hyperparameter, one point per trial (larger: trained on more data), the chosen trial marked.
"""
from __future__ import annotations

import csv
import io
import math
import os

import numpy as np

from tfbin import _io
from tfbin.recipes import Recipe

__all__ = ["read_history", "draw", "trials"]


def read_history(out: str) -> dict:
    """`{column: [value per epoch]}` from `out/history.csv` (Keras's `CSVLogger`)."""
    path = os.path.join(out, "history.csv")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no history; is {out} a `tfbin train` output directory?")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} has no epochs yet.")
    return {key: [float(r[key]) if r.get(key) not in (None, "") else math.nan for r in rows] for key in rows[0]}


def _save(fig, path):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _io.write_bytes_atomic(path, buffer.getvalue())


def _curves(plt, history, title):
    epochs = np.asarray(history["epoch"]) + 1
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in (
        ("accuracy", "train (soft)"),
        ("val_soft_accuracy", "validation, soft"),
        ("val_hard_accuracy", "validation, hard (deployed)"),
    ):
        if key in history:
            acc.plot(epochs, history[key], marker="o", label=label)
    acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    acc.legend()
    for key in [k for k in history if k.endswith("loss")]:
        loss.plot(epochs, history[key], marker="o", label=key)
    loss.set(xlabel="epoch", title="losses")
    loss.legend()
    fig.suptitle(title)
    return fig


def _sharpness(plt, recipe, history, total_epochs):
    fig, axes = plt.subplots(1, len(recipe.schedules), figsize=(4.5 * len(recipe.schedules), 3.4), squeeze=False)
    grid = np.linspace(0, total_epochs, 200)
    for ax, (name, schedule) in zip(axes[0], recipe.schedules.items()):
        ax.plot(grid, [schedule(e) for e in grid], label=f"{type(schedule).__name__} schedule")
        if name in history:
            # Logged at the end of each epoch: the value the epoch's last step used.
            last = np.asarray(history["epoch"]) + (1 if recipe.update_freq == "batch" else 0)
            ax.plot(last, history[name], "o", label="logged")
        ax.set(xlabel="epoch", title=f"sharpness {name}")
        values = [schedule(e) for e in grid]
        if min(values) > 0 and max(values) / min(values) > 50:
            ax.set_yscale("log")
        ax.legend()
    return fig


def _activations(plt, npz):
    keys = [k for k in npz.files if k.startswith("epoch")]
    epochs = sorted({k.split("/")[0] for k in keys})
    names = [str(n) for n in npz["layer_names"]]
    layers = range(len(names))
    fig, axes = plt.subplots(len(layers), 2, figsize=(10, 2.2 * len(layers) + 0.6), squeeze=False)
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(epochs)))
    for row, layer in zip(axes, layers):
        for ax, kind, edges in ((row[0], "latent", npz["latent_bin_edges"]), (row[1], "soft", npz["soft_bin_edges"])):
            centers = (edges[:-1] + edges[1:]) / 2
            for color, epoch in zip(colors, epochs):
                counts = npz[f"{epoch}/{kind}/{layer}"]
                ax.plot(centers, counts / max(counts.sum(), 1), color=color, label=f"epoch {int(epoch[5:]) + 1}")
            ax.set_title(f"{names[layer]}: {'latent input' if kind == 'latent' else 'quantized (training form)'}", fontsize=9)
    axes[0][1].legend(fontsize=7)
    fig.suptitle("activations of the binarized layers across epochs (fraction per bin)")
    fig.tight_layout()
    return fig


def _saturation(plt, history):
    epochs = np.asarray(history["epoch"]) + 1
    fig, (sat, flips) = plt.subplots(1, 2, figsize=(10, 3.4))
    for key in [k for k in history if k.startswith("saturation_")]:
        sat.plot(epochs, history[key], marker="o", label=key[len("saturation_"):])
    if "saturation" in history:
        sat.plot(epochs, history["saturation"], "k--", label="all")
    sat.set(xlabel="epoch", ylabel="fraction", ylim=(-0.02, 1.02), title="saturated activations (|soft − hard| ≤ 1 %)")
    sat.legend(fontsize=7)
    if "flip_ratio" in history:
        flips.plot(epochs, history["flip_ratio"], marker="o")
    flips.set(xlabel="epoch", title="weight sign flip ratio")
    return fig


def draw(out: str) -> list[str]:
    """Draw the pictures of the run in `out`; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = read_history(out)
    recipe = Recipe.from_json(open(os.path.join(out, "recipe.json")).read())
    summary_path = os.path.join(out, "summary.json")
    total_epochs = len(history["epoch"])
    if os.path.exists(summary_path):
        import json

        total_epochs = json.load(open(summary_path))["epochs"]
    figures = {"curves.png": _curves(plt, history, f"recipe {recipe.name}")}
    if recipe.schedules:
        figures["sharpness.png"] = _sharpness(plt, recipe, history, total_epochs)
    activations = os.path.join(out, "activations.npz")
    if os.path.exists(activations):
        with np.load(activations) as npz:
            figures["activations.png"] = _activations(plt, npz)
    figures["saturation.png"] = _saturation(plt, history)
    for name, fig in figures.items():
        _save(fig, os.path.join(out, name))
        plt.close(fig)
    return list(figures)


def trials(rows: list[dict], path: str, log_scale=(), objective: str = "val_hard_accuracy") -> None:
    """Objective against each hyperparameter, one point per finished trial; `rows` are
    `{"values": {...}, "score": float, "data": fraction, "best": bool}`; `log_scale` names the
    hyperparameters searched on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["score"] is not None]
    if not rows:
        raise ValueError("No finished trial to draw.")
    names = list(rows[0]["values"])
    columns = min(3, len(names))
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(
        math.ceil(len(names) / columns), columns, figsize=(4.2 * columns, 3.2 * math.ceil(len(names) / columns)),
        squeeze=False, sharey=True, constrained_layout=True,
    )
    for index, (ax, name) in enumerate(zip(axes.flat, names)):
        categorical = any(isinstance(r["values"][name], (str, bool)) for r in rows)
        labels = sorted({str(r["values"][name]) for r in rows}) if categorical else None
        x = [labels.index(str(r["values"][name])) if categorical else r["values"][name] for r in rows]
        ax.scatter(x, [r["score"] for r in rows], s=[12 + 60 * r.get("data", 1.0) for r in rows], alpha=0.6)
        for xi, r in zip(x, rows):
            if r.get("best"):
                ax.scatter([xi], [r["score"]], marker="*", s=260, color="crimson", label="chosen")
        if categorical:
            ax.set_xticks(range(len(labels)), labels)
        elif name in log_scale:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # the minor labels of a short log range overlap
        ax.set(xlabel=name, ylabel=objective if index % columns == 0 else None)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(loc="lower right")
    fig.suptitle("trials (point size: fraction of the training data; star: the chosen trial)")
    _save(fig, path)
    plt.close(fig)
