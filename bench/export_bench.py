"""Export benchmark: size, parity and host latency of binary TFLite models made by tfbin.export,
and what the export's verification costs beside LCE's own conversion.

    python bench/export_bench.py [--out bench/results/export.json] [--models a,b,...]

Each model is built with the `irnet` recipe (untrained weights, BatchNorm statistics randomized
so that thresholds are non-trivial), exported with `tfbin.export.convert(verify="full")`, and
measured: file size against the float TFLite of the same architecture and the 1-bit limit,
Keras-vs-TFLite parity on uniform [0, 1] inputs (with the tie-free fraction, the agreement on
tie-free samples and the unexplained mismatches of `tfbin.export.parity`), host latency (x86,
1 thread, batch 1, median). Cost: `lce_convert_s` is LCE's `convert_keras_model` alone on the
hard, rewritten model; `export_quick_s` the default `tfbin.export.convert(model)` (quick
verification, as `tfbin export` runs it); `export_full_s` the full export above (on this
bench's parity samples); for conversions under `SHORT_S` the first two are the fastest of
`TIMING_RUNS` interleaved runs (all runs are kept in the row). The target of issue #39: the
default export within `QUICK_TARGET` x LCE's conversion (`quick_over_lce`, `quick_target_met`).
Budget: 30 min.
`--models` runs some models and replaces only their rows in `--out`.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tfbin  # noqa: E402
import tensorflow as tf  # noqa: E402
from tfbin import _io, export, models  # noqa: E402
from tfbin.export.rewrite import export_model  # noqa: E402
from tfbin.testing import randomize_batch_norm  # noqa: E402

# name -> (input shape, parity samples, latency repeats)
MODELS = {
    "quicknet_small": ((224, 224, 3), 100, 10),
    "quicknet": ((224, 224, 3), 50, 10),
    "birealnet": ((224, 224, 3), 50, 10),
    "fmnist_small": ((28, 28, 1), 1000, 50),
    "lenet_bnn": ((28, 28, 1), 1000, 50),
    "bnn_mlp": ((28, 28, 1), 1000, 50),
    "vgg_small": ((32, 32, 3), 1000, 20),
    "resnet20": ((32, 32, 3), 1000, 20),
    "meliusnet22": ((96, 96, 3), 100, 10),  # the net and input size issue #39 timed
}
# The default export may take at most this multiple of LCE's own conversion time (issue #39).
QUICK_TARGET = 1.5
# On a shared host a conversion of a few seconds varies by more than the export's own overhead:
# the short ones are timed TIMING_RUNS times, interleaved, and the fastest run of each counts.
TIMING_RUNS, SHORT_S = 3, 30.0


def build(name, shape):
    tf.keras.utils.set_random_seed(0)  # the same untrained weights on every run
    model, _ = models.build(name, "irnet", epochs=1, input_shape=shape, num_classes=1000 if shape[0] == 224 else 10)
    randomize_batch_norm(model)
    return model


def lce_convert_seconds(model) -> float:
    """LCE's `convert_keras_model` alone, on what `convert` hands it: the rewritten hard model."""
    import larq_compute_engine as lce

    exported, _, _ = export_model(model)
    with tfbin.hard(model):
        start = time.perf_counter()
        lce.convert_keras_model(exported)
        return time.perf_counter() - start


def timed(run):
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def export_cost(model):
    """The default export's report and the wall seconds of each run of LCE's conversion alone and
    of the default export (`tfbin.export.convert(model)`), interleaved: `TIMING_RUNS` of each
    when LCE's conversion takes under `SHORT_S`, else one."""
    lce_runs, quick_runs = [], []
    while not lce_runs or (len(lce_runs) < TIMING_RUNS and min(lce_runs) < SHORT_S):
        lce_runs.append(lce_convert_seconds(model))
        quick, seconds = timed(lambda: export.convert(model))
        quick_runs.append(seconds)
    return quick, lce_runs, quick_runs


def warm_up():
    """One small export first, untimed: the process's one-time costs (loading LCE's converter and
    interpreter, TensorFlow's SavedModel and TFLite machinery) are then paid by no model's row."""
    export.convert(build("lenet_bnn", (28, 28, 1)), verify="full", num_samples=2, latency_repeats=1)
    tf.keras.backend.clear_session()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench/results/export.json")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    results = []
    started = time.time()
    warm_up()
    for name in args.models.split(","):
        shape, samples, repeats = MODELS[name]
        t0 = time.time()
        model = build(name, shape)
        x = np.random.default_rng(1).uniform(0, 1, size=(samples, *shape)).astype("float32")
        quick, lce_runs, quick_runs = export_cost(model)
        lce_s, quick_s = min(lce_runs), min(quick_runs)
        report, full_s = timed(lambda: export.convert(model, verify="full", sample_inputs=x, latency_repeats=repeats))
        row = {
            "model": name,
            "input_shape": list(shape),
            "binarized_layers": len(report.layers),
            "lce_bconv_layers": sum(r["lce_op"] == "LceBconv2d" for r in report.layers),
            "size_bytes": report.size_bytes,
            "float_size_bytes": report.float_size_bytes,
            "one_bit_limit_bytes": report.one_bit_limit_bytes,
            "float_over_binary": round(report.float_size_bytes / report.size_bytes, 2),
            "binary_over_limit": round(report.size_bytes / report.one_bit_limit_bytes, 3),
            "parity": report.parity,
            "latency": report.latency,
            "lce_convert_s": round(lce_s, 2),
            "export_quick_s": round(quick_s, 2),
            "lce_convert_runs_s": [round(t, 2) for t in lce_runs],
            "export_quick_runs_s": [round(t, 2) for t in quick_runs],
            "quick_samples": quick.parity["samples"],
            "quick_parity_passed": quick.parity["passed"],
            "export_full_s": round(full_s, 2),
            "quick_over_lce": round(quick_s / lce_s, 3),
            "full_over_lce": round(full_s / lce_s, 3),
            "quick_target_met": bool(quick_s <= QUICK_TARGET * lce_s),
            "seconds": round(time.time() - t0, 1),
        }
        summary = {k: row[k] for k in ("model", "lce_bconv_layers", "binarized_layers", "float_over_binary", "binary_over_limit", "seconds")}
        summary.update({k: report.parity[k] for k in ("argmax_agreement", "tie_free_fraction", "tie_free_agreement", "unexplained_mismatches")})
        summary.update({k: row[k] for k in ("lce_convert_s", "export_quick_s", "export_full_s", "quick_over_lce", "quick_target_met")})
        print(json.dumps(summary), flush=True)
        results.append(row)
        tf.keras.backend.clear_session()
    wall = round(time.time() - started, 1)
    if args.models != ",".join(MODELS) and os.path.exists(args.out):
        # A partial run: keep the other models' rows (in MODELS order); the wall time is their sum.
        previous = json.load(open(args.out))
        rows = {r["model"]: r for r in previous["results"]}
        rows.update({r["model"]: r for r in results})
        results = [rows[name] for name in MODELS if name in rows]
        wall = round(sum(r["seconds"] for r in results), 1)
    payload = {
        "benchmark": "export",
        "command": "python bench/export_bench.py",
        "recipe": "irnet",
        "host": {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "versions": {"tensorflow": tf.__version__, "larq_compute_engine": __import__("larq_compute_engine").__version__},
        "wall_seconds": wall,
        "quick_target": f"export_quick_s <= {QUICK_TARGET} x lce_convert_s",
        # None while a row from before the cost was measured has no verdict (run it again).
        "quick_target_met": all(r["quick_target_met"] for r in results) if all("quick_target_met" in r for r in results) else None,
        "results": results,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    _io.write_text_atomic(args.out, json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
