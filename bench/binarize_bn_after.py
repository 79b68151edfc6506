"""What `tfbin.binarize`'s BatchNorm after an unnormalized binarized layer is worth, per recipe.

    python bench/binarize_bn_after.py [--out bench/results/binarize_bn_after.json] [--seeds 0]

The setup of tests/test_binarize.py's slow test: its ordinary conv-relu-pool CNN binarized by each
recipe, 12,000 Fashion-MNIST training images, 1 epoch, Adam 1e-3, hard accuracy on the first 2,000
test images. Each recipe runs twice per seed, with that one insertion forced on and off (also for
`abc`, which binarize exempts; the BN in front of binarized layers stays). Budget: 10 min per seed on 2 cores.
"""
import argparse
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import tfbin  # noqa: E402
import tensorflow as tf  # noqa: E402
from tfbin import _io, data  # noqa: E402
from test_binarize import binarized_hard_accuracy, ordinary_cnn  # noqa: E402

binarize_module = sys.modules["tfbin.binarize"]


def hard_accuracy(recipe, seed, train, test):
    tf.keras.utils.set_random_seed(seed)
    return float(binarized_hard_accuracy(ordinary_cnn(), recipe, train, test, seed=seed))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/results/binarize_bn_after.json")
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args()
    train = data.load("fashion_mnist", "train[:12000]").batch(128).cache()
    test = data.load("fashion_mnist", "test[:2000]").batch(500).cache()
    original = binarize_module._prepare_float_model
    start, results = time.time(), []
    try:
        for seed in (int(s) for s in args.seeds.split(",")):
            for recipe in tfbin.recipes.available():
                row = {"recipe": recipe, "seed": seed}
                for insert in (True, False):
                    # Forced either way, also for the recipes binarize exempts (abc): this
                    # measures the rule that decides the exemption.
                    binarize_module._prepare_float_model = (
                        lambda model, targets, normalize_outputs=True, insert=insert: original(model, targets, normalize_outputs=insert))
                    row["with_bn_after" if insert else "without"] = round(hard_accuracy(recipe, seed, train, test), 4)
                row["gain"] = round(row["with_bn_after"] - row["without"], 4)
                print(row, flush=True)
                results.append(row)
    finally:
        binarize_module._prepare_float_model = original
    result = {
        "command": "python bench/binarize_bn_after.py " + " ".join(sys.argv[1:]),
        "setup": "tests/test_binarize.py ordinary_cnn, Fashion-MNIST train[:12000], 1 epoch, Adam 1e-3, batch 128, hard accuracy on test[:2000]",
        "host": {"cpus": os.cpu_count(), "machine": platform.machine()},
        "versions": {"tensorflow": tf.__version__},
        "wall_seconds": round(time.time() - start, 1),
        "results": results,
    }
    _io.write_text_atomic(os.path.join(ROOT, args.out), json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
