"""Regenerate the benchmark tables of README.md and docs/*.md from the committed JSON results.

    python bench/make_tables.py        # rewrites the blocks between <!-- bench:NAME --> markers
"""
import glob
import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def export_table(data):
    lines = [
        f"Measured by `{data['command']}` ({data['recipe']} recipe, untrained weights; host: {data['host']['cpus']} x86 cores; "
        f"TF {data['versions']['tensorflow']}, LCE {data['versions']['larq_compute_engine']}; {data['wall_seconds']:.0f} s).",
        "",
        "| model | input | binarized layers as LceBconv2d | .tflite | float TFLite | float / binary | binary / 1-bit limit | "
        "argmax agreement (n) | max abs diff | tie-free samples | agreement on tie-free | unexplained mismatches | "
        "host ms: LCE default / indirect BGEMM / float | export s: LCE alone / quick (×) / full |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["results"]:
        lat, p = r["latency"], r["parity"]
        if "tie_free_fraction" not in p:  # a row measured before tie-aware parity existed
            tie_free, tie_free_agreement, unexplained = "not measured", "—", "—"
        else:
            tie_free, unexplained = f"{p['tie_free_fraction']:.2f}", p["unexplained_mismatches"]
            tie_free_agreement = "— (none)" if p["tie_free_agreement"] is None else f"{p['tie_free_agreement']:.3f}"
        lines.append(
            f"| {r['model']} | {'×'.join(map(str, r['input_shape']))} | {r['lce_bconv_layers']}/{r['binarized_layers']} | "
            f"{r['size_bytes'] / 1024:,.0f} KiB | {r['float_size_bytes'] / 1024:,.0f} KiB | {r['float_over_binary']:.1f}× | "
            f"{r['binary_over_limit']:.3f} | {p['argmax_agreement']:.4f} ({p['samples']}) | "
            f"{p['max_abs_diff']:.2g} | {tie_free} | {tie_free_agreement} | {unexplained} | "
            f"{lat['lce_default_ms']:.2f} / {lat['lce_indirect_bgemm_ms']:.2f} / {lat['float_tflite_ms']:.2f} | "
            + (f"{r['lce_convert_s']:.1f} / {r['export_quick_s']:.1f} ({r['quick_over_lce']:.2f}×) / {r['export_full_s']:.1f} |"
               if "quick_over_lce" in r else "— |")
        )
    tolerance = next((r["parity"]["tie_ulps"] for r in data["results"] if "tie_ulps" in r["parity"]), 64)
    lines += [
        "",
        "Host latencies are x86 figures with LCE's Python interpreter; they do not stand for ARM (see docs/deploy.md for LCE's published ARM numbers).",
        "Parity is measured on untrained weights with randomized BatchNorm and uniform inputs. A sample is *tie-free* when every",
        f"binarized layer's pre-sign input (in Keras) is at least {tolerance:g} eps32 × m away from its threshold, m the largest",
        "magnitude of that tensor and of the float sum and summands a clip in front of it hides (`tfbin.export.ties.rounding_sources`);",
        "elsewhere TensorFlow's and TFLite's float kernels, which sum in different orders, may round an activation to",
        "different sides of the threshold, and one flipped sign can move a saturated softmax a lot (`tfbin.export.parity`).",
        "Every tie-free sample must agree (argmax, outputs within 1e-3); a disagreement there is an *unexplained mismatch* and",
        "fails a strict export. The larger the net, the more activations per sample and the fewer samples are tie-free.",
        f"*export s*: LCE's `convert_keras_model` alone on the rewritten hard model, the default export (`tfbin.export.convert(model)`, "
        f"quick verification; × LCE, target: {data.get('quick_target', '≤ 1.5×')}) and the full one (`verify=\"full\"`, on this bench's parity samples).",
    ]
    return "\n".join(lines)


def zoo_table(data):
    lines = [
        f"Measured by `{data['command']}` (`tfbin.models.summary`, {data['recipe']} recipe; larq-zoo models at 224×224×3 with 1000 classes).",
        "",
        "| model | input | parameters | MACs | binarized MAC ratio | model size | float32 size | binarized layers (LCE binary after export) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in data["results"]:
        lines.append(
            f"| {r['model']} | {'×'.join(map(str, r['input_shape']))} | {r['params'] / 1e6:.2f} M | {r['macs'] / 1e6:,.0f} M | "
            f"{r['binarized_mac_ratio']:.3f} | {r['model_size_bytes'] / 2**20:.2f} MiB | {r['float32_size_bytes'] / 2**20:.1f} MiB | "
            f"{r['binarized_layers']} ({r['lce_binary_layers']}) |"
        )
    return "\n".join(lines)


def training_cost_table(data):
    lines = [
        f"Measured by `{data['command']}` ({data['model']}, batch {data['batch_size']}, {data['rounds']} interleaved rounds of "
        f"{data['steps']} steps per recipe in one process; host: {data['host']['cpus']} x86 cores, TF {data['versions']['tensorflow']}).",
        "",
        "| recipe | ms / step (median) | vs `ste` | target | met | peak RSS | vs `ste` | memory target | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["results"]:
        target = f"≤ {r['target']}×" if r["target"] else "—"
        met = "—" if r["meets_target"] is None else ("yes" if r["meets_target"] else "**no**")
        memory_target = f"≤ {r['memory_target']}×" if r.get("memory_target") else "—"
        memory_met = "—" if r.get("meets_memory_target") is None else ("yes" if r["meets_memory_target"] else "**no**")
        lines.append(
            f"| `{r['recipe']}` | {r['step_ms']:.0f} | {r['ratio_vs_ste']:.3f}× | {target} | {met} | "
            f"{r['peak_rss_mib']:.0f} MiB | {r['peak_rss_vs_ste_mib']:+.0f} MiB | {memory_target} | {memory_met} |"
        )
    if "dab_split_ms" in data:
        lines += [
            "",
            f"`dab`'s exact split alone (a full per-channel sort of every binarized kernel, DAB's rule every step), "
            f"timed in the same rounds: {data['dab_split_ms']:.0f} ms, {data['dab_split_vs_ste_step']:.2f} of a `ste` step. "
            "The `dab` recipe pays it every `refresh_every`-th training step only (default 16, chosen on a "
            "validation split; see [How the defaults were chosen](#dab)).",
        ]
    lines += [
        "",
        "The machine is shared and its speed drifts; ratios moved by about ±0.1 between earlier runs of this benchmark.",
    ]
    return "\n".join(lines)


FLOAT_ARMS = ("float", "float_linear")  # full precision: the ReLU net one would deploy, and the recipes' net left float
PAPER_RECIPES = ("irnet", "self_binarizing", "abr", "dab", "irnet_cmim", "blrnet")  # each must reach ste (#14; blrnet: #20)


def _all_deployed(row):
    return bool(row) and row.get("deployed_runs", 0) == row["runs"]


def _against_ste_difference(summary, arm, dataset):
    """(difference in points, its standard error, "deployed"/"hard", runs, ste runs) of a recipe's
    mean against `ste`'s on one dataset, or None without both arms. Deployed means where both arms
    have the deployed figure for every run (as `tfbin train` ships them), else hard means. The
    standard error is unpaired, sqrt(s²/n + s_ste²/n_ste), None with fewer than 2 runs of either."""
    r, ste = summary[dataset].get(arm), summary[dataset].get("ste")
    if not r or not ste:
        return None
    kind = "deployed" if _all_deployed(r) and _all_deployed(ste) else "hard"
    key = "hard_deployed" if kind == "deployed" else "hard"
    diff = 100 * (r[f"{key}_mean"] - ste[f"{key}_mean"])
    se = None
    if r["runs"] >= 2 and ste["runs"] >= 2:
        se = 100 * (r[f"{key}_std"] ** 2 / r["runs"] + ste[f"{key}_std"] ** 2 / ste["runs"]) ** 0.5
    return diff, se, kind, r["runs"], ste["runs"]


def _against_ste(summary, datasets):
    """Each paper recipe's deployed mean minus `ste`'s, in points, with the standard error of
    that difference: whether a shortfall or a lead is larger than the spread between seeds."""
    lines = [
        "Paper recipes against `ste`, deployed, in points: difference of means ± its standard error "
        "(√(s²/n + s_ste²/n_ste) over seeds); |difference| below 2 standard errors is within the seed-to-seed spread.",
        "",
        "| recipe | " + " | ".join(datasets) + " |",
        "|---|" + "---|" * len(datasets),
    ]
    for arm in PAPER_RECIPES:
        cells = []
        for d in datasets:
            found = _against_ste_difference(summary, arm, d)
            if not found or found[1] is None or found[2] != "deployed":
                cells.append("—")
                continue
            diff, se, _, runs, ste_runs = found
            cells.append(f"{diff:+.2f} ± {se:.2f} ({runs} vs {ste_runs} runs)")
        lines.append(f"| `{arm}` | " + " | ".join(cells) + " |")
    return lines


def _against_ste_verdict(summary, arm) -> str:
    """Whether a paper recipe's mean reaches `ste`'s on every dataset: met, **not met**, so far
    (not yet 3 runs on every dataset) or — (not a paper recipe); deployed means where both arms
    have the deployed figure for every run, else hard means."""
    if arm not in PAPER_RECIPES:
        return "—"
    found = {d: _against_ste_difference(summary, arm, d) for d in summary}
    found = {d: f for d, f in found.items() if f}
    if not found:
        return "—"
    partial = any(runs < 3 for _, _, _, runs, _ in found.values())  # the target is a mean of 3 seeds
    rules = sorted({kind for _, _, kind, _, _ in found.values()})
    reached = all(diff >= 0 for diff, *_ in found.values())
    verdict = "**not met**" if not reached else "met" if len(found) == len(summary) and not partial else "so far"
    return verdict + f" ({', '.join(rules)})"


BEST_TARGET = 0.908  # #14: close at least half the gap between ste (89.2 %) and float (92.5 %)


def _best_binary(summary):
    """(arm, mean, "deployed"/"hard") of the best binary arm on Fashion-MNIST among those with 3
    runs or more (the target is a mean of 3 seeds), deployed where every run has that figure."""
    fm = {a: r for a, r in summary.get("fashion_mnist", {}).items()
          if a not in (*FLOAT_ARMS, "abr_float_weights") and r["runs"] >= 3}
    binary = {a: (r["hard_deployed_mean"], "deployed") if _all_deployed(r) else (r["hard_mean"], "hard") for a, r in fm.items()}
    if not binary:
        return None
    best = max(binary, key=lambda a: binary[a][0])
    return (best, *binary[best])


def accuracy_table(data):
    scored = "the whole 10,000-image test set" if not data.get("validation") else f"the last {data['validation']:,} training images (validation)"
    lines = [
        f"Measured by `python bench/accuracy_bench.py` (runs added across invocations, e.g. `--seeds 2 --arms ste,irnet`; the last: `{data['command']}`): `{data['model']}`, {data['epochs']} epochs, batch {data['batch_size']}, Adam {data['lr']}, "
        f"{data['train_samples']:,} training images, scored on {scored}; hard accuracy "
        "(what the exported model computes), mean ± std over seeds; gap = soft − hard; "
        "recal. = hard accuracy after `tfbin.recalibrate` (100 training batches); deployed (runs) = what `tfbin train` "
        "deploys: the recalibrated model when its hard accuracy on the first 2,000 training images does not drop, else the "
        "model as trained (recorded for runs made since the check was added).",
        "",
    ]
    summary = data["summary"]
    datasets = list(summary)
    head = "| arm | " + " | ".join(f"{d}: hard (runs) | gap | recal." for d in datasets) + " | ≥ `ste` on all |"
    lines += [head, "|---|" + "---|---|---|" * len(datasets) + "---|"]
    arms = [a for a in data.get("arms_order", [])] or list(dict.fromkeys(a for d in datasets for a in summary[d]))
    for arm in arms:
        cells = []
        for d in datasets:
            r = summary[d].get(arm)
            if not r:
                cells.append("— | — | —")
                continue
            recal = f"{r['hard_recalibrated_mean']:.4f}" if r.get("hard_recalibrated_mean") is not None else "—"
            if r.get("deployed_runs"):
                recal += f"; deployed {r['hard_deployed_mean']:.4f} ({r['deployed_runs']})"
            cells.append(f"{r['hard_mean']:.4f} ± {r['hard_std']:.4f} ({r['runs']}) | {r.get('soft_hard_gap_mean', 0.0):+.4f} | {recal}")
        lines.append(f"| `{arm}` | " + " | ".join(cells) + f" | {_against_ste_verdict(summary, arm)} |")
    lines += ["", *_against_ste(summary, datasets)]
    best = _best_binary(summary)
    if best:
        arm, value, kind = best
        lines += ["", f"Best binary arm on fashion_mnist with 3 or more runs: `{arm}` {value:.4f} ({kind}; target ≥ {BEST_TARGET}: {'met' if value >= BEST_TARGET else '**not met**'})."]
    lines += [
        "",
        "`float` is the float net one would deploy, `fmnist_small(activation=\"relu\")` (ReLU after every hidden BatchNorm); "
        "`float_linear` is the net the recipes binarize left in full precision with no activation (nearly linear; "
        "the `float` arm before issue #38 measured this net, and its runs are labelled so). "
        "`approx_sign`, `swish_sign`, `bireal` are larq's baselines beside `ste` (Bi-Real Net's ApproxSign, BNN+'s SwishSign, "
        "Bi-Real Net's ApproxSign with MagnitudeAwareSign kernels). "
        "`abr_float_weights` is ABR's paper setting (binary activations, float "
        "weights: not an LCE binary net); `irnet_kd` is `irnet` plus `Distillation` from the `float_linear` run of the same seed.",
        "Runs are added as they finish (`python bench/accuracy_bench.py` resumes); arms with fewer than 3 runs are partial.",
        "An arm shown with `key=value` ran its recipe with that parameter instead of the current default "
        "(e.g. `abr slope_growth=0.001`: `abr`'s default before it changed to 0).",
        "The verdict compares deployed means where the arm and `ste` both have the deployed figure for every run "
        "(marked *deployed*); otherwise hard means (*hard*).",
    ]
    return "\n".join(lines)


def _label(row):
    """A run's arm with its recipe arguments, as the benchmark's summary keys: `irnet t_min=0.1`."""
    return " ".join([row["arm"], *(f"{k}={json.dumps(v)}" for k, v in sorted((row.get("overrides") or {}).items()))])


def _longer_runs(results, defaults_only=False):
    """(arm label, seed, 3-epoch hard, longer hard) for each longer run with a 3-epoch run of its
    seed and its recipe arguments (`irnet t_max=10.0 t_min=0.1`: a previous default's runs)."""
    longer, base = results["longer"], results["accuracy"]
    same = lambda a, b: (a["arm"], a["dataset"], a["seed"], a.get("overrides") or {}, a.get("lr_decay", "constant")) == (  # noqa: E731
        b["arm"], b["dataset"], b["seed"], b.get("overrides") or {}, b.get("lr_decay", "constant"))
    for r in longer["runs"]:
        if defaults_only and (r.get("overrides") or r.get("lr_decay", "constant") != "constant"):
            continue
        short = [b for b in base["runs"] if same(b, r)]
        if short:
            yield _label(r), r["seed"], short[0]["hard_accuracy"], r["hard_accuracy"]


def longer_table(results):
    """The default recipe (`irnet`) trained 10 epochs against its 3-epoch runs of the same seeds."""
    lines = [
        f"Measured by `{results['longer']['command']}`: the same protocol for {results['longer']['epochs']} epochs (the schedules span them), "
        "against the same seed's 3-epoch run of the accuracy benchmark. Target: the 10-epoch run beats the 3-epoch one.",
        "",
        "| arm | seed | 3 epochs: hard | longer: hard | gain | target |",
        "|---|---|---|---|---|---|",
    ]
    for arm, seed, short, long in _longer_runs(results):
        lines.append(f"| `{arm}` | {seed} | {short:.4f} | {long:.4f} | {long - short:+.4f} | {'met' if long > short else '**not met**'} |")
    return "\n".join(lines)


def validation_table(data, out="bench/results/accuracy_val.json", screening=False):
    images = f" --train-images {data['train_samples']}" if screening else ""
    lines = [
        f"Every run of `python bench/accuracy_bench.py --validation {data['validation']}{images} --out {out} "
        f"--seeds S --datasets DATASET --arms ARM [--override KEY=JSON ...]`: "
        f"`{data['model']}`, {data['epochs']} epochs, trained on the first {data['train_samples']:,} training "
        f"images of the dataset in the first column, scored on the last {data['validation']:,} (the test set is not "
        "used). "
        + ("Cheaper screening runs (a third of the steps), confirmed on the split above before a default changes; "
           "overrides are relative to the current defaults." if screening else "Defaults are chosen here.")
        + " *deployed*: after `tfbin.recalibrate` where the check on 2,000 training images kept it (runs made since "
        "that figure was recorded).",
        "",
        "| dataset | arm | seed | overrides | soft | hard | recal. | deployed | ms / step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = sorted(data["runs"], key=lambda r: (r["dataset"], r["arm"], -r["hard_accuracy"]))
    for r in rows:
        decay = [f"lr_decay={r['lr_decay']}"] if r.get("lr_decay") else []
        over = ", ".join([*(f"{k}={v}" for k, v in sorted(r.get("overrides", {}).items())), *decay]) or "defaults"
        recal = f"{r['hard_accuracy_recalibrated']:.4f}" if r.get("hard_accuracy_recalibrated") is not None else "—"
        deployed = f"{r['hard_accuracy_deployed']:.4f}" if r.get("hard_accuracy_deployed") is not None else "—"
        lines.append(f"| {r['dataset']} | `{r['arm']}` | {r['seed']} | {over} | {r['soft_accuracy']:.4f} | {r['hard_accuracy']:.4f} | {recal} | {deployed} | {r['step_ms']:.0f} |")
    lines += ["", "ms / step was measured while other jobs shared the 2 cores: compare it within `bench/training_cost.py`, not here."]
    return "\n".join(lines)


def screening_table(data):
    return validation_table(data, "bench/results/accuracy_screen.json", screening=True)


def _values(values):
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def tuning_table(data):
    if data.get("protocol") != "hyperband-data-fraction":  # round 1's protocol, until the current one reports
        s, d = data["searched_hard_test_accuracy"], data["default_hard_test_accuracy"]
        return "\n".join([
            f"Round 1's protocol (`{data['command']}`, code since replaced): {data['tuner']} over irnet's schedule, {data['trials']} trials of "
            f"{data['search_epochs']} epochs on {data['search_samples']:,} images; then {data['final_epochs']} epochs on "
            f"{data['final_samples']:,} images per seed {data['seeds']}: defaults {d['mean']:.4f} ± {d['std']:.4f}, "
            f"searched ({_values(data['best_values'])}) {s['mean']:.4f} ± {s['std']:.4f}. The current benchmark has not reported yet.",
        ])
    lines = [
        f"Measured by `{data['command']}`: per recipe, `tfbin tune`'s Hyperband (23 trials over the fraction of training data, "
        f"each {data['epochs']} epochs with whole schedules) on the recipe's search ranges and Adam's lr, trained on the first "
        f"{data['search_train_samples']:,} Fashion-MNIST training images and scored on the last {data['validation_samples']:,}; "
        "then the best recipe trained on all 60,000 per seed and scored once on the 10,000-image test set, beside the defaults' runs "
        "of the accuracy benchmark (same protocol, same seeds). Targets: searched ≥ defaults + 0.5 point at ≤ 8× one training run. "
        "Cost: the trials' training seconds over the median `train_seconds` of the recipe's full runs (time, which other jobs on the "
        "2 cores inflate), and the training images the trials processed over one full run's (work, independent of the machine's load; "
        "the target is judged on it). The objective: the validation hard accuracy after `tfbin train`'s BN recalibration check; "
        "a search recorded without `objective` scored the moving BN statistics of training (before that check was part of a trial).",
        "",
        "| recipe | search: trials, cost vs one run: time (work) | best on validation (defaults') | searched values | defaults before the search: test | searched: test | gain | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in data["recipes"].items():
        search = e.get("search")
        if not search:
            continue
        work = sum(t["data"] for t in search["table"]) * data["search_train_samples"] / data["full_run_train_samples"]
        cost = f"{e['search_cost_vs_one_training_run']:.1f}×" if "search_cost_vs_one_training_run" in e else f"{search['trial_seconds']:.0f} s"
        cost += f" ({work:.1f}×)" + ("" if search.get("objective") else "; without BN recalibration")
        s, d = e.get("searched_hard_test_accuracy"), e.get("default_hard_test_accuracy")
        fmt = lambda x: f"{x['mean']:.4f} ± {x['std']:.4f} ({len(x['runs'])})" if x else "running"  # noqa: E731
        if s and d:
            met = e["gain"] >= 0.005 and work <= 8
            gain = f"{100 * e['gain']:+.2f} pt" + ("" if e["gain_exceeds_seed_spread"] else " (within the seeds' spread)")
            target = "met" if met else "not met"
        else:
            gain, target = "—", "running"
        share = "all" if search["defaults_data_fraction"] >= 1 else f"{search['defaults_data_fraction']:.2g}"
        defaults_val = f" (defaults {search['defaults_validation_hard_accuracy']:.4f} on {share} of the data)"
        lines.append(
            f"| `{name}` | {search['trials']}, {cost} | {search['best_validation_hard_accuracy']:.4f}{defaults_val} | "
            f"{_values(search['best_values'])} | {fmt(d)} | {fmt(s)} | {gain} | {target} |"
        )
    return "\n".join(lines)


def demo_table(data):
    s = data["summary"]
    size = s["tflite_bytes"]
    params = {k: v for k, v in s["recipe_params"].items() if k not in ("epochs", "keep_full_precision")}
    return "\n".join([
        f"Measured by `{data['command']}` on the 2-core development machine ({data['wall_seconds']:.0f} s in all, of which "
        f"training {s['train_seconds']:.0f} s; data and packages already set up) with `{s['recipe']}` ({_values(params)}); "
        "copied from `demo_out/summary.json`:",
        "",
        "| soft acc | hard acc | TFLite acc (10,000 test images) | TFLite / Keras agreement | .tflite | vs float TFLite | vs 1-bit limit | binarized layers as LceBconv2d |",
        "|---|---|---|---|---|---|---|---|",
        f"| {s['soft_accuracy']:.4f} | {s['hard_accuracy']:.4f} | {s['tflite_accuracy']:.4f} | {s['tflite_keras_agreement']:.4f} | "
        f"{size:,} B | {s['float_tflite_bytes'] / size:.1f}× smaller | {size / s['one_bit_limit_bytes']:.2f}× | {s['binarized_layers_as_lce_bconv']} |",
    ])


def pbgnet_table(runs):
    lines = [
        "| task | prior | n (bound) | train time | test error of F | test linear loss | bound (linear loss, δ = 0.05) | bound − test linear loss | KL | sign net test error |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {"init": 0, "zero": 1, "pretrain": 2}
    for r in sorted(runs, key=lambda r: (r["task"], order.get(r["args"]["prior"], 3))):
        prior = r["args"]["prior"]
        if prior == "pretrain":
            prior = f"pretrain ({r['n_prior']:,} other images)"
        b = r["bound"]
        lines.append(
            f"| {r['task']} | {prior} | {r['n_train']:,} | {r['train_seconds']:.0f} s | {100 * r['test_error']:.2f}% | "
            f"{100 * r['test_linear_loss']:.2f}% | {100 * b['bound']:.2f}% | {100 * (b['bound'] - r['test_linear_loss']):.2f} pt | "
            f"{b['kl']:.3g} | {100 * r['sign_net_test_error']:.2f}% |"
        )
    commands = sorted({r["command"] for r in runs})
    lines += ["", "Commands: " + "; ".join(f"`{c}`" for c in commands) + "."]
    return "\n".join(lines)


def margins_table(data):
    """Each trained figure a test bounds: the bound, the measured range and the room left."""
    lines = [
        "| figure (test) | what | bound | measured min … max | room | runs |",
        "|---|---|---|---|---|---|",
    ]
    for key, f in sorted(data["figures"].items()):
        lines.append(
            f"| `{key}` (`{f['test']}`) | {f['what'].replace('|', chr(92) + '|')} | {f['op']} {f['bound']:g} | {f['min']:.4g} … {f['max']:.4g} | "
            f"{f['room']:.4g} | {len(f['runs'])} (seeds {', '.join(str(s) for s in sorted({r['seed'] for r in f['runs']}))} × oneDNN 0/1) |"
        )
    machine = data["machine"]
    lines += ["", f"Measured by `{data['command']}` on {machine['cpu']} ({machine['cores']} cores), {data['date']}."]
    return "\n".join(lines)




RECIPES = ("float", "float_linear", "ste", "approx_sign", "swish_sign", "bireal", "irnet", "dab", "self_binarizing", "abr", "irnet_cmim", "abc", "blrnet")

LARQ_BASELINES = ("ste", "approx_sign", "swish_sign", "bireal")  # tfbin.recipes.LARQ_BASELINES (not imported: no TensorFlow here)
CIFAR_RECIPES = ("irnet", "self_binarizing", "abr", "dab", "irnet_cmim", "abc", "blrnet")


def _deployed(row):
    """What a run ships: the deployed hard accuracy of a binary run, the accuracy of a float one."""
    return row.get("hard_accuracy_deployed", row["hard_accuracy"])


def _cifar_by_seed(runs, arm) -> dict:
    """{seed: deployed accuracy} of one CIFAR-10 arm."""
    return {r["seed"]: _deployed(r) for r in runs if r["arm"] == arm}


def _cifar_larq_best_at(runs, seed):
    """(arm, accuracy) of larq's best baseline run at `seed`, or None."""
    found = [(arm, _cifar_by_seed(runs, arm)[seed]) for arm in LARQ_BASELINES if seed in _cifar_by_seed(runs, arm)]
    return max(found, key=lambda kv: kv[1]) if found else None


def _cifar_versus(runs, arm, reference):
    """`(mean difference, seeds)`: arm − `reference(seed)` averaged over the arm's seeds where the
    reference is measured (seed by seed, so that arms with more seeds are compared fairly)."""
    pairs = [(seed, value - reference(seed)) for seed, value in _cifar_by_seed(runs, arm).items() if reference(seed) is not None]
    return (sum(d for _, d in pairs) / len(pairs), [s for s, _ in pairs]) if pairs else (None, [])


def _seeds_text(used) -> str:
    return f"seed{'s' if len(used) > 1 else ''} {', '.join(map(str, used))}"


def cifar10_table(data):
    """Every CIFAR-10 arm: hard and deployed test accuracy, the gap, the export and the step time."""
    runs, summary = data["runs"], data["summary"]["cifar10"]
    best_at = lambda seed: (_cifar_larq_best_at(runs, seed) or (None, None))[1]  # noqa: E731
    arms = [a for a in RECIPES if a in summary]
    missing = [a for a in ("float", *LARQ_BASELINES, *CIFAR_RECIPES) if a not in summary]
    lines = [
        f"Measured by `{data['command']}` (runs added across invocations): `{data['model']}` 1W/1A, {data['epochs']} epochs, "
        f"batch {data['batch_size']}, {data['optimizer']}, the papers' augmentation (4-pixel pad + random crop, flip), "
        f"{data['data']}; scored on {data['scored_on']}. *deployed*: the hard model after `tfbin.recalibrate` when that does not "
        "lower the hard accuracy on 2,000 training images (what `tfbin train` ships); the float arm is the papers' float net "
        "(He et al.'s ResNet-20; VGG-Small with ReLU). "
        "*vs larq's best*: deployed accuracy minus that of larq's best baseline run at the same seed, averaged over "
        "the arm's seeds that have one. *export*: binarized convs that became `LceBconv2d` / binarized "
        "layers, and the lowest TFLite/Keras argmax agreement on the test images (with, where measured, the disagreements "
        "on tie-free images: no sign within rounding of its threshold explains them, and the share of tie-free test images; "
        "the rule as in the export table below, `cifar_bench.py --reexport` re-measures kept runs after a change of it). Step time on a shared 2-core host "
        f"({data['host']['cpus']} CPUs), median of epochs 2+.",
        "",
        "| arm | runs | hard | deployed | vs larq's best | soft − hard | export | agreement | ms / step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm]
        s = summary[arm]
        spread = lambda key: f" ± {s[key]:.4f}" if s.get(key) is not None else ""  # noqa: E731
        dep = f"{s['hard_deployed_mean']:.4f}{spread('hard_deployed_std')}" if s.get("hard_deployed_mean") is not None else "—"
        difference, used = _cifar_versus(runs, arm, best_at)
        versus = f"{100 * difference:+.2f}" + (f" ({_seeds_text(used)})" if len(used) < s["runs"] else "") if difference is not None else "—"
        exported = [r for r in mine if "lce_bconv_layers" in r]
        export = ", ".join(sorted({f"{r['lce_bconv_layers']}/{r['binarized_layers']}" for r in exported})) or "—"
        agreement = f"{s['tflite_agreement_min']:.4f}" if s.get("tflite_agreement_min") is not None else "—"
        unexplained = [r["unexplained_mismatches"] for r in mine if "unexplained_mismatches" in r]
        tie_free = [r["tie_free_fraction"] for r in mine if "tie_free_fraction" in r]
        agreement += f" ({sum(unexplained)} unexplained; tie-free {min(tie_free):.1%})" if unexplained else ""
        lines.append(f"| `{arm}` | {s['runs']} | {s['hard_mean']:.4f}{spread('hard_std')} | {dep} | {versus} "
                     f"| {100 * s['soft_hard_gap_mean']:+.2f} | {export} | {agreement} | {s['step_ms_median'] or '—'} |")
    if missing:
        lines += ["", "Not measured yet: " + ", ".join(f"`{a}`" for a in missing) + "."]
    return "\n".join(lines)


def cifar10_targets(results):
    """#38's targets on CIFAR-10 ResNet-20, each met / not met / so far, from the committed JSON.
    Arms are compared seed by seed (differences averaged over the seeds both have), so that an
    arm with more seeds is not set against another's single seed."""
    runs = results["cifar10"]["runs"]
    seeds = sorted({r["seed"] for r in runs})
    rows = []

    by_seed = lambda arm: _cifar_by_seed(runs, arm)  # noqa: E731
    larq_best_at = lambda seed: _cifar_larq_best_at(runs, seed)  # noqa: E731
    versus = lambda arm, reference: _cifar_versus(runs, arm, reference)  # noqa: E731
    best_value = lambda seed: (larq_best_at(seed) or (None, None))[1]  # noqa: E731
    title = "`irnet` ≥ larq's best baseline + 1.0 point on every seed"
    cells = [(seed, 100 * (value - best_value(seed)), larq_best_at(seed)[0], [a for a in LARQ_BASELINES if seed not in by_seed(a)])
             for seed, value in sorted(by_seed("irnet").items()) if best_value(seed) is not None]
    if cells:
        complete = len(cells) >= 2 and not any(missing for *_, missing in cells)
        status = "**not met**" if any(d < 1.0 for _, d, _, _ in cells) else ("met" if complete else "so far met")
        rows.append((title, status, "; ".join(
            f"seed {s}: {d:+.2f} against `{b}`" + (f" ({', '.join(f'`{m}`' for m in missing)} not run at seed {s})" if missing else "")
            for s, d, b, missing in cells)))
    else:
        rows.append((title, "not measured yet", "—"))
    ste = lambda seed: by_seed("ste").get(seed)  # noqa: E731
    recipes = [a for a in CIFAR_RECIPES if by_seed(a)]
    unmeasured = [a for a in CIFAR_RECIPES if not by_seed(a)]
    if by_seed("ste") and recipes:
        cells = []
        for arm in recipes:
            d_ste, used_ste = versus(arm, ste)
            d_best, used_best = versus(arm, best_value)
            cells.append((arm, d_ste, used_ste, d_best, used_best))
        below = [c for c in cells if c[1] is not None and c[1] <= 0]
        status = "**not met**" if below else ("met" if not unmeasured else "so far met")
        rows.append(("every paper recipe beats larq's `ste`", status,
                     "; ".join(f"`{a}` {100 * ds:+.2f} vs `ste` ({_seeds_text(us)}), {100 * db:+.2f} vs larq's best ({_seeds_text(ub)})"
                               for a, ds, us, db, ub in cells if ds is not None)
                     + (f"; not measured yet: {', '.join(f'`{a}`' for a in unmeasured)}" if unmeasured else "")))
    title = "the best 1-bit recipe closes ≥ half the gap from larq's best to float"
    flt = by_seed("float")
    common = lambda arm: [s for s in by_seed(arm) if s in flt and best_value(s) is not None]  # noqa: E731
    scored = [(arm, common(arm)) for arm in recipes if common(arm)]
    if flt and scored:
        mean_over = lambda values, used: sum(values[s] for s in used) / len(used)  # noqa: E731
        arm, used = max(scored, key=lambda kv: mean_over(by_seed(kv[0]), kv[1]))
        top, base, ceiling = mean_over(by_seed(arm), used), sum(best_value(s) for s in used) / len(used), mean_over(flt, used)
        closed = (top - base) / (ceiling - base) if ceiling > base else float("nan")
        rows.append((title, "met" if closed >= 0.5 else "**not met**",
                     f"`{arm}` {top:.4f}, larq's best {base:.4f}, float {ceiling:.4f} ({_seeds_text(used)}): {100 * closed:.0f} % of the gap closed"))
    elif not flt:
        rows.append((title, "not yet", "the float net (He et al.'s ResNet-20) has no run yet"))
    binary = [r for r in runs if r["arm"] != "float"]
    if binary:
        gap = max(binary, key=lambda r: abs(r["soft_accuracy"] - r["hard_accuracy"]))
        agree = min(binary, key=lambda r: r.get("tflite_keras_agreement", 1.0))
        fused = all(r.get("lce_bconv_layers") == r.get("binarized_layers") for r in binary)
        ok = abs(gap["soft_accuracy"] - gap["hard_accuracy"]) < 0.005 and agree.get("tflite_keras_agreement", 0) >= 0.999 and fused
        rows.append(("soft–hard gap < 0.5 point, TFLite agreement ≥ 0.999, every binarized conv an `LceBconv2d`, every run",
                     "met" if ok else "**not met**",
                     f"largest gap `{gap['arm']}` seed {gap['seed']} {100 * (gap['soft_accuracy'] - gap['hard_accuracy']):+.2f}; "
                     f"lowest agreement `{agree['arm']}` seed {agree['seed']} {agree.get('tflite_keras_agreement')}; "
                     f"{'all' if fused else 'not all'} binarized layers fused"))
    fmnist = results.get("accuracy", {}).get("summary", {}).get("fashion_mnist", {})
    need = ("float", *LARQ_BASELINES)
    done = [a for a in need if fmnist.get(a, {}).get("runs", 0) >= 3]
    rows.append(("Fashion-MNIST redone with the ReLU float net and larq's baselines (3 seeds)",
                 "met" if len(done) == len(need) else "not yet",
                 f"3 seeds: {', '.join(f'`{a}`' for a in done) or 'none'}; missing: {', '.join(f'`{a}`' for a in need if a not in done) or 'none'}"))
    lines = [
        f"The targets of the CIFAR-10 work (issue #38), from `bench/results/cifar10.json` ({results['cifar10']['model']}, "
        f"{results['cifar10']['epochs']} epochs, seeds {', '.join(map(str, seeds))}, deployed accuracy, whole test set; "
        "table in [docs/benchmarks.md](docs/benchmarks.md#cifar-10-resnet-20)).",
        "",
        "| target | status | measured |",
        "|---|---|---|",
        *(f"| {t} | {s} | {m} |" for t, s, m in rows),
    ]
    return "\n".join(lines)


def summary_table(results):
    """One row per recipe from three benchmarks: the seed-0 validation run of its defaults, the
    full-data test accuracy and the training cost."""
    val = {r["arm"]: r for r in results["validation"]["runs"]
           if r["dataset"] == "fashion_mnist" and r["seed"] == 0 and not r.get("overrides") and not r.get("lr_decay")}
    test = results["accuracy"]["summary"].get("fashion_mnist", {})
    cost = {r["recipe"]: r for r in results["training_cost"]["results"]}
    lines = [
        "Fashion-MNIST, `fmnist_small`, 3 epochs, hard accuracy (what the exported model computes). *validation*: trained on 50,000 training images, "
        "scored on the other 10,000 (where defaults are chosen; seed 0); *test*: trained on all 60,000, scored on the 10,000-image "
        "test set, mean ± std over seeds (n); *deployed*: what `tfbin train` ships, the model after `tfbin.recalibrate` "
        "when that does not lower the hard accuracy on 2,000 training images; *cost*: training step time against larq's `ste` in one process. "
        "Details and every run: [docs/benchmarks.md](docs/benchmarks.md).",
        "",
        "| recipe | validation | test (n) | test, deployed (n) | cost vs `ste` |",
        "|---|---|---|---|---|",
    ]
    for name in RECIPES:
        v, s, c = val.get(name), test.get(name), cost.get(name)
        validation = f"{v['hard_accuracy']:.4f}" if v else "not measured"
        spread = f" ± {s['hard_std']:.4f}" if s and s["runs"] > 1 else ""
        tested = f"{s['hard_mean']:.4f}{spread} ({s['runs']})" if s else "not measured yet"
        ratio = f"{c['ratio_vs_ste']:.2f}×" if c else "—"
        deployed = "—" if name in FLOAT_ARMS else "not measured yet"
        if s and s.get("deployed_runs"):
            d_spread = f" ± {s['hard_deployed_std']:.4f}" if s.get("hard_deployed_std") is not None else ""
            deployed = f"{s['hard_deployed_mean']:.4f}{d_spread} ({s['deployed_runs']})"
        lines.append(f"| `{name}` | {validation} | {tested} | {deployed} | {ratio} |")
    return "\n".join(lines)


def _paired_against_ste(runs, arm, dataset):
    """[(seed, points)] of a recipe's deployed accuracy minus `ste`'s on the same seed (same
    initial weights and data order), default runs only, where both have the deployed figure."""
    def deployed(name):
        return {r["seed"]: r["hard_accuracy_deployed"] for r in runs
                if r["arm"] == name and r["dataset"] == dataset and not r.get("overrides") and r.get("lr_decay", "constant") == "constant"
                and r.get("hard_accuracy_deployed") is not None}
    mine, ste = deployed(arm), deployed("ste")
    return [(seed, 100 * (mine[seed] - ste[seed])) for seed in sorted(mine) if seed in ste]


def _paired_cells(runs, arm, datasets):
    cells = []
    for d in datasets:
        pairs = _paired_against_ste(runs, arm, d)
        if pairs:
            cells.append(f"{d} " + ", ".join(f"{diff:+.2f} (seed {seed})" for seed, diff in pairs))
    return "; ".join(cells)


def _paired_text(results, arm, datasets):
    """`arm` against `ste` seed by seed on the test set, and on the validation split if it has pairs."""
    text = f"test: {_paired_cells(results['accuracy']['runs'], arm, datasets)}"
    validation = _paired_cells(results["validation"]["runs"], arm, datasets) if "validation" in results else ""
    return text + (f"; validation split (where the defaults were chosen): {validation}" if validation else "")


def targets_table(results):
    """#14's four targets, each marked met / not met from the committed benchmark JSON."""
    summary = results["accuracy"]["summary"]
    rows = []
    verdicts = {arm: _against_ste_verdict(summary, arm) for arm in PAPER_RECIPES}
    short = [arm for arm, v in verdicts.items() if v.startswith("**not met**")]
    unmeasured = [arm for arm, v in verdicts.items() if v == "—" or v.startswith("so far")]
    status = "**not met**" if short else "met" if not unmeasured else "so far"
    def shortfalls(arm):
        cells = []
        for d in summary:
            found = _against_ste_difference(summary, arm, d)
            if found and found[0] < 0:
                diff, se, kind, _, _ = found
                cells.append(f"{d} {diff:+.2f}" + (f" ± {se:.2f}" if se is not None else "") + ("" if kind == "deployed" else " (hard)"))
        return ", ".join(cells)

    rows.append(("every paper recipe ≥ `ste` on Fashion-MNIST and MNIST (deployed means)", status,
                 ("below `ste` (points): " + "; ".join(f"`{a}` {shortfalls(a)}" for a in short) if short else "all at or above")
                 + (f"; fewer than 3 runs on a dataset so far: {', '.join(f'`{a}`' for a in unmeasured)}" if unmeasured else "")
                 + "".join(f". `{a}` against `ste` seed by seed, {_paired_text(results, a, summary)}" for a in short)))
    best = _best_binary(summary)
    if best:
        arm, value, kind = best
        rows.append((f"best recipe ≥ {100 * BEST_TARGET:.1f} % on Fashion-MNIST", "met" if value >= BEST_TARGET else "**not met**",
                     f"`{arm}` {value:.4f} ({kind})"))
    gaps = {(arm, d): r["soft_hard_gap_mean"] for d in summary for arm, r in summary[d].items() if arm in PAPER_RECIPES}
    if gaps:
        (arm, d), worst = max(gaps.items(), key=lambda kv: abs(kv[1]))
        rows.append(("soft–hard gap < 0.5 point for every recipe", "met" if abs(worst) < 0.005 else "**not met**",
                     f"largest: `{arm}` on {d}, {100 * worst:+.2f} points"))
    if "longer" in results:
        longer = list(_longer_runs(results, defaults_only=True))
        for arm, seed, short, long in longer:
            rows.append((f"the default recipe (`{arm}`) trained {results['longer']['epochs']} epochs beats 3 (seed {seed})",
                         "met" if long > short else "**not met**", f"{short:.4f} → {long:.4f}"))
        if not longer:  # e.g. the default changed since the longer run: its run is labeled with the old values
            rows.append((f"the default recipe trained {results['longer']['epochs']} epochs beats 3", "not measured yet",
                         "no longer run of the current defaults with a 3-epoch run of its seed"))
    lines = [
        "The targets of the accuracy work (issue #14), from `bench/results/accuracy.json` (mean of 3 seeds, "
        "whole test sets; details in [docs/benchmarks.md](docs/benchmarks.md#accuracy-at-equal-budget)).",
        "",
        "| target | status | measured |",
        "|---|---|---|",
        *(f"| {t} | {s} | {m} |" for t, s, m in rows),
    ]
    return "\n".join(lines)


def _met(value) -> str:
    return "—" if value is None else ("yes" if value else "**no**")


def keras3_parity_table(data):
    """#40's targets, Keras 3 against Keras 2 per recipe (bench/keras3_parity.py): hard accuracy over
    seeds, the op histograms of the exports, tie-free agreement and the step-time ratio."""
    lines = [
        f"Measured by `{data['command']}` (runs added across invocations): `{data['model']}` on Fashion-MNIST, {data['epochs']} epochs, batch "
        f"{data['batch_size']}, Adam {data['lr']:g}, {data['train_samples']:,} training images, scored on {data['scored_on']}; "
        "per recipe and seed the Keras 2 run and then the Keras 3 run in one process, the Keras 3 net starting from the Keras 2 "
        f"net's initial weights (host: {data['host']['cpus']} CPUs, shared; TF {data['versions']['tensorflow']}, "
        f"Keras {data['versions']['keras']}, tf-keras {data['versions']['tf_keras']}). *accuracy*: |mean hard accuracy, Keras 3 − "
        "Keras 2| within the Keras 2 seed std. *agreement*: the exported flatbuffer in LCE's interpreter against the hard Keras "
        "model on the test images, raw / on tie-free samples (lowest over seeds). *step*: median over seeds of each pair's "
        "Keras 3 / Keras 2 median step time (epochs 2+), target ≤ 1.05×.",
        "",
        "| recipe | seeds | hard: Keras 2 | hard: Keras 3 | \|difference\| | accuracy met | deployed: Keras 2 / Keras 3 | "
        "same op histogram | agreement: Keras 2 | agreement: Keras 3 | tie-free 1.000 | ms / step: Keras 2 / Keras 3 | step ratio | step met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    spread = lambda s, key: f" ± {s[key]:.4f}" if s.get(key) is not None else ""  # noqa: E731
    fixed = lambda value, digits=4: "—" if value is None else f"{value:.{digits}f}"  # noqa: E731
    for recipe, entry in data["summary"].items():
        k2, k3, t = entry["keras2"], entry["keras3"], entry.get("targets", {})
        hard = [f"{fixed(s['hard_mean'])}{spread(s, 'hard_std')}" if s["runs"] else "—" for s in (k2, k3)]
        agreement = [f"{fixed(s['argmax_agreement_min'])} / {fixed(s['tie_free_agreement_min'], 3)}" for s in (k2, k3)]
        ratio = "—" if t.get("step_ratio") is None else f"{t['step_ratio']:.3f}×"
        lines.append(
            f"| `{recipe}` | {min(k2['runs'], k3['runs'])} | {hard[0]} | {hard[1]} | {fixed(t.get('hard_mean_difference'))} | "
            f"{_met(t.get('accuracy_met'))} | {fixed(k2['deployed_mean'])} / {fixed(k3['deployed_mean'])} | "
            f"{_met(t.get('histograms_equal'))} | {agreement[0]} | {agreement[1]} | {_met(t.get('tie_free_agreement_met'))} | "
            f"{fixed(k2['step_ms_median'], 1)} / {fixed(k3['step_ms_median'], 1)} | "
            f"{ratio} | {_met(t.get('step_met'))} |"
        )
    different = [(r["recipe"], r["seed"]) for r in data["runs"] if r["path"] == "keras3"
                 and any(o["op_histogram"] != r["op_histogram"] for o in data["runs"]
                         if o["path"] == "keras2" and (o["recipe"], o["seed"]) == (r["recipe"], r["seed"]))]
    if different:
        recipe, seed = different[0]
        pair = {r["path"]: r["op_histogram"] for r in data["runs"] if (r["recipe"], r["seed"]) == (recipe, seed)}
        ops = sorted(set(pair["keras2"]) | set(pair["keras3"]))
        lines += ["", f"Op histograms that differ (`{recipe}`, seed {seed}; ops whose counts differ): "
                  + ", ".join(f"{op} {pair['keras2'].get(op, 0)} / {pair['keras3'].get(op, 0)}" for op in ops
                              if pair["keras2"].get(op, 0) != pair["keras3"].get(op, 0)) + " (Keras 2 / Keras 3)."]
    return "\n".join(lines)


def data_table(data):
    """tfbin's CIFAR-10 copy (bench/data_bench.py): preparing it, an epoch of it against decoding the
    JPEG files directly, and the channel statistics of its training images."""
    runs, epoch, stats = data["prepare"], data["epoch"], data["statistics"]
    archive = data["archive"]
    lines = [
        f"Measured by `{data['command']}` on {data['dataset']} (`{archive['name']}`, {archive['bytes'] / 1e6:.1f} MB), "
        f"{data['wall_seconds']:.0f} s in all; host: {data['host']['cpus']} CPUs, shared (load average "
        f"{data['load_average']['before'][0]:.1f} at the start, {data['load_average']['after'][0]:.1f} at the end); "
        f"TF {data['versions']['tensorflow']}, TFDS {data['versions']['tensorflow_datasets']}.",
        "",
        "| what | seconds |",
        "|---|---|",
    ]
    for i, r in enumerate(runs, 1):
        lines.append(
            f"| preparing the copy (`tfbin data cifar10 --manual-dir`), run {i}: scan + writing | {r['seconds']:.0f} "
            f"({r['scan_seconds']:.0f} + {r['write_seconds']:.0f}) |"
        )
    batches = f"{epoch['images']:,} training images, batch {epoch['batch_size']}"
    lines += [
        f"| one epoch of the prepared copy (`load(\"cifar10\", \"train\")`), {batches}: first pass | {epoch['prepared_first_s']:.1f} |",
        f"| the same, second pass (TFDS caches a dataset this small in memory) | {epoch['prepared_second_s']:.1f} |",
        f"| one epoch decoding the extracted JPEG files directly (`read_file` + `decode_jpeg`, parallel map), {batches} "
        f"| {epoch['jpeg_direct_s']:.1f} |",
        "",
        f"TFRecords written: {runs[-1]['tfrecord_bytes'] / 1e6:.0f} MB in {runs[-1]['tfrecord_files']} files"
        + (f"; the {len(runs)} runs wrote byte-identical TFRecords." if len(runs) > 1 and data["prepare_identical"]
           else "; the runs wrote **different** TFRecords." if len(runs) > 1 else "."),
        "*scan*: reading the archive, checking its layout and decoding every image before anything is written "
        "(the `scan_seconds` of the copy's `metadata.json`)."
        + (" Run 1 is the process's first and also pays its one-time costs (importing TFDS, among others)." if len(runs) > 1 else ""),
        "",
        f"Channel statistics of the {stats['images']:,} training images as `load` gives them ([0, 1], float64 "
        "accumulation), beside the torchvision constants `cifar_normalize` defaults to (`CIFAR10_MEAN`, `CIFAR10_STD`, "
        "figures of the upstream data):",
        "",
        "| channel | mean | std over all pixels | mean per-image std | `CIFAR10_MEAN` | mean − `CIFAR10_MEAN` | `CIFAR10_STD` |",
        "|---|---|---|---|---|---|---|",
    ]
    for c, channel in enumerate(("R", "G", "B")):
        mean, ref = stats["mean"][c], stats["reference_mean"][c]
        lines.append(
            f"| {channel} | {mean:.4f} | {stats['std_all_pixels'][c]:.4f} | {stats['mean_per_image_std'][c]:.4f} | "
            f"{ref:.4f} | {round(mean - ref, 4) + 0.0:+.4f} | {stats['reference_std'][c]:.4f} |"  # + 0.0: no -0.0000
        )
    return "\n".join(lines)


def keras3_jax_table(data):
    """#40's JAX measurement (bench/keras3_jax.py): per quantizer, which checks pass on Keras 3's
    JAX backend as the code is, and for larq's twins with the probed fix."""
    checks = ("forward_eager", "forward_jit", "jax_grad", "fit_jit_default", "fit_jit_false", "recalibrate", "export")
    summary, versions = data["summary"], data["versions"]
    as_is, probed = summary["passed, the repository as it is (past the import guard)"], summary["passed, larq twins with the proposed fix (probe)"]
    grads = summary["probe max |jax.grad - TensorFlow gradient|"]
    scheduler = summary["SharpeningScheduler in fit on JAX (probe quantizer), update_freq"]
    first_error = lambda name: next((v["error"].split("] ")[0].lstrip("[") for v in data["jax"]["quantizers"][name].values()  # noqa: E731
                                     if isinstance(v, dict) and v.get("error")), "—")
    lines = [
        f"Measured by `{data['command']}` ({data['wall_seconds']:.0f} s; JAX {versions['jax']}, Keras {versions['keras']}, "
        f"TensorFlow {versions['tensorflow']}, LCE {versions['larq-compute-engine']}): each check on the JAX backend against the "
        "TensorFlow backend's values on the same inputs and initial weights. `import tfbin.keras3` under JAX: "
        f"{'passes' if summary['import tfbin.keras3 under jax'] else 'refused (the package checks for the TensorFlow backend)'}; "
        "the rows load its modules past that check. *probe*: the larq twins with `tfbin.formulas.sign`/`ste_sign` and "
        "`binary_quantizers.as_tensor` replaced by `keras.ops` versions in the process (the fix in the JSON's `probe`). "
        f"`SharpeningScheduler` inside `fit` on JAX: update per epoch {'works' if scheduler['epoch'] else 'fails'}, per batch "
        f"{'works' if scheduler['batch'] else 'is lost (the JAX trainer writes its copy of the variables back at the epoch end)'}"
        + (", works with the probed `jax_state_sync`" if scheduler.get("batch, with SCHEDULER_FIX") else "") + ".",
        "",
        "| quantizer | checks passed as the code is | first error there | checks passed, probe | max \\|jax.grad − TF\\|, probe |",
        "|---|---|---|---|---|",
    ]
    for name, result in as_is.items():
        done = [c for c in checks if c in result]
        probe = probed.get(name)
        lines.append(
            f"| `{name}` | {sum(result[c] for c in done)}/{len(done)} | `{first_error(name)}` | "
            + (f"{sum(probe[c] for c in done if c in probe)}/{len(done)} | {grads[name]:.1e} |" if probe else "— | — |")
        )
    return "\n".join(lines)


TABLES = {
    "margins": ("bench/results/test_margins.json", margins_table),
    "demo": ("bench/results/demo.json", demo_table),
    "export": ("bench/results/export.json", export_table),
    "zoo": ("bench/results/zoo_summary.json", zoo_table),
    "training_cost": ("bench/results/training_cost.json", training_cost_table),
    "accuracy": ("bench/results/accuracy.json", accuracy_table),
    "validation": ("bench/results/accuracy_val.json", validation_table),
    "screening": ("bench/results/accuracy_screen.json", screening_table),
    "tuning": ("bench/results/tuning.json", tuning_table),
    "pbgnet": ("bench/results/pbgnet_mnist*.json", pbgnet_table),  # a pattern: the table gets every file's result
    "longer": ("bench/results/accuracy_10_epochs.json", None),  # with accuracy.json: longer_table
    "cifar10": ("bench/results/cifar10.json", cifar10_table),
    "keras3_parity": ("bench/results/keras3_parity.json", keras3_parity_table),
    "keras3_jax": ("bench/results/keras3_jax.json", keras3_jax_table),
    "data": ("bench/results/data.json", data_table),
}


def _docs():
    return [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def rendered() -> dict:
    """Every document that holds a table, as it reads with the tables rendered from the
    committed JSON: {path: text}."""
    loaded = {}
    for name, (result, _) in TABLES.items():
        if "*" in result:
            files = sorted(glob.glob(os.path.join(ROOT, result)))
            if files:
                loaded[name] = [json.load(open(f)) for f in files]
        elif os.path.exists(os.path.join(ROOT, result)):
            loaded[name] = json.load(open(os.path.join(ROOT, result)))
    blocks = {name: render(loaded[name]) for name, (_, render) in TABLES.items() if name in loaded and render}
    if all(name in loaded for name in ("longer", "accuracy")):
        blocks["longer"] = longer_table(loaded)
    if "accuracy" in loaded:
        blocks["targets"] = targets_table(loaded)
    if "cifar10" in loaded:
        blocks["cifar10_targets"] = cifar10_targets(loaded)
    if all(name in loaded for name in ("validation", "accuracy", "training_cost")):
        blocks["summary"] = summary_table(loaded)
    texts = {path: open(path, encoding="utf-8").read() for path in _docs()}
    for name, block in blocks.items():
        pattern = re.compile(rf"(<!-- bench:{name} -->\n).*?(<!-- /bench:{name} -->)", re.S)
        homes = [path for path, text in texts.items() if pattern.search(text)]
        if len(homes) != 1:
            raise SystemExit(f"<!-- bench:{name} --> must be in exactly one of README.md, docs/*.md; found in {homes or 'none'}")
        texts[homes[0]] = pattern.sub(lambda m: m.group(1) + block + "\n" + m.group(2), texts[homes[0]])
    return texts


def main():
    for path, text in rendered().items():
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
