"""Which float ResNet-20 is the float reference: He et al.'s net (`models.small.float_resnet20`, a
shortcut per two convs) or the binary net's shape with ReLU (`resnet20(activation="relu")`, a
shortcut around every conv)? Both trained as `cifar_bench.py` trains (SGD 0.1 cosine, momentum
0.9, weight decay 1e-4, batch 128, the papers' augmentation) for a few epochs on 45,000 training
images, scored on the 5,000 held out (the validation split: this is a choice, so no test images).

    python bench/cifar_float_check.py [--epochs 3] [--seed 0] [--out bench/results/cifar10_float_check.json]
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import tfbin  # noqa: E402,F401  (Keras 2 before TensorFlow)
import tensorflow as tf  # noqa: E402
from tfbin import _io, data  # noqa: E402
from models import small  # noqa: E402
from cifar_bench import BATCH, LR, MOMENTUM, WEIGHT_DECAY, splits  # noqa: E402

NETS = {"float_resnet20": small.float_resnet20, "resnet20_relu": lambda: small.resnet20(activation="relu")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "cifar10_float_check.json"))
    args = parser.parse_args()
    manual_dir = os.path.join(ROOT, "..", "shared", "datasets", "cifar10-jpeg.tar.gz")
    manual_dir = manual_dir if os.path.exists(manual_dir) else None
    rows = []
    for name, build in NETS.items():
        tf.keras.utils.set_random_seed(args.seed)
        train, scored, _, kept = splits(args.seed, 5000, None, manual_dir)
        model = build()
        schedule = tf.keras.optimizers.schedules.CosineDecay(LR, args.epochs * int(train.cardinality()))
        optimizer = tf.keras.optimizers.SGD(schedule, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
        model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
        start = time.time()
        history = model.fit(train, epochs=args.epochs, validation_data=scored.batch(500), verbose=2)
        rows.append({"net": name, "seed": args.seed, "val_accuracy": [round(v, 4) for v in history.history["val_accuracy"]],
                     "train_accuracy": [round(v, 4) for v in history.history["accuracy"]], "seconds": round(time.time() - start)})
        print(json.dumps(rows[-1]))
    result = {"command": "python bench/cifar_float_check.py " + " ".join(sys.argv[1:]), "epochs": args.epochs,
              "train_images": kept, "validation": 5000, "batch_size": BATCH, "runs": rows}
    _io.write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
