"""How far Keras and LCE's TFLite differ at each binarized layer's pre-sign input, in rounding
units of the two tie scales `tfbin.export.ties` could use: the clipped input's own largest
magnitude (the rule before `rounding_sources`), and the largest magnitude of the input and its
rounding sources (the float sum and summands a clip hides: the rule now). `TIE_ULPS` must sit
well above the second.

    python bench/tie_scale.py [--samples 100]

The net and inputs are `bench/export_bench.py`'s resnet20 (irnet, untrained, randomized
BatchNorm, uniform [0, 1] inputs, samples 100 on). The exported model is converted once more
with every binarized layer's input as an extra output, so LCE's values can be read; per sample,
layers count up to its first flipped sign (after it the inputs differ). Writes
`bench/results/tie_scale.json`.
"""
import argparse
import json
import os
import platform
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import tfbin  # noqa: E402,F401
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import larq_compute_engine as lce  # noqa: E402
from export_bench import build  # noqa: E402
from tfbin import _io, mode  # noqa: E402
from tfbin.export.rewrite import export_model  # noqa: E402
from tfbin.export.ties import TIE_ULPS, rounding_sources  # noqa: E402
from tfbin.introspect import binarized_layers  # noqa: E402

EPS = float(np.finfo(np.float32).eps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    model = build("resnet20", (32, 32, 3))
    x = np.random.default_rng(1).uniform(0, 1, size=(100 + args.samples, 32, 32, 3)).astype("float32")[100:]
    exported, mapping, _ = export_model(model)
    layers = binarized_layers(model)
    sources = [rounding_sources(layer.input) for layer in layers]
    with mode.hard(model):
        probe = tf.keras.Model(model.inputs, [t for layer, extra in zip(layers, sources) for t in (layer.input, *extra)])
        values = [np.asarray(v) for v in probe(x, training=False)]
        multi = tf.keras.Model(exported.inputs, [exported.get_layer(mapping[l.name]).input for l in layers])
        flatbuffer = lce.convert_keras_model(multi)
    got = lce.testing.Interpreter(flatbuffer, num_threads=1).predict(x)
    keras_inputs, scales, i = [], [], 0
    for extra in sources:
        group = values[i : i + 1 + len(extra)]
        keras_inputs.append(group[0])
        scales.append(np.max([np.abs(v).reshape(len(x), -1).max(1) for v in group], axis=0))
        i += 1 + len(extra)
    # The interpreter's output order is its own: match each layer by shape and closeness.
    free, ordered = list(range(len(got))), []
    for value in keras_inputs:
        best = min((j for j in free if got[j].shape == value.shape), key=lambda j: np.median(np.abs(got[j] - value)))
        free.remove(best)
        ordered.append(got[best])
    own, with_sources, flips = np.zeros(len(layers)), np.zeros(len(layers)), []
    for s in range(len(x)):
        for k, (value, lce_value) in enumerate(zip(keras_inputs, ordered)):
            diff = np.abs(value[s] - lce_value[s])
            flipped = np.sign(value[s]) != np.sign(lce_value[s])
            if flipped.any():
                flips.append({"sample": s, "layer": layers[k].name,
                              "margin_own_scale": float((np.abs(value[s][flipped]) / (EPS * np.abs(value[s]).max())).min()),
                              "margin_with_sources": float((np.abs(value[s][flipped]) / (EPS * scales[k][s])).min())})
                break
            own[k] = max(own[k], diff.max() / (EPS * np.abs(value[s]).max()))
            with_sources[k] = max(with_sources[k], diff.max() / (EPS * scales[k][s]))
    result = {
        "command": "python bench/tie_scale.py" + (f" --samples {args.samples}" if args.samples != 100 else ""),
        "net": "resnet20, irnet recipe, untrained, randomized BatchNorm (bench/export_bench.py)",
        "samples": len(x), "tie_ulps": TIE_ULPS,
        "host": {"cpus": os.cpu_count(), "machine": platform.machine()},
        "versions": {"tensorflow": tf.__version__, "larq_compute_engine": lce.__version__},
        "max_diff_units_own_scale": round(float(own.max()), 1),
        "max_diff_units_with_sources": round(float(with_sources.max()), 1),
        "per_layer": [{"layer": l.name, "own_scale": round(float(a), 1), "with_sources": round(float(b), 1)}
                      for l, a, b in zip(layers, own, with_sources)],
        "first_flips": flips,
    }
    _io.write_text_atomic(os.path.join(ROOT, "bench", "results", "tie_scale.json"), json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("max_diff_units_own_scale", "max_diff_units_with_sources", "first_flips")}))


if __name__ == "__main__":
    main()
