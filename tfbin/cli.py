"""The `tfbin` command.

    tfbin data [NAME ...] [--data-dir DIR] [--manual-dir DIR]   prepare datasets (offline-first)
    tfbin export MODEL -o OUT.tflite [--strict] [--report PATH] convert and verify with LCE
    tfbin demo [--epochs N] [--out DIR]                        the main job on Fashion-MNIST

Errors a user can fix end with a one-line reason and a non-zero exit; `--verbose` shows the
traceback as well.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _cmd_data(args) -> int:
    from tfbin import data

    for name in args.names or data.available():
        start = time.time()
        builder = data.prepare(name, data_dir=args.data_dir, manual_dir=args.manual_dir)
        splits = {str(k): v.num_examples for k, v in builder.info.splits.items()}
        print(f"{name}: ready in {builder.data_dir} ({splits}; {time.time() - start:.1f} s)")
    return 0


def _accuracy(model, dataset) -> float:
    return float(model.evaluate(dataset, verbose=0, return_dict=True)["accuracy"])


def _cmd_demo(args) -> int:
    import tensorflow as tf

    import tfbin
    from tfbin import data, export, models

    tf.keras.utils.set_random_seed(args.seed)
    train = data.load("fashion_mnist", "train").shuffle(10_000, seed=args.seed).batch(args.batch_size).prefetch(2)
    test = data.load("fashion_mnist", "test").batch(512).prefetch(2)

    # Self-Binarizing Networks: tanh(v·x) for activations and weights, v sharpened 1 -> 1000
    # geometrically over the run (per batch), then the hard sign for evaluation and export.
    model, callbacks = models.build("fmnist_small", "self_binarizing", epochs=args.epochs)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(args.lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.time()
    model.fit(train, epochs=args.epochs, callbacks=callbacks, validation_data=test)
    train_seconds = time.time() - start

    soft = _accuracy(model, test)
    with tfbin.hard(model):
        hard = _accuracy(model, test)
    os.makedirs(args.out, exist_ok=True)
    model_path = os.path.join(args.out, "fmnist_small_sbn.keras")
    model.save(model_path)
    tflite_path = os.path.join(args.out, "fmnist_small_sbn.tflite")
    x_test = next(iter(data.load("fashion_mnist", "test").batch(1000)))[0].numpy()
    report = export.convert(
        model, tflite_path, sample_inputs=x_test, normalization="float32 grayscale in [0, 1]",
        labels=data.info("fashion_mnist").features["label"].names,
        report_path=os.path.join(args.out, "fmnist_small_sbn.report.json"),
    )
    ops = report.op_histogram
    summary = {
        "model": "fmnist_small",
        "method": "self_binarizing (v: Exponential(1, 1000) per batch)",
        "epochs": args.epochs,
        "train_seconds": round(train_seconds, 1),
        "soft_test_accuracy": round(soft, 4),
        "hard_test_accuracy": round(hard, 4),
        "tflite_ops": dict(ops),
        "tflite_bytes": report.size_bytes,
        "float_tflite_bytes": report.float_size_bytes,
        "argmax_agreement": report.parity["argmax_agreement"],
    }
    from tfbin import _io

    _io.write_text_atomic(os.path.join(args.out, "summary.json"), json.dumps(summary, indent=2) + "\n")
    print()
    print(f"  soft test accuracy  {soft:.4f}  (tanh(v·x), v = {tfbin.sharpness.get(model, 'v'):g} at the end)")
    print(f"  hard test accuracy  {hard:.4f}  (sign: what the exported model computes)")
    print(f"  training time       {train_seconds:.0f} s for {args.epochs} epochs")
    print(f"  TFLite ops          {dict(ops)}")
    print(
        f"  TFLite file         {report.size_bytes:,} bytes ({report.float_size_bytes / report.size_bytes:.1f}x smaller "
        f"than float TFLite; {report.size_bytes / report.one_bit_limit_bytes:.2f}x the 1-bit limit)"
    )
    print(
        f"  parity              argmax agreement {report.parity['argmax_agreement']:.4f} on 1000 test images, "
        f"max |diff| {report.parity['max_abs_diff']:.2g}"
    )
    print(f"  written             {model_path}, {tflite_path}, {os.path.join(args.out, 'summary.json')}")
    return 0


def _load_model(path: str):
    import tensorflow as tf

    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or directory")
    try:
        return tf.keras.models.load_model(path, compile=False)
    except Exception as err:  # Keras raises many types for a bad file; report it in one line
        raise ValueError(f"{path} is not a loadable Keras model (.h5, .keras or SavedModel): {type(err).__name__}: {str(err).splitlines()[0][:200]}") from err


def _cmd_export(args) -> int:
    from tfbin import export

    model = _load_model(args.model)
    report_path = args.report or os.path.splitext(args.output)[0] + ".report.json"
    report = export.convert(model, args.output, strict=args.strict, latency=not args.no_latency, report_path=report_path)
    binary = sum(r["lce_op"] == "LceBconv2d" for r in report.layers)
    print(
        f"{args.output}: {report.size_bytes:,} bytes, {binary}/{len(report.layers)} binarized layers as LceBconv2d, "
        f"argmax agreement {report.parity['argmax_agreement']:.4f}; report {report_path}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfbin", description=__doc__.split("\n")[0])
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="prepare datasets (offline-first)")
    p.add_argument("names", nargs="*", help="datasets (default: all built-in)")
    p.add_argument("--data-dir", default=None, help="TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    p.add_argument("--manual-dir", default=None, help="directory holding the dataset's upstream .gz files")
    p.set_defaults(run=_cmd_data)

    p = sub.add_parser("export", help="convert a saved model (.h5, .keras, SavedModel) into a binary .tflite")
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True, help="the .tflite to write")
    p.add_argument("--strict", action="store_true", help="fail unless every binarized layer is an LCE binary op and parity holds")
    p.add_argument("--report", default=None, help="report JSON path (default: OUTPUT without .tflite + .report.json)")
    p.add_argument("--no-latency", action="store_true", help="skip the host latency measurement")
    p.set_defaults(run=_cmd_export)

    p = sub.add_parser("demo", help="train fmnist_small with Self-Binarizing quantizers on Fashion-MNIST")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="demo_out")
    p.set_defaults(run=_cmd_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, KeyError, TypeError, OSError, RuntimeError) as err:
        if args.verbose:
            raise
        print(f"tfbin {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
