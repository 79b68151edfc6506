"""Export benchmark: size, parity and host latency of binary TFLite models made by tfbin.export.

    python bench/export_bench.py [--out bench/results/export.json] [--models a,b,...]

Each model is built with the `irnet` recipe (untrained weights, BatchNorm statistics randomized
so that thresholds are non-trivial), exported with `tfbin.export.convert`, and measured: file
size against the float TFLite of the same architecture and the 1-bit limit, Keras-vs-TFLite
parity on uniform [0, 1] inputs (with the tie-free fraction, the agreement on tie-free samples
and the unexplained mismatches of `tfbin.export.parity`), host latency (x86, 1 thread, batch 1,
median). Budget: 30 min. `--models` runs some models and replaces only their rows in `--out`.
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
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench/results/export.json")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    results = []
    started = time.time()
    for name in args.models.split(","):
        shape, samples, repeats = MODELS[name]
        t0 = time.time()
        tf.keras.utils.set_random_seed(0)  # the same untrained weights on every run
        model, _ = models.build(name, "irnet", epochs=1, input_shape=shape, num_classes=1000 if shape[0] == 224 else 10)
        randomize_batch_norm(model)
        x = np.random.default_rng(1).uniform(0, 1, size=(samples, *shape)).astype("float32")
        report = export.convert(model, sample_inputs=x, latency_repeats=repeats)
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
            "seconds": round(time.time() - t0, 1),
        }
        summary = {k: row[k] for k in ("model", "lce_bconv_layers", "binarized_layers", "float_over_binary", "binary_over_limit", "seconds")}
        summary.update({k: report.parity[k] for k in ("argmax_agreement", "tie_free_fraction", "tie_free_agreement", "unexplained_mismatches")})
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
        "results": results,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    _io.write_text_atomic(args.out, json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
