"""The `tfbin` command.

    tfbin data [NAME ...] [--data-dir DIR] [--manual-dir DIR]   prepare datasets (offline-first)
    tfbin export MODEL -o OUT.tflite [--strict] [--report PATH] convert and verify with LCE
    tfbin train [--model M] [--recipe R] [--dataset D | --data-dir DIR] [--epochs N] [--out DIR] [--resume]
                                                                the main job: train, draw, export, verify
    tfbin report DIR                                            redraw the pictures of a training run
    tfbin tune [--model M] [--recipe R] [--dataset D] [--trials N] [--max-epochs E] [--out DIR]
                                                                search the recipe's schedules (keras-tuner)

Errors a user can fix end with a one-line reason and a non-zero exit; `--verbose` shows the
traceback as well.
"""
from __future__ import annotations

import argparse
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


def _cmd_train(args) -> int:
    from tfbin.train import train

    shape = tuple(int(d) for d in args.input_shape.split(",")) if args.input_shape else None
    if shape is not None and len(shape) != 3:
        raise ValueError(f"--input-shape takes H,W,C (e.g. 32,32,3), got {args.input_shape!r}.")
    train(
        model=args.model, recipe=args.recipe, dataset=None if args.data_dir else args.dataset, data_dir=args.data_dir,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, out=args.out,
        resume=args.resume, input_shape=shape, train_samples=args.train_samples, test_samples=args.test_samples,
        verbose=2 if args.quiet else 1,
    )
    return 0


def _cmd_tune(args) -> int:
    from tfbin.tuning.search import tune

    tune(
        model=args.model, recipe=args.recipe, dataset=args.dataset, trials=args.trials, max_epochs=args.max_epochs,
        out=args.out, tuner=args.tuner, batch_size=args.batch_size, seed=args.seed,
        train_samples=args.train_samples, validation_samples=args.validation_samples,
    )
    return 0


def _cmd_report(args) -> int:
    from tfbin import report

    pictures = report.draw(args.dir)
    print(f"{args.dir}: drew {', '.join(pictures)}")
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

    p = sub.add_parser("train", help="train, look, export and verify: the main job")
    p.add_argument("--model", default="fmnist_small", help="a tfbin.models name (default fmnist_small)")
    p.add_argument("--recipe", default="irnet", help="a tfbin.recipes name (default irnet)")
    p.add_argument("--dataset", default="fashion_mnist", help="a built-in dataset (default fashion_mnist)")
    p.add_argument("--data-dir", default=None, help="a folder of class sub-folders of images, instead of --dataset")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="run", help="output directory")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--input-shape", default=None, help="H,W,C the data is adapted to (default: the model's own)")
    p.add_argument("--train-samples", type=int, default=None, help="use only the first N training images")
    p.add_argument("--test-samples", type=int, default=None, help="use only the first N test images")
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    p.set_defaults(run=_cmd_train)

    p = sub.add_parser("tune", help="search a recipe's schedules with keras-tuner (resumes in the same --out)")
    p.add_argument("--model", default="fmnist_small")
    p.add_argument("--recipe", default="irnet")
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--trials", type=int, default=10, help="trials (random, bayesian); hyperband sizes itself from --max-epochs")
    p.add_argument("--max-epochs", type=int, default=3)
    p.add_argument("--tuner", choices=["random", "bayesian", "hyperband"], default="random")
    p.add_argument("--out", default="search")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-samples", type=int, default=None, help="train on the first N training images")
    p.add_argument("--validation-samples", type=int, default=5000, help="validate on the last M training images (never the test set)")
    p.set_defaults(run=_cmd_tune)

    p = sub.add_parser("report", help="redraw the pictures of a `tfbin train` directory")
    p.add_argument("dir")
    p.set_defaults(run=_cmd_report)
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
