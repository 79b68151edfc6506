"""What `tfbin.binarize`'s BatchNorm after an unnormalized binarized layer is worth, per recipe.

    python bench/binarize_bn_after.py [--out bench/results/binarize_bn_after.json] [--seeds 0]

The setup of tests/test_binarize.py's slow test: its ordinary conv-relu-pool CNN binarized by each
recipe, 12,000 Fashion-MNIST training images, 1 epoch, Adam 1e-3, hard accuracy on the first 2,000
test images. Each recipe runs twice per seed, with binarize as it is and with that one insertion
switched off (the BN in front of binarized layers stays). Budget: 10 min per seed on 2 cores.
"""
import argparse
import json
import os
import platform
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import tfbin  # noqa: E402
import tensorflow as tf  # noqa: E402
from tfbin import _io, data  # noqa: E402
from test_binarize import ordinary_cnn  # noqa: E402

binarize_module = sys.modules["tfbin.binarize"]


def hard_accuracy(recipe, seed, train, test):
    tf.keras.utils.set_random_seed(seed)
    model = ordinary_cnn()
    tf.keras.utils.set_random_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # binarize's report of its changes
        binarized = tfbin.binarize(model, recipe, epochs=1)
    net = binarized.model
    net.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    net.fit(train, epochs=1, callbacks=binarized.callbacks, verbose=0)
    inner = tfbin.unwrap(net)
    inner.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if recipe == "blrnet":  # deployed after recalibration, as the slow test and BLRNet's paper
        tfbin.recalibrate(inner, train, steps=20)
    with tfbin.hard(inner) if tfbin.sharpness.quantizers(inner) else _nothing():
        return float(inner.evaluate(test, verbose=0, return_dict=True)["accuracy"])


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/results/binarize_bn_after.json")
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args()
    train = data.load("fashion_mnist", "train[:12000]").batch(128).cache()
    test = data.load("fashion_mnist", "test[:2000]").batch(500).cache()
    original = binarize_module._output_unnormalized
    start, results = time.time(), []
    try:
        for seed in (int(s) for s in args.seeds.split(",")):
            for recipe in tfbin.recipes.available():
                row = {"recipe": recipe, "seed": seed}
                for insert in (True, False):
                    binarize_module._output_unnormalized = original if insert else (lambda layer, targets: False)
                    row["with_bn_after" if insert else "without"] = round(hard_accuracy(recipe, seed, train, test), 4)
                row["gain"] = round(row["with_bn_after"] - row["without"], 4)
                print(row, flush=True)
                results.append(row)
    finally:
        binarize_module._output_unnormalized = original
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
