"""The `tfbin` command.

    tfbin data [NAME ...] [--data-dir DIR] [--manual-dir PATH [--skip-bad-images]]
                                                                prepare datasets (offline-first)
    tfbin export MODEL -o OUT.tflite [--strict] [--verify quick|full] [--report PATH] [--unsafe]
                                                                convert and verify with LCE (Keras 2 or 3)
    tfbin train [--model M] [--recipe R] [--dataset D | --data-dir DIR [--skip-bad-images]] [--epochs N]
                [--train-samples N|all] [--test-samples N|all] [--no-augment] [--out DIR] [--resume]
                                                                the main job: train, draw, export, verify
    tfbin report DIR                                            redraw the pictures of a training run
    tfbin tune [--model M] [--recipe R] [--dataset D] [--trials N] [--max-epochs E] [--out DIR]
                                                                search a recipe's hyperparameters (keras-tuner)

Errors a user can fix end with a one-line reason and a non-zero exit (2 for a bad option, 1
otherwise); `--verbose` (before or after the verb) shows the traceback and TensorFlow's logging.
SIGINT (Ctrl-C) and SIGTERM stop a command with one line (for `train`: which checkpoint
`--resume` continues from) and exit 128 + the signal's number (130, 143).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time


def _cmd_data(args) -> int:
    from tfbin import data

    if args.manual_dir and not args.names:
        raise ValueError("--manual-dir needs the name of the dataset whose files it holds (e.g. tfbin data cifar10 --manual-dir PATH).")
    for name in args.names or data.available():
        start = time.time()
        # With no names: the default datasets as before; the others only from a source on this
        # machine (an offline download attempt takes minutes to fail), else a one-line note.
        optional = not args.names and name not in data.DEFAULT_DATASETS
        try:
            builder = data.prepare(name, data_dir=args.data_dir, manual_dir=args.manual_dir,
                                   skip_bad_images=args.skip_bad_images, download=not optional)
        except data.DataUnavailableError:
            if not optional:
                raise
            print(f"{name}: not prepared, no source on this machine (skipped); to add it: tfbin data {name} --manual-dir PATH")
            continue
        splits = {str(k): v.num_examples for k, v in builder.info.splits.items()}
        print(f"{name}: ready in {builder.data_dir} ({data.source(name, data_dir=args.data_dir)}; {splits}; "
              f"{time.time() - start:.1f} s)")
    return 0


def _cmd_train(args) -> int:
    from tfbin.jobs.train import train

    train(
        model=args.model, recipe=args.recipe, dataset=None if args.data_dir else args.dataset, data_dir=args.data_dir,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_decay=args.lr_decay, seed=args.seed, out=args.out,
        resume=args.resume, input_shape=args.input_shape, train_samples=args.train_samples,
        test_samples=args.test_samples, skip_bad_images=args.skip_bad_images, augment=not args.no_augment,
        verbose=2 if args.quiet else 1,
    )
    return 0


def _cmd_tune(args) -> int:
    from tfbin.jobs.tune import tune

    tune(
        model=args.model, recipe=args.recipe, dataset=args.dataset, trials=args.trials, max_epochs=args.max_epochs,
        out=args.out, tuner=args.tuner, batch_size=args.batch_size, seed=args.seed,
        train_samples=args.train_samples, validation_samples=args.validation_samples,
    )
    return 0


def _cmd_report(args) -> int:
    from tfbin.jobs import plots

    pictures = plots.draw(args.dir)
    print(f"{args.dir}: drew {', '.join(pictures)}")
    return 0


def _keras3_file(path: str) -> bool:
    """A `.keras` file written by Keras 3: a zip whose `metadata.json` says `keras_version` 3.x
    (tf-keras writes the same layout with 2.x)."""
    import json
    import zipfile

    if not (os.path.isfile(path) and zipfile.is_zipfile(path)):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            version = str(json.loads(archive.read("metadata.json")).get("keras_version", ""))
    except (KeyError, ValueError, zipfile.BadZipFile):
        return False
    return version.split(".")[0] == "3"


def _load_keras3_model(path: str, safe_mode: bool):
    """Load a Keras 3 `.keras` file with Keras 3 (in this process beside tfbin's Keras 2), its
    tfbin layers and quantizers registered by `import tfbin.keras3`."""
    import keras

    import tfbin.keras3  # noqa: F401  (registers QuantConv2D, QuantDense, the quantizers, WeightClip)
    from tfbin import saving

    unsafe = saving.code_holding_layers(path) if safe_mode else []
    if unsafe:
        raise saving.UnsafeModelError(f"{path} holds layers whose loading runs stored Python code ({', '.join(unsafe)}: "
                                      "Lambda); tfbin did not load it. If you trust the file, pass --unsafe.")
    return keras.saving.load_model(path, compile=False, safe_mode=safe_mode)


def _load_model(path: str, safe_mode: bool = True):
    from tfbin import saving

    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or directory")
    try:
        if _keras3_file(path):  # converted by tfbin.export's Keras 3 path, with the same report
            return _load_keras3_model(path, safe_mode)
        return saving.load_model(path, safe_mode=safe_mode)
    except saving.UnsafeModelError:
        raise  # its own message says what to do
    except Exception as err:  # Keras raises many types for a bad file; report it in one line
        raise ValueError(f"{path} is not a loadable Keras model (.h5, .keras or SavedModel): {type(err).__name__}: {str(err).splitlines()[0][:200]}") from err


def _default_report(output: str) -> str:
    return os.path.splitext(output)[0] + ".report.json"


def _check_writable(path: str, what: str) -> None:
    """Fail before a minute of conversion, not after it, when `path` cannot be written."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{what} {path}: directory {directory} does not exist; create it or choose another path.")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path}: directory {directory} is not writable; choose another path.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path} is a directory; give a file name.")


def _cmd_export(args) -> int:
    import warnings

    from tfbin import export

    report_path = args.report or _default_report(args.output)
    _check_writable(args.output, "--output")
    _check_writable(report_path, "--report")
    model = _load_model(args.model, safe_mode=not args.unsafe)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Latency: what --verify decides (full measures it, quick does not), unless --no-latency.
        report = export.convert(model, args.output, strict=args.strict, verify=args.verify,
                                latency=False if args.no_latency else None, report_path=report_path)
    for warning in caught:  # one line each, said by the command (not a Python source location)
        print(f"tfbin export: warning: {str(warning.message).strip()}", file=sys.stderr)
    binary = sum(r["lce_op"] == "LceBconv2d" for r in report.layers)
    print(
        f"{args.output}: {report.size_bytes:,} bytes, {binary}/{len(report.layers)} binarized layers as LceBconv2d, "
        f"argmax agreement {report.parity['argmax_agreement']:.4f} on {report.parity['samples']} inputs "
        f"({args.verify} verification); report {report_path}"
    )
    if not report.all_binary:
        print(f"tfbin export: warning: {args.output} is NOT a fully binary model (see {report_path}); "
              "--strict refuses such a model.", file=sys.stderr)
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other tfbin error (argparse prints the usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default; options without one (None, False) show none."""

    def _get_help_string(self, action):
        if any(action.default is v for v in (None, False, argparse.SUPPRESS)) or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _samples(text: str):
    """A sample count: an integer >= 1, or "all" (None)."""
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of images >= 1 or 'all', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of images >= 1 or 'all', got {value}")
    return value


def _input_shape(text: str):
    """H,W,C, three positive integers."""
    try:
        shape = tuple(int(d) for d in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected H,W,C (three positive integers, e.g. 32,32,3), got {text!r}")
    return shape


def build_parser() -> argparse.ArgumentParser:
    """The `tfbin` command line: the global `--verbose`, then one sub-command per verb."""
    parser = _Parser(prog="tfbin", description=__doc__.split("\n")[0])
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    # Also accepted after the verb; SUPPRESS keeps a verb's absent flag from resetting the global one.
    common = _Parser(add_help=False)
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def verb(name, **kwargs):
        return sub.add_parser(name, parents=[common], formatter_class=_Help, **kwargs)

    for add_verb in (_data_verb, _export_verb, _train_verb, _tune_verb, _report_verb):
        add_verb(verb)
    return parser


def _data_verb(verb) -> None:
    p = verb("data", help="prepare datasets (offline-first)")
    p.add_argument("names", nargs="*",
                   help="datasets (default: all built-in; those without a source on this machine, like cifar10, "
                        "are noted and skipped)")
    p.add_argument("--data-dir", default=None, help="TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    p.add_argument("--manual-dir", default=None,
                   help="mnist, fashion_mnist: a directory holding the four upstream .gz files; cifar10: a folder or "
                        ".tar.gz of images laid out as [top/]{train,test}/<class>/<image>")
    p.add_argument("--skip-bad-images", action="store_true",
                   help="cifar10 --manual-dir: leave out (and count) files that are not readable 32x32 images "
                        "instead of stopping")
    p.set_defaults(run=_cmd_data)


def _export_verb(verb) -> None:
    p = verb("export", help="convert a saved model (.h5, .keras, SavedModel) into a binary .tflite")
    p.add_argument("model", help="the trained model: .keras (tf-keras or Keras 3 with tfbin.keras3's layers), .h5 "
                                 "or a SavedModel folder")
    p.add_argument("-o", "--output", required=True, help="the .tflite to write")
    p.add_argument("--strict", action="store_true",
                   help="fail (exit 1, no .tflite) unless the model has binarized layers, every one became an LCE "
                        "binary op, and parity holds; without it such problems are warnings")
    p.add_argument("--report", default=None,
                   help="where to write the JSON report, and the Markdown one beside it "
                        "(default: beside OUTPUT, OUTPUT without .tflite + .report.json)")
    p.add_argument("--verify", choices=("quick", "full"), default="quick",
                   help="how much to check after converting. quick: each binarized layer's LCE op and tie-aware "
                        "Keras-vs-TFLite parity on 16 generated inputs, a small share of the conversion's own time; "
                        "full: parity on 1000 inputs, the float TFLite of the same architecture converted for the "
                        "size comparison (a second conversion), and host latency")
    p.add_argument("--no-latency", action="store_true",
                   help="skip the host latency measurement (which only --verify full makes)")
    p.add_argument("--unsafe", action="store_true",
                   help="load a model file that holds Lambda layers (their stored code runs on load): only for files you trust")
    p.set_defaults(run=_cmd_export)


def _train_verb(verb) -> None:
    p = verb("train", help="train, look, export and verify: the main job")
    p.add_argument("--model", default="fmnist_small", help="a tfbin.models name")
    p.add_argument("--recipe", default="irnet",
                   help="a tfbin.recipes name, or a recipe JSON file (e.g. tfbin tune's best_recipe.json)")
    p.add_argument("--dataset", default="fashion_mnist", help="a built-in dataset (ignored with --data-dir)")
    p.add_argument("--data-dir", default=None,
                   help="a folder of class sub-folders of images, instead of --dataset; every image is checked first")
    p.add_argument("--skip-bad-images", action="store_true",
                   help="with --data-dir: train without unreadable image files (counted) instead of stopping")
    p.add_argument("--epochs", type=_positive(int), default=3, help="training epochs")
    p.add_argument("--batch-size", type=_positive(int), default=128, help="training batch size")
    p.add_argument("--lr", type=_positive(float), default=None,
                   help="Adam learning rate (default: a searched recipe file's, else 1e-3)")
    p.add_argument("--lr-decay", choices=["constant", "cosine"], default=None,
                   help="hold the learning rate, or cosine-decay it to 0 over the run (default: a searched recipe file's, else constant)")
    p.add_argument("--seed", type=int, default=0, help="random seed (weights, shuffling, --data-dir split)")
    p.add_argument("--out", default="run", help="output directory (must not hold a run, unless --resume)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--input-shape", type=_input_shape, default=None,
                   help="H,W,C the data is adapted to (default: the model's own; a zoo model on --data-dir: the images')")
    p.add_argument("--train-samples", type=_samples, default=None, metavar="N|all",
                   help="use only the first N training images (default: all)")
    p.add_argument("--test-samples", type=_samples, default=None, metavar="N|all",
                   help="use only the first N test images (default: all)")
    p.add_argument("--no-augment", action="store_true",
                   help="cifar10: train without the papers' augmentation (4-pixel pad, random crop, flip); "
                        "the per-channel normalization stays")
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    p.set_defaults(run=_cmd_train)


def _tune_verb(verb) -> None:
    p = verb("tune", help="search a recipe's hyperparameters with keras-tuner (resumes in the same --out)")
    p.add_argument("--model", default="fmnist_small", help="a tfbin.models name")
    p.add_argument("--recipe", default="irnet", help="a tfbin.recipes name whose search ranges are searched")
    p.add_argument("--dataset", default="fashion_mnist", help="a built-in dataset")
    p.add_argument("--trials", type=_positive(int), default=10,
                   help="trials (random, bayesian); hyperband runs 23 (9 on 1/9 of the data, 6 on all of it)")
    p.add_argument("--max-epochs", type=_positive(int), default=3, help="epochs every trial trains (its schedules span them)")
    p.add_argument("--tuner", choices=["hyperband", "random", "bayesian"], default="hyperband",
                   help="search strategy (hyperband: multi-fidelity over the fraction of training data)")
    p.add_argument("--out", default="search", help="output directory; an existing search there is resumed")
    p.add_argument("--batch-size", type=_positive(int), default=128, help="training batch size")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--train-samples", type=_samples, default=None, metavar="N|all",
                   help="train on the first N training images (default: all but the validation ones)")
    p.add_argument("--validation-samples", type=_positive(int), default=10_000,
                   help="validate on the last M training images (never the test set)")
    p.set_defaults(run=_cmd_tune)


def _report_verb(verb) -> None:
    p = verb("report", help="redraw the pictures of a `tfbin train` directory")
    p.add_argument("dir", help="a `tfbin train` output directory")
    p.set_defaults(run=_cmd_report)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt as err:  # Ctrl-C; `tfbin train` turns SIGTERM into one too, saying what is kept
        if args.verbose:
            raise
        signum = getattr(err, "signum", signal.SIGINT)
        print(f"tfbin {args.command}: {' '.join(str(err).split()) or 'interrupted'}", file=sys.stderr)
        return 128 + signum
    except (ValueError, KeyError, TypeError, OSError, RuntimeError) as err:
        if args.verbose:
            raise
        message = " ".join(str(err).split()) or type(err).__name__  # one line, whatever the error held
        print(f"tfbin {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
