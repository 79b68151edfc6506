"""The spread of every trained figure a test bounds, over seeds and both TensorFlow kernel sets.

    python bench/test_margins.py [--seeds 0 1 2] [--only KEY ...] [--out bench/results/test_margins.json]

A test that trains and bounds what came out (an accuracy, a loss ratio, a bound's drop) passes
on one machine and may fail on the next: float kernels differ between CPUs (AVX2 vs AVX-512,
oneDNN on or off), and a few steps of training amplify the difference. Each such figure is
computed here by the same function the test calls, for every seed and with
`TF_ENABLE_ONEDNN_OPTS=0` and `=1` (the two kernel sets one machine can run; each cell is a fresh
process, since the variable is read when TensorFlow loads). The JSON keeps every value, the
bound the test uses and the room between the worst value and that bound;
`tests/test_margins.py` checks that each bound lies outside the measured spread with at least
the spread again to spare, and that every training test names its figures (or says what it
compares exactly instead). Resumable: cells already in the JSON are skipped.
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# key -> (test module, figure function, "<" or ">", bound, what it is). The bound is the one the
# test asserts (tests/test_margins.py checks that the test's source states it).
FIGURES = {
    "binarize_one_epoch_worst_recipe": (
        "test_binarize.py", "one_epoch_figures", ">", 0.45,
        "worst recipe's hard accuracy of a binarized tutorial CNN, 1 epoch on 12,000 Fashion-MNIST images",
    ),
    "recipes_irnet_loss_ratio": (
        "test_recipes.py", "irnet_loss_ratio", "<", 0.8, "last / first epoch's loss, irnet, 8 epochs on 256 samples",
    ),
    "blrnet_loss_ratio": ("test_blrnet.py", "blrnet_loss_ratio", "<", 0.8, "last / first epoch's loss, blrnet, 4 epochs"),
    "pbgnet_bound_drop": ("test_pbgnet.py", "fit_figures", ">", 0.1, "PAC-Bayes bound before minus after 6 epochs"),
    "pbgnet_sample_size_gap": (
        "test_pbgnet.py", "fit_figures", "<", 0.02, "|linear loss with T = 200 samples - with T = 20| after training",
    ),
    "pbgnet_training_error": ("test_pbgnet.py", "fit_figures", "<", 0.3, "training error after 6 epochs"),
    "pbgnet_prior_bound_gain": (
        "test_pbgnet.py", "prior_figures", ">", 0.05, "bound from the initialization minus bound from a pretrained prior",
    ),
    "pbgnet_prior_kl_gain": ("test_pbgnet.py", "prior_figures", ">", 0.0, "KL from the initialization minus from a pretrained prior"),
    "abr_mean_slope_growth": ("test_losses.py", "slope_growth", ">", 0.0, "mean ABR slope after 3 epochs minus before"),
    "pbgnet_export_tie_free_fraction": (
        "test_pbgnet.py", "export_figures", ">", 0.5, "tie-free fraction of 400 inputs, mean-weight sign net after 2 epochs",
    ),
    "tuning_objective_soft_hard_gap": (
        "test_tuning.py", "objective_figures", ">", 0.0, "soft minus hard validation accuracy of a 1-epoch trial",
    ),
    "multiworker_weight_gap": (
        "test_distributed.py", "multiworker_figures", "<", 1e-5,
        "max |two workers - one device| - 1e-4 |one device| over the trained weights",
    ),
    "multiworker_loss_gap": (
        "test_distributed.py", "multiworker_figures", "<", 1e-4, "max relative gap of the logged losses, two workers vs one device",
    ),
    "multiworker_moved": ("test_distributed.py", "multiworker_figures", ">", 1e-3, "max |trained - initial weight|, one device"),
}


def _worker(module_file: str, function: str, seed: int) -> None:
    import tfbin  # noqa: F401  (selects Keras 2 before a test module imports TensorFlow)

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    spec = importlib.util.spec_from_file_location(module_file[:-3], os.path.join(ROOT, "tests", module_file))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = getattr(module, function)(seed)
    print("FIGURES " + json.dumps({k: float(v) for k, v in figures.items()}))


def _cell(module_file: str, function: str, seed: int, onednn: int) -> dict:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": str(onednn), "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.time()
    done = subprocess.run(
        [sys.executable, __file__, "--worker", module_file, function, str(seed)],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module_file}:{function} seed {seed} oneDNN {onednn} failed:\n{done.stderr[-3000:]}")
    line = [l for l in done.stdout.splitlines() if l.startswith("FIGURES ")][-1]
    return {"figures": json.loads(line[len("FIGURES "):]), "seconds": round(time.time() - start, 1)}


def summarize(entry: dict) -> dict:
    values = [run["value"] for run in entry["runs"]]
    worst = min(values) if entry["op"] == ">" else max(values)
    room = worst - entry["bound"] if entry["op"] == ">" else entry["bound"] - worst
    return {**entry, "min": min(values), "max": max(values), "spread": max(values) - min(values), "room": room}


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", default=None, help="figure keys (default: all)")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "test_margins.json"))
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    from tfbin import _io

    result = json.load(open(args.out)) if os.path.exists(args.out) else {"figures": {}}
    keys = args.only or list(FIGURES)
    unknown = sorted(set(keys) - set(FIGURES))
    if unknown:
        parser.error(f"unknown figure keys {unknown}; known: {sorted(FIGURES)}")
    calls = sorted({FIGURES[k][:2] for k in keys})
    for module_file, function in calls:
        mine = [k for k in keys if FIGURES[k][:2] == (module_file, function)]
        for seed in args.seeds:
            for onednn in (0, 1):
                if all(any(r["seed"] == seed and r["onednn"] == onednn for r in result["figures"].get(k, {}).get("runs", []))
                       for k in mine):
                    continue
                cell = _cell(module_file, function, seed, onednn)
                for key in mine:
                    _, _, op, bound, what = FIGURES[key]
                    entry = result["figures"].get(key) or {"runs": []}
                    entry.update({"test": f"tests/{module_file}", "function": function, "what": what, "op": op, "bound": bound})
                    entry["runs"] = [r for r in entry["runs"] if (r["seed"], r["onednn"]) != (seed, onednn)] + [
                        {"seed": seed, "onednn": onednn, "value": cell["figures"][key], "seconds": cell["seconds"]}
                    ]
                    result["figures"][key] = summarize(entry)
                    print(f"{key}: seed {seed} oneDNN {onednn}: {cell['figures'][key]:.4f} ({cell['seconds']} s)", flush=True)
                result.update({
                    "command": "python bench/test_margins.py",
                    "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version()},
                    "date": datetime.date.today().isoformat(),
                })
                _io.write_text_atomic(args.out, json.dumps(result, indent=1, sort_keys=True) + "\n")
    # A bound changed in FIGURES since its cells ran: the entry is judged against the new one.
    for key in keys:
        if key in result["figures"]:
            _, _, op, bound, what = FIGURES[key]
            result["figures"][key] = summarize({**result["figures"][key], "op": op, "bound": bound, "what": what})
    _io.write_text_atomic(args.out, json.dumps(result, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(main())
