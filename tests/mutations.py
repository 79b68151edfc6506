#!/usr/bin/env python
"""Mutation check: does the test suite notice when a formula or a rule of tfbin is broken?

Each entry of `MUTATIONS` is one small, meaningful edit of the library (a sign, a factor, a
dropped term, an off-by-one, a swapped condition) and the pytest selection that should fail
because of it. For every mutation the script

1. copies the repository into a temporary folder **laid out as installed**: `tfbin/` with
   `models/`, `export/` and `tuning/` inside it as `tfbin/models`, `tfbin/export` and
   `tfbin/tuning` (setup.py's `package_dir`, read from setup.py), plus tests/, bench/, docs/ and
   the top-level files. The editable install maps `tfbin.models` & co. to *this* checkout's
   folders, so a plain copy would import the unmutated originals for those; in the laid-out copy,
   with pytest run from it (and it first on `PYTHONPATH`), `import tfbin` finds the copy;
2. replaces the entry's `old` snippet, which must occur exactly once in the file (else the
   script stops before running anything: the list must not rot silently), by `new`;
3. runs `python -m pytest -x -m "not slow" <files> [-k <expression>]` in the copy.
   A failing selection has *caught* the mutation; a passing one lets it *survive* — a test gap.

The working tree is never modified. Every pytest run loads a small plugin (`_mutation_guard`)
that records, at the end of the session, the file of every `tfbin*` module that process
imported; a module from outside the copy (or `tfbin`, `tfbin.export`, `tfbin.tuning`,
`tfbin.models` not importable from it) stops the script, so a mutation can never be "caught" or
"survive" against the wrong code. Before the mutations, each selection runs once on the
unmutated copy (the baseline): a selection that fails (or selects nothing) there is reported
as broken, and its mutations are not counted as caught.

    make mutations                                    # all of them (about 15 minutes on 2 busy cores)
    .venv/bin/python tests/mutations.py --list        # the mutations and their selections
    .venv/bin/python tests/mutations.py --only libra_scale_not_power_of_two ede_backward_drops_t
    .venv/bin/python tests/mutations.py --json results.json   # also write the results (atomically)
    .venv/bin/python tests/mutations.py --table results.json  # print the Markdown table of the results
    .venv/bin/python tests/mutations.py --docs bench/results/mutations.json  # ... into docs/reliability.md

Exit status: 0 when the baseline passed and every mutation run was caught; 1 when one survived,
a selection selected no test, a baseline failed or a run errored; 2 for a rotten list or bad
arguments.

The copy has the installed layout, not the repository's: a test that reads the source folders
by path (tests/test_imports.py reads export/, models/, tuning/) sees other files there; do not
select such tests.

Adding a mutation: read the function and its tests, pick an edit that changes what the
function computes for inputs the tests could use (not an equivalent one, not a crash), and the
smallest selection (a test file and a `-k` expression, `not slow` tests) that should see it.
Never weaken a mutation because it survives: a survivor is a missing test.
"""
from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Besides the packages (setup.py's package_dir), what the copy holds.
EXTRA_PATHS = ("tests", "bench", "docs", "README.md", "pyproject.toml", "setup.py", "Makefile", "LICENSE")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
GUARDED_PACKAGES = ("tfbin", "tfbin.export", "tfbin.tuning", "tfbin.models")
DEFAULT_TIMEOUT = 900  # seconds per pytest run; a run that hangs is reported, not waited for


@dataclasses.dataclass(frozen=True)
class Mutation:
    id: str
    file: str  # repository path, e.g. "tfbin/quantizers.py" or "export/rewrite.py"
    what: str  # what the edit breaks, in words
    old: str  # must occur exactly once in `file`
    new: str
    tests: tuple[str, ...]  # test files (repository paths)
    k: str | None = None  # pytest -k expression
    marker: str = "not slow"  # pytest -m expression

    def selection(self) -> tuple[tuple[str, ...], str | None, str]:
        return self.tests, self.k, self.marker

    def selection_text(self) -> str:
        return selection_text(self.selection())


def selection_text(selection) -> str:
    tests, k, marker = selection
    text = " ".join(tests)
    if k:
        text += f' -k "{k}"'
    if marker:
        text += f' -m "{marker}"'
    return text


M = Mutation
QUANTIZERS, LOSSES, SCHEDULES = "tfbin/quantizers.py", "tfbin/losses.py", "tfbin/schedules.py"
FORMULAS, FORMS = "tfbin/formulas.py", "tfbin/quantizer_forms.py"  # the quantizers' math and their shared glue
T_QUANTIZERS, T_CMIM, T_TUNING = ("tests/test_quantizers.py",), ("tests/test_cmim.py",), ("tests/test_tuning.py",)

MUTATIONS: tuple[Mutation, ...] = (
    # --- quantizers -------------------------------------------------------------------------
    M("libra_scale_not_power_of_two", FORMULAS,
      "LibraSign: the per-channel scale is mean|w_std| itself, not rounded to a power of two",
      "scale = tf.stop_gradient(tf.pow(2.0, tf.round(tf.math.log(mean_abs) / tf.math.log(2.0))))",
      "scale = tf.stop_gradient(mean_abs)",
      T_QUANTIZERS, "libra"),
    M("libra_not_centred", FORMULAS,
      "LibraSign: the kernel is not centred per channel before standardizing (w_hat = w)",
      "w_hat = w - tf.reduce_mean(w, axes, keepdims=True)",
      "w_hat = w",
      T_QUANTIZERS, "libra"),
    M("ede_backward_drops_t", FORMULAS,
      "EDE backward: k·(1 − tanh²(t·x)) instead of k·t·(1 − tanh²(t·x))",
      "dy=dy * (k * t))",
      "dy=dy * k)",
      T_QUANTIZERS, "ede or libra_gradient"),
    M("dab_threshold_off_by_one", FORMULAS,
      "DAB split: the threshold is the (K*+1)-th largest weight, so the top group gets one weight too many",
      "threshold = tf.gather(ordered, best, batch_dims=1)",
      "threshold = tf.gather(ordered, best + 1, batch_dims=1)",
      T_QUANTIZERS, "dab"),
    M("dab_criterion_swapped_counts", FORMULAS,
      "DAB split: the criterion divides S_K² by n−K and (S−S_K)² by K (group sizes swapped)",
      "criterion = tf.square(prefix) / counts + tf.square(total - prefix) / (n - counts)",
      "criterion = tf.square(prefix) / (n - counts) + tf.square(total - prefix) / counts",
      T_QUANTIZERS, "dab"),
    M("abr_hard_ignores_sharpness", FORMS,
      "ABR hard form: thresholds a·x + c instead of v·a·x + c (the sharpness v left out)",
      "formulas.bounded_rectifier_hard(x, self.effective_slope(), self.symmetric, self.offset)",
      "formulas.bounded_rectifier_hard(x, tf.convert_to_tensor(self.slope), self.symmetric, self.offset)",
      T_QUANTIZERS, "bounded_rectifier"),
    M("abr_hard_drops_offset", FORMS,
      "ABR hard form: 1[v·a·x ≥ 0.5], the offset c dropped (threshold 0.5/(v·a) instead of (0.5 − c)/(v·a))",
      "formulas.bounded_rectifier_hard(x, self.effective_slope(), self.symmetric, self.offset)",
      "formulas.bounded_rectifier_hard(x, self.effective_slope(), self.symmetric, 0.0)",
      T_QUANTIZERS, "bounded_rectifier"),
    M("sbn_soft_divides_by_v", FORMULAS,
      "Self-Binarizing soft form: tanh(x/v) instead of tanh(v·x) (sharpness read as a temperature)",
      "y = tf.tanh(v * x)",
      "y = tf.tanh(x / v)",
      T_QUANTIZERS, "self_binarizing or blend"),
    # --- contrastive loss (CMIM) ----------------------------------------------------------------
    M("infonce_sign_flipped", LOSSES,
      "InfoNCE: logsumexp + positive logit instead of logsumexp − positive logit",
      "return tf.reduce_mean(lse - tf.linalg.diag_part(positive))",
      "return tf.reduce_mean(lse + tf.linalg.diag_part(positive))",
      T_CMIM, "info_nce or same_label"),
    M("infonce_masks_the_positive", LOSSES,
      "InfoNCE: the same-label mask also removes the positive pair itself (diagonal not exempted)",
      "tf.where(tf.logical_and(excluded, tf.logical_not(diagonal)),",
      "tf.where(excluded,",
      T_CMIM, "info_nce or same_label"),
    M("cmim_bank_never_negatives", LOSSES,
      "ContrastiveMI.call: every memory-bank entry is masked as unwritten, so the bank never serves as negatives",
      "tf.range(self.bank_size) >= self._filled",
      "tf.range(self.bank_size) >= 0",
      T_CMIM, "bank and label"),
    M("cmim_same_label_exclusion_off", LOSSES,
      "ContrastiveMI.call: same-label negatives are never excluded (exclude_same_label ignored)",
      "if ids is not None and self.exclude_same_label:",
      "if False:",
      T_CMIM, "bank and label"),
    # --- schedules ------------------------------------------------------------------------------
    M("ede_schedule_length_off_by_one", SCHEDULES,
      "EDE schedule: t spans epochs + 1, so t(i) is not IR-Net's 10^(log T_min + (log T_max − log T_min)·i/N)",
      "t = Exponential(t_min, t_max, epochs)",
      "t = Exponential(t_min, t_max, epochs + 1)",
      ("tests/test_schedules.py",), "ede"),
    M("ede_scale_min_instead_of_max", SCHEDULES,
      "EDE schedule: k = min(1/t, 1) instead of max(1/t, 1)",
      "return max(1.0 / t, 1.0)",
      "return min(1.0 / t, 1.0)",
      ("tests/test_schedules.py",), "ede"),
    # --- export ---------------------------------------------------------------------------------
    M("export_dense_kernel_rows_reversed", "tfbin/larq_layers.py",
      "binary-Dense export: the 1×1 conv's kernel takes the Dense kernel's input rows in reverse order",
      "kernel = kernel[None, None]",
      "kernel = kernel[::-1][None, None]",
      ("tests/test_export.py",), "every_recipe_exports and ste"),
    M("parity_tie_condition_swapped", "export/ties.py",
      "parity: samples within TIE_ULPS of a threshold count as tie-free and the others as ties",
      "tie_free = sample_margins > TIE_ULPS",
      "tie_free = sample_margins < TIE_ULPS",
      ("tests/test_export.py",), "a_wrong_export or (every_recipe_exports and ste)"),
    # --- batch norm recalibration ---------------------------------------------------------------
    M("recalibrate_momentum_off_by_one", "tfbin/frameworks.py",
      "recalibrate: BN momentum 1 − 1/(k+1) at batch k, so the old statistics are not overwritten and the average is wrong",
      'with _attributes(norms, "momentum", 1.0 - 1.0 / used):',
      'with _attributes(norms, "momentum", 1.0 - 1.0 / (used + 1)):',
      ("tests/test_batchnorm.py",)),
    M("recalibrate_in_soft_form", "tfbin/frameworks.py",
      "recalibrate: the statistics are re-estimated with the soft (training) forms, not the hard ones",
      'with hard_form(model), _attributes(dropouts, "rate", 0.0):',
      'with contextlib.nullcontext(), _attributes(dropouts, "rate", 0.0):',
      ("tests/test_batchnorm.py",)),
    # --- ABC-Net, BLRNet, PBGNet ----------------------------------------------------------------
    M("abc_kernel_mean_over_bases", "tfbin/layers.py",
      "ABC-Net: the effective kernel is the mean of α_m·B_m over the M bases instead of their sum",
      "kernel = tf.reduce_sum(alpha * bases, axis=0)",
      "kernel = tf.reduce_mean(alpha * bases, axis=0)",
      ("tests/test_abc.py",), "forward"),
    M("blrnet_weight_variance_wrong", "tfbin/blrnet_layers.py",
      "BLRNet: weight variance 1 − |μ_w| instead of 1 − μ_w²",
      "return mean, 1.0 - tf.square(mean)",
      "return mean, 1.0 - tf.abs(mean)",
      ("tests/test_blrnet.py",), "moments"),
    M("pbgnet_kl_coefficient_off_by_one", "tfbin/pbgnet.py",
      "PBGNet KL: c_k = product of the widths from layer k up (its own included), not of the layers above it",
      "np.prod(widths[k + 1 :], dtype=np.int64)",
      "np.prod(widths[k:], dtype=np.int64)",
      ("tests/test_pbgnet.py",), "kl_weighs"),
    M("pbgnet_kl_drops_bias", "tfbin/pbgnet.py",
      "PBGNet KL: the biases' distance to their prior is left out",
      "return tf.reduce_sum(tf.square(self.kernel - self.kernel_prior)) + tf.reduce_sum(tf.square(self.bias - self.bias_prior))",
      "return tf.reduce_sum(tf.square(self.kernel - self.kernel_prior))",
      ("tests/test_pbgnet.py",), "kl_weighs"),
    # --- tuning ---------------------------------------------------------------------------------
    M("defaults_first_condition_negated", "tuning/tuners.py",
      "defaults-first oracle: the defaults are proposed only once something was tried (not as the first trial)",
      "if not self._tried_so_far and not self._duplicate(defaults):",
      "if self._tried_so_far and not self._duplicate(defaults):",
      T_TUNING, "first_trial"),
    M("defaults_first_bayesian_unwrapped", "tuning/tuners.py",
      "defaults-first oracle: BayesianOptimization uses keras-tuner's plain oracle (random first trial)",
      "BayesianOptimizationOracle = _defaults_first(kt.oracles.BayesianOptimizationOracle)",
      "BayesianOptimizationOracle = kt.oracles.BayesianOptimizationOracle",
      T_TUNING, "first_trial"),
    M("hyperband_defaults_wrong_bracket", "tuning/tuners.py",
      "Hyperband oracle: the defaults re-open bracket 1 instead of bracket 0, the full-data one",
      'if bracket["bracket_num"] == 0 and not rounds[0]',
      'if bracket["bracket_num"] == 1 and not rounds[0]',
      T_TUNING, "hyperband and defaults"),
    # --- callbacks ------------------------------------------------------------------------------
    M("per_batch_sharpening_off_by_one", "tfbin/frameworks.py",
      "SharpeningScheduler(update_freq='batch'): batch b of an epoch gets the value of epoch + (b+1)/steps",
      'self._apply(self._epoch + batch / self.params["steps"])',
      'self._apply(self._epoch + (batch + 1) / self.params["steps"])',
      ("tests/test_callbacks.py",), "per_batch"),
    # --- beyond issue #37's audit: the {0,1} export rewrite, the other loss terms -----------------
    M("export_abr_threshold_drops_offset", "tfbin/quantizer_forms.py",
      "ABR export: the ±1 input thresholds at 0.5/(v·a) instead of (0.5 − c)/(v·a)",
      "return (0.5 - self.offset) / self.effective_slope()",
      "return 0.5 / self.effective_slope()",
      T_QUANTIZERS, "export_threshold"),
    M("export_zero_one_bias_fold_doubled", "tfbin/larq_layers.py",
      "ABR export: conv((s+1)/2, K) folds ΣK into the bias instead of ½·ΣK",
      "bias = bias + 0.5 * kernel.reshape(-1, kernel.shape[-1]).sum(0)",
      "bias = bias + kernel.reshape(-1, kernel.shape[-1]).sum(0)",
      ("tests/test_export.py",), "abr_and_dab_rewrites and abr"),
    M("distillation_drops_t_squared", LOSSES,
      "Distillation: the T² factor that keeps the gradient scale independent of T is dropped",
      "return self.temperature**2 * tf.reduce_mean(kl)",
      "return tf.reduce_mean(kl)",
      T_CMIM, "distillation"),
    M("slope_growth_sum_not_mean", LOSSES,
      "ABR's SlopeGrowth: λ·Σ 1/a over all slopes instead of λ·mean 1/a",
      "return self.weight * tf.reduce_mean(inverse)",
      "return self.weight * tf.reduce_sum(inverse)",
      ("tests/test_losses.py",), "formula"),
)

GUARD_PLUGIN = '''\
"""Loaded by tests/mutations.py into every pytest run (-p _mutation_guard): records the file of
every tfbin module this process imported, so the driver can check they all come from the copy."""
import json
import os
import sys


def pytest_sessionfinish(session, exitstatus):
    record = {"errors": {}}
    for name in %r:
        try:
            __import__(name)
        except Exception as err:  # a mutation that breaks an import shows here and in the tests
            record["errors"][name] = f"{type(err).__name__}: {err}"
    record["modules"] = {
        name: os.path.realpath(module.__file__)
        for name, module in sorted(sys.modules.items())
        if (name == "tfbin" or name.startswith("tfbin.")) and getattr(module, "__file__", None)
    }
    path = os.environ["MUTATION_GUARD_OUT"]
    with open(path + ".tmp", "w") as f:
        json.dump(record, f)
    os.replace(path + ".tmp", path)
''' % (GUARDED_PACKAGES,)


class Fatal(RuntimeError):
    """Results would be meaningless (the copy does not import itself, the list rotted): stop."""


# ------------------------------------------------------------------------------------------------
# The list


def package_dirs() -> dict[str, str]:
    """setup.py's `package_dir` ({"tfbin.models": "models", ...}), read without running setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            for keyword in node.keywords:
                if keyword.arg == "package_dir":
                    return ast.literal_eval(keyword.value)
    raise Fatal("setup.py has no literal package_dir in its setup() call; tests/mutations.py needs it to lay out the copy.")


def installed_path(repo_path: str, dirs: dict[str, str]) -> str:
    """Where a repository file lies in the installed layout ("export/rewrite.py" -> "tfbin/export/rewrite.py")."""
    best = None
    for package, folder in dirs.items():
        if repo_path.startswith(folder.rstrip("/") + "/") and (best is None or len(folder) > len(best[1])):
            best = (package, folder)
    if best is None:
        return repo_path
    package, folder = best
    return package.replace(".", "/") + repo_path[len(folder.rstrip("/")):]


def module_name(repo_path: str, dirs: dict[str, str]) -> str | None:
    path = installed_path(repo_path, dirs)
    if not path.endswith(".py"):
        return None
    name = path[: -len(".py")].replace("/", ".")
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def check_list(mutations=MUTATIONS) -> list[str]:
    """Problems of the list (rotten snippets, missing files, duplicate ids), as sentences."""
    problems, seen = [], set()
    for m in mutations:
        if m.id in seen:
            problems.append(f"{m.id}: duplicate id")
        seen.add(m.id)
        if m.old == m.new:
            problems.append(f"{m.id}: old and new are the same")
        path = ROOT / m.file
        if not path.is_file():
            problems.append(f"{m.id}: {m.file} does not exist")
        else:
            count = path.read_text(encoding="utf-8").count(m.old)
            if count != 1:
                problems.append(f"{m.id}: its `old` snippet occurs {count} times in {m.file} (must be exactly once): {m.old!r}")
        for test in m.tests:
            if not (ROOT / test).is_file():
                problems.append(f"{m.id}: test file {test} does not exist")
    return problems


# ------------------------------------------------------------------------------------------------
# The copy


def lay_out(destination: Path, dirs: dict[str, str]) -> None:
    """The repository at `destination` as installed: packages where setup.py puts them."""
    destination.mkdir(parents=True)
    for package, folder in sorted(dirs.items(), key=lambda item: item[0].count(".")):
        target = destination / package.replace(".", "/")
        if target.exists():
            raise Fatal(f"{folder}/ would be copied over {target}, which the copy already holds.")
        shutil.copytree(ROOT / folder, target, ignore=IGNORED)
    for name in EXTRA_PATHS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=IGNORED)
        elif source.is_file():
            shutil.copy2(source, destination / name)
    (destination / "_mutation_guard.py").write_text(GUARD_PLUGIN, encoding="utf-8")


def environment(copy: Path, guard_out: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no stale .pyc can stand in for an edited source
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if guard_out is not None:
        env["MUTATION_GUARD_OUT"] = str(guard_out)
    return env


def inside(path: str, root: Path) -> bool:
    root_text = os.path.realpath(root)
    return os.path.realpath(path).startswith(root_text + os.sep)


def sanity_check(copy: Path) -> dict[str, str]:
    """Import tfbin and its mapped subpackages in the copy (a fresh process, cwd = copy): their
    `__file__` must lie inside it. Raises Fatal otherwise."""
    code = "import json, importlib; print(json.dumps({n: importlib.import_module(n).__file__ for n in %r}))" % (GUARDED_PACKAGES,)
    result = subprocess.run([sys.executable, "-c", code], cwd=copy, env=environment(copy), capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise Fatal(f"importing {', '.join(GUARDED_PACKAGES)} in the copy failed:\n{result.stderr[-3000:]}")
    files = json.loads(result.stdout.strip().splitlines()[-1])
    outside = {name: file for name, file in files.items() if not inside(file, copy)}
    if outside:
        raise Fatal(f"in the copy {copy}, these imported from elsewhere: {outside}")
    return files


def apply(copy: Path, mutation: Mutation, dirs: dict[str, str]) -> Path:
    path = copy / installed_path(mutation.file, dirs)
    text = path.read_text(encoding="utf-8")
    count = text.count(mutation.old)
    if count != 1:
        raise Fatal(f"{mutation.id}: `old` occurs {count} times in the copy's {path.relative_to(copy)}")
    path.write_text(text.replace(mutation.old, mutation.new), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------
# Running pytest


_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()


def _kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended on its own
        os.killpg(process.pid, signal.SIGKILL)  # pytest and whatever it started (its own session)


def run_pytest(copy: Path, selection, timeout: float, guard_out: Path) -> dict:
    tests, k, marker = selection
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-rfE", "-p", "no:cacheprovider", "-p", "_mutation_guard"]
    if marker:
        command += ["-m", marker]
    if k:
        command += ["-k", k]
    command += list(tests)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=copy, env=environment(copy, guard_out), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    with _children_lock:
        _children.add(process)
    try:
        output, _ = process.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill(process)
        output, _ = process.communicate()
        timed_out = True
    finally:
        with _children_lock:
            _children.discard(process)
    seconds = time.perf_counter() - start
    failures = re.findall(r"^(?:FAILED|ERROR) (\S+)(?: - (.*))?$", output, re.M)
    summary = re.findall(r"^=* ?(.*(?:passed|failed|error|errors|no tests ran|deselected|skipped).*?) ?=*$", output, re.M)
    return {"rc": process.returncode, "timed_out": timed_out, "seconds": round(seconds, 1),
            "failed": [name for name, _ in failures], "messages": [message[:300] for _, message in failures],
            "summary": summary[-1].strip("= ") if summary else "", "output": output}


def check_guard(guard_out: Path, copy: Path, mutated_module: str | None, timed_out: bool = False) -> tuple[bool | None, str | None]:
    """Raises Fatal when the run imported tfbin code from outside the copy. Returns whether the
    mutated module was imported by the run (None when not a module) and a note. A run killed
    at its timeout leaves no record (its copy is laid out as the baseline's, which was checked)."""
    if timed_out and not guard_out.exists():
        return None, "killed at the timeout: no record of its imports"
    if not guard_out.exists():
        raise Fatal(f"the pytest run left no record of its imports ({guard_out}); cannot tell which code it tested.")
    record = json.loads(guard_out.read_text())
    modules = record["modules"]
    outside = {name: file for name, file in modules.items() if not inside(file, copy)}
    if outside:
        raise Fatal(f"a pytest run in the copy {copy} imported tfbin modules from elsewhere: {outside}")
    note = None
    missing = [name for name in GUARDED_PACKAGES if name not in modules]
    if missing:
        note = f"not importable in this run: {missing} ({record['errors']})"
    return (None if mutated_module is None else mutated_module in modules), note


def classify(result: dict, baseline: bool) -> str:
    """baseline: passed / failed / no-tests / timeout / error; mutation: caught / survived / no-tests /
    timeout (counted as caught) / error."""
    rc = result["rc"]
    if result["timed_out"]:
        return "timeout"
    if rc == 0:
        return "passed" if baseline else "survived"
    if rc == 5:
        return "no-tests"
    if rc in (1, 2):  # 1: a test failed; 2: interrupted, e.g. a collection error (an import broke)
        return "failed" if baseline else "caught"
    return "error"


def tail(text: str, chars: int = 4000) -> str:
    return text[-chars:]


# ------------------------------------------------------------------------------------------------
# Results


def write_json(path: Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, ensure_ascii=False)
            f.write("\n")
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def git_state() -> dict:
    def git(*args):
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "modified_tracked_files": None if status is None else bool(status)}


def markdown_table(data: dict) -> str:
    """The result table of docs/reliability.md from a `--json` file."""
    lines = ["| id | file | what it breaks | caught by | seconds |", "|---|---|---|---|---|"]
    for r in data["mutations"]:
        if r["status"] == "caught":
            by = ", ".join(f"`{name.removeprefix('tests/')}`" for name in r["failed"]) or "(collection error)"
        elif r["status"] == "timeout":
            by = f"timeout after {r['seconds']:.0f} s"
        else:
            by = f"**{r['status'].upper()}** (selection: `{r['selection']}`)"
        what = r["what"].replace("|", "\\|")  # a table cell: |x| would end it
        lines.append(f"| `{r['id']}` | `{r['file']}` | {what} | {by} | {r['seconds']:.0f} |")
    counts = data["counts"]
    total = data["total_seconds"]
    baseline_seconds = sum(entry["seconds"] for entry in data["baseline"])
    git = data.get("git") or {}
    commit = f" at commit {git['commit'][:7]}" if git.get("commit") else ""
    if commit and git.get("modified_tracked_files"):
        commit += " with uncommitted changes"
    lines.append("")
    lines.append(
        f"{data['date']}{commit}, {data['machine']}: {counts.get('caught', 0)} caught, {counts.get('survived', 0)} survived"
        + "".join(f", {v} {k}" for k, v in counts.items() if k not in ("caught", "survived") and v)
        + f" of {len(data['mutations'])}; the baseline of {len(data['baseline'])} selections "
        + ("passed" if data["baseline_ok"] else "**FAILED**")
        + f"; total {total / 60:.1f} minutes ({baseline_seconds / 60:.1f} of them the baseline). "
        + "Rendered by `python tests/mutations.py --docs FILE`."
    )
    return "\n".join(lines)


DOCS = ROOT / "docs" / "reliability.md"
DOCS_MARKERS = ("<!-- mutations:table -->\n", "<!-- /mutations:table -->")


def write_docs(data: dict, path: Path = DOCS) -> None:
    """Replace the table between docs/reliability.md's `<!-- mutations:table -->` markers (atomically)."""
    text = path.read_text(encoding="utf-8")
    start, end = DOCS_MARKERS
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if len(pattern.findall(text)) != 1:
        raise SystemExit(f"{path} must hold the markers {start.strip()} ... {end} exactly once.")
    text = pattern.sub(lambda _: start + markdown_table(data) + "\n" + end, text)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


# ------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See the module docstring (tests/mutations.py) and docs/reliability.md, Mutations.")
    parser.add_argument("--list", action="store_true", help="print the mutations and their selections (and check the list)")
    parser.add_argument("--only", nargs="+", metavar="ID", help="run these mutations only")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results there as JSON (atomically, after every run)")
    parser.add_argument("--table", type=Path, metavar="JSON", help="print the Markdown table of a --json file and exit")
    parser.add_argument("--docs", type=Path, metavar="JSON",
                        help="render a --json file's table into docs/reliability.md (between its mutations:table markers) and exit")
    parser.add_argument("--jobs", type=int, default=1, help="pytest runs at a time (default 1)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help=f"seconds per pytest run (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies (their path is printed)")
    args = parser.parse_args(argv)

    if args.table:
        print(markdown_table(json.loads(args.table.read_text(encoding="utf-8"))))
        return 0
    if args.docs:
        write_docs(json.loads(args.docs.read_text(encoding="utf-8")))
        print(f"wrote the table of {args.docs} into {DOCS.relative_to(ROOT)}")
        return 0

    problems = check_list()
    if args.list:
        for m in MUTATIONS:
            print(f"{m.id}\n    {m.file}: {m.what}\n    - {m.old!r}\n    + {m.new!r}\n    selection: {m.selection_text()}")
        print(f"{len(MUTATIONS)} mutations")
    if problems:
        print("tests/mutations.py: the mutation list no longer matches the code:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    if args.list:
        return 0

    chosen = list(MUTATIONS)
    if args.only:
        known = {m.id: m for m in MUTATIONS}
        unknown = [i for i in args.only if i not in known]
        if unknown:
            print(f"unknown mutation id(s) {unknown}; the ids are:\n  " + "\n  ".join(known), file=sys.stderr)
            return 2
        chosen = [known[i] for i in dict.fromkeys(args.only)]
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")

    dirs = package_dirs()
    work = Path(tempfile.mkdtemp(prefix="tfbin-mutations-"))
    started = time.perf_counter()
    data = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{os.cpu_count()} CPU cores, {platform.python_implementation()} {platform.python_version()}",
        "git": git_state(),
        "command": " ".join(["tests/mutations.py", *(argv if argv is not None else sys.argv[1:])]),
        "complete": False,
        "baseline_ok": None,
        "baseline": [],
        "mutations": [],
        "counts": {},
        "total_seconds": 0.0,
    }

    def save():
        data["total_seconds"] = round(time.perf_counter() - started, 1)
        counts = {}
        for r in data["mutations"]:
            key = "caught" if r["status"] == "timeout" else r["status"]
            counts[key] = counts.get(key, 0) + 1
        data["counts"] = counts
        if args.json:
            write_json(args.json, data)

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        base = work / "base"
        lay_out(base, dirs)
        files = sanity_check(base)
        print(f"copy laid out as installed in {base}; imports from it:")
        for name, file in files.items():
            print(f"  {name:14s} {file}")

        # Baseline: every selection once, unmutated.
        selections = list(dict.fromkeys(m.selection() for m in chosen))
        print(f"\nbaseline: {len(selections)} selections on the unmutated copy")
        baseline = {}

        def run_baseline(index_selection):
            index, selection = index_selection
            guard = work / f"guard-baseline-{index}.json"
            result = run_pytest(base, selection, args.timeout, guard)
            check_guard(guard, base, None, result["timed_out"])
            return selection, result

        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            for selection, result in pool.map(run_baseline, enumerate(selections)):
                status = classify(result, baseline=True)
                baseline[selection] = status
                entry = {"selection": selection_text(selection), "status": status, "seconds": result["seconds"], "summary": result["summary"]}
                if status != "passed":
                    entry["output_tail"] = tail(result["output"])
                data["baseline"].append(entry)
                print(f"  {status:9s} {result['seconds']:6.1f} s  {selection_text(selection)}  ({result['summary']})", flush=True)
                save()
        data["baseline_ok"] = all(s == "passed" for s in baseline.values())

        # The mutations, each in a fresh copy of the pristine one.
        print(f"\n{len(chosen)} mutations")
        counter = iter(range(1, len(chosen) + 1))
        lock = threading.Lock()

        def run_mutation(m: Mutation) -> dict:
            record = {"id": m.id, "file": m.file, "what": m.what, "old": m.old, "new": m.new,
                      "selection": m.selection_text(), "failed": [], "seconds": 0.0}
            if baseline[m.selection()] != "passed":
                record["status"] = "baseline-" + baseline[m.selection()]
                return record
            copy = work / f"m-{m.id}"
            shutil.copytree(base, copy, symlinks=True)
            try:
                apply(copy, m, dirs)
                guard = work / f"guard-{m.id}.json"
                result = run_pytest(copy, m.selection(), args.timeout, guard)
                imported, note = check_guard(guard, copy, module_name(m.file, dirs), result["timed_out"])
            finally:
                if not args.keep:
                    shutil.rmtree(copy, ignore_errors=True)
            status = classify(result, baseline=False)
            record.update(status=status, seconds=result["seconds"], failed=result["failed"], messages=result["messages"],
                          summary=result["summary"], mutated_module_imported=imported)
            if result["rc"] == 2:
                note = ((note + "; ") if note else "") + "pytest was interrupted (e.g. a collection error): caught by a crash"
            if note:
                record["note"] = note
            if status not in ("caught",):
                record["output_tail"] = tail(result["output"])
            return record

        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            futures = {pool.submit(run_mutation, m): m for m in chosen}
            by_id = {}
            for future in concurrent.futures.as_completed(futures):
                record = future.result()
                by_id[record["id"]] = record
                with lock:
                    number = next(counter)
                    by = ", ".join(n.split("::")[-1] for n in record["failed"][:2])
                    extra = f"  by {by}" if by else ""
                    if record.get("mutated_module_imported") is False:
                        extra += "  (the selection never imported the mutated module)"
                    print(f"  [{number:2d}/{len(chosen)}] {record['status']:9s} {record['seconds']:6.1f} s  {record['id']}{extra}", flush=True)
                    data["mutations"] = [by_id[m.id] for m in chosen if m.id in by_id]
                    save()
        data["complete"] = True
        save()
    except Fatal as err:
        print(f"\ntests/mutations.py: stopped: {err}", file=sys.stderr)
        data["fatal"] = str(err)
        save()
        return 1
    except KeyboardInterrupt:
        with _children_lock:
            for process in list(_children):
                _kill(process)
        print("\ninterrupted", file=sys.stderr)
        data["fatal"] = "interrupted"
        save()
        return 1
    finally:
        if args.keep:
            print(f"copies kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    results = data["mutations"]
    survivors = [r for r in results if r["status"] == "survived"]
    others = [r for r in results if r["status"] not in ("caught", "timeout", "survived")]
    print(f"\n{data['counts'].get('caught', 0)} caught, {len(survivors)} survived, {len(others)} not counted, "
          f"of {len(results)} mutations; baseline {'passed' if data['baseline_ok'] else 'FAILED'}; "
          f"{data['total_seconds'] / 60:.1f} minutes")
    for r in survivors:
        print(f"  SURVIVED {r['id']} ({r['file']}): {r['what']}\n           selection: {r['selection']}")
    for r in others:
        print(f"  {r['status'].upper()} {r['id']}: selection {r['selection']}")
    for entry in data["baseline"]:
        if entry["status"] != "passed":
            print(f"  BASELINE {entry['status'].upper()}: {entry['selection']}\n" + textwrap.indent(entry.get("output_tail", "")[-1500:], "    "))
    return 0 if data["baseline_ok"] and not survivors and not others else 1


if __name__ == "__main__":
    sys.exit(main())
