"""Zoo table: parameters, binarized MAC ratio and model size of every model with the irnet recipe.

    python bench/zoo_summary.py [--out bench/results/zoo_summary.json]

Figures come from `tfbin.models.summary` (larq's model profile): 224×224×3 inputs and 1000
classes for the larq-zoo models, the architecture's own input and 10 classes for the small nets.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tfbin  # noqa: E402
import tensorflow as tf  # noqa: E402
from tfbin import _io, models  # noqa: E402
from tfbin.models.zoo import ZOO  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench/results/zoo_summary.json")
    args = parser.parse_args()
    rows, started = [], time.time()
    for name in models.available():
        zoo = name in ZOO
        model, _ = models.build(name, "irnet", epochs=1, input_shape=(224, 224, 3) if zoo else None, num_classes=1000 if zoo else 10)
        s = models.summary(model, print_fn=None)
        rows.append({
            "model": name,
            "source": "larq-zoo" if zoo else "tfbin.models.small",
            "input_shape": list(model.inputs[0].shape[1:]),
            "params": s["params"],
            "macs": s["macs"],
            "binarized_mac_ratio": round(s["binarized_mac_ratio"], 4),
            "model_size_bytes": s["model_size_bytes"],
            "float32_size_bytes": s["float32_size_bytes"],
            "binarized_layers": s["binarized_layers"],
            "lce_binary_layers": s["lce_binary_layers"],
        })
        print(json.dumps(rows[-1]), flush=True)
        tf.keras.backend.clear_session()
    payload = {"benchmark": "zoo_summary", "command": "python bench/zoo_summary.py", "recipe": "irnet",
               "wall_seconds": round(time.time() - started, 1), "results": rows}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    _io.write_text_atomic(args.out, json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
