"""Training cost of each recipe against larq's `ste_sign` baseline (per-step time, peak memory).

    python bench/training_cost.py [--model fmnist_small|resnet20] [--out ...] [--rounds 7] [--steps 10]

`fmnist_small` at batch 128 on random 28×28×1 inputs (`--model resnet20`: IR-Net's ResNet-20 on
random 32×32×3 inputs, written to `training_cost_resnet20.json`, with its float twin as arm
`float`: ReLU in place of the quantizers, what the paper's float row trains), Adam, the recipe's own callbacks (schedules
per batch where the recipe says so). Timing: one process builds every recipe's model, warms each
up, then runs `--rounds` rounds in which every recipe trains `--steps` steps in turn; a recipe's
per-step figure is the median over all its timed steps, and its ratio is against `ste` of the same
run. Interleaving makes drift of a shared machine hit every recipe alike. Peak memory: a separate
process per recipe (its VmHWM after 5 steps), so recipes do not share an allocator. Budget: 20 min.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# abc: no target (M·N binary convs per layer); larq's other baselines (approx_sign, swish_sign, bireal) and
# the float net (`float`: the architecture with ReLU, no quantizer): measured, no target
RECIPES = ["ste", "approx_sign", "swish_sign", "bireal", "abr", "self_binarizing", "irnet", "dab", "irnet_cmim", "abc", "float"]
# Step-time ratio to `ste` and peak-memory ratio to `ste` each recipe must stay within.
TARGETS = {"abr": 1.10, "self_binarizing": 1.10, "irnet": 1.10, "dab": 1.10, "irnet_cmim": 1.25}
MEMORY_TARGETS = {"abr": 1.10, "self_binarizing": 1.10, "irnet": 1.10, "dab": 1.10, "irnet_cmim": 1.30}

SHAPES = {"fmnist_small": (28, 28, 1), "resnet20": (32, 32, 3)}

MEMORY_WORKER = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[3])
from training_cost import build
import tensorflow as tf
model, callbacks = build(sys.argv[2], sys.argv[1])
model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
rng = np.random.default_rng(0)
x, y = rng.uniform(0, 1, (640, *model.input_shape[1:])).astype("float32"), rng.integers(0, 10, 640)
model.fit(x, y, batch_size=128, epochs=1, callbacks=callbacks, verbose=0)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"peak_rss_mib": hwm / 1024}))
"""


def build(model_name, recipe):
    """The model and callbacks a recipe trains; `float` is the architecture's float twin (ReLU)."""
    import tfbin  # noqa: F401  (before TensorFlow: Keras 2)
    from tfbin import models
    from tfbin.models import small

    if recipe == "float":
        return getattr(small, model_name)(activation="relu"), []
    return models.build(model_name, recipe, epochs=3)


def peak_memory(model_name, recipe):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    worker = [sys.executable, "-c", MEMORY_WORKER, recipe, model_name, os.path.join(ROOT, "bench")]
    out = subprocess.run(worker, capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{recipe}: memory worker failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mib"]


class Timer:
    """Times each step of `fit` (Keras callback protocol, created per model)."""

    def __init__(self, tf):
        class _Timer(tf.keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times = []

            def on_train_batch_begin(self, batch, logs=None):
                self.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.times.append(time.perf_counter() - self.start)

        self.callback = _Timer()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=sorted(SHAPES), default="fmnist_small")
    parser.add_argument("--out", default=None, help="default: bench/results/training_cost[_MODEL].json")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    args = parser.parse_args()
    recipes = args.recipes.split(",")
    out = args.out or "bench/results/training_cost" + ("" if args.model == "fmnist_small" else f"_{args.model}") + ".json"
    if "ste" not in recipes:
        recipes.insert(0, "ste")
    started = time.time()
    import numpy as np

    import tfbin  # noqa: F401  (before TensorFlow: Keras 2)
    import tensorflow as tf
    from tfbin import _io

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (128 * 8, *SHAPES[args.model])).astype("float32")
    y = rng.integers(0, 10, 128 * 8)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(128).repeat()
    built = {}
    for recipe in recipes:
        tf.keras.utils.set_random_seed(0)
        model, callbacks = build(args.model, recipe)
        model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        timer = Timer(tf).callback
        model.fit(data, steps_per_epoch=5, epochs=1, callbacks=callbacks, verbose=0)  # trace and warm up
        built[recipe] = (model, callbacks, timer)
    runs = {r: [] for r in recipes}
    split_ms = []
    if "dab" in built:
        # DAB's exact per-step split (a full per-channel sort) on the dab model's binarized
        # kernels, timed alone in the same rounds: the part of its step a faster quantizer
        # backward cannot remove.
        from tfbin.introspect import binarized_layers
        from tfbin.quantizers import dab_split

        kernels = [layer.kernel for layer in binarized_layers(built["dab"][0])]
        split = tf.function(lambda: [dab_split(tf.convert_to_tensor(k)) for k in kernels])
        split()
    for round_index in range(args.rounds):
        for recipe in recipes:
            model, callbacks, timer = built[recipe]
            timer.times = []
            model.fit(data, steps_per_epoch=args.steps, epochs=1, callbacks=[*callbacks, timer], verbose=0)
            runs[recipe] += [1000 * t for t in timer.times]
        if "dab" in built:
            for _ in range(args.steps):
                start = time.perf_counter()
                tf.nest.map_structure(lambda t: t.numpy(), split())
                split_ms.append(1000 * (time.perf_counter() - start))
        print(f"round {round_index + 1}: " + ", ".join(f"{r} {statistics.median(runs[r]):.0f}" for r in recipes), flush=True)
    memory = {r: peak_memory(args.model, r) for r in recipes}
    ste_ms, ste_mem = statistics.median(runs["ste"]), memory["ste"]
    results = []
    for recipe in recipes:
        ms, mem = statistics.median(runs[recipe]), memory[recipe]
        target = TARGETS.get(recipe)
        results.append({
            "recipe": recipe,
            "step_ms": round(ms, 2),
            "step_ms_quartiles": [round(float(q), 2) for q in np.percentile(runs[recipe], [25, 75])],
            "ratio_vs_ste": round(ms / ste_ms, 3),
            "peak_rss_mib": round(mem, 1),
            "peak_rss_vs_ste_mib": round(mem - ste_mem, 1),
            "target": target,
            "meets_target": None if target is None else ms / ste_ms <= target,
            "memory_target": MEMORY_TARGETS.get(recipe),
            "meets_memory_target": None if recipe not in MEMORY_TARGETS else mem / ste_mem <= MEMORY_TARGETS[recipe],
        })

    result = {
        "command": ("python bench/training_cost.py " + " ".join(sys.argv[1:])).strip(),
        "model": args.model, "batch_size": 128, "rounds": args.rounds, "steps": args.steps,
        "host": {"cpus": os.cpu_count(), "machine": platform.machine()},
        "versions": {"tensorflow": tf.__version__},
        "wall_seconds": round(time.time() - started, 1),
        "results": results,
    }
    if split_ms:
        result["dab_split_ms"] = round(statistics.median(split_ms), 2)
        result["dab_split_vs_ste_step"] = round(statistics.median(split_ms) / ste_ms, 3)
    _io.write_text_atomic(os.path.join(ROOT, out), json.dumps(result, indent=2) + "\n")
    for r in results:
        print(f"{r['recipe']:16s} {r['step_ms']:7.1f} ms/step  {r['ratio_vs_ste']:.3f}x ste  peak {r['peak_rss_mib']:.0f} MiB  target {r['target']}")
    if split_ms:
        print(f"dab_split alone: {result['dab_split_ms']:.1f} ms per step ({result['dab_split_vs_ste_step']:.2f} of a ste step)")


if __name__ == "__main__":
    main()
