"""Every test that trains says what it bounds and how far its bound lies from what was measured.

A trained figure (an accuracy after an epoch, a loss ratio) differs between CPUs: a bound guessed
on one machine failed on the next twice. So a test that trains carries
`@pytest.mark.margin(*keys)`, naming figures that `bench/test_margins.py` measured over seeds and
both TensorFlow kernel sets (`TF_ENABLE_ONEDNN_OPTS=0/1`) — each bound must lie beyond the worst
measured value by the measured spread again, or by an order of magnitude — or `@pytest.mark.margin(exact="...")`,
saying what it compares exactly instead (bitwise weights, counts, values against a formula).
"""
import ast
import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "test_margins.json"

# What training looks like in a test: Keras's fit, a tuner's search, tfbin.pbgnet.train,
# tfbin.jobs.train.train and tfbin.jobs.tune.tune, the `tfbin train` command (an argv list holding "train", or
# `cli("train", ...)`), or a script for a subprocess that calls `.fit(`.
_TRAINING_CALLS = {"fit", "search", "train", "tune"}


def _figures():
    spec = importlib.util.spec_from_file_location("test_margins_bench", ROOT / "bench" / "test_margins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FIGURES


def _called(node) -> set:
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == "search" and "tuner" not in ast.unparse(func).lower():
                name = "re.search"  # a regular expression's, not a tuner's
            names.add(name)
            if call.args and isinstance(call.args[0], ast.Constant) and call.args[0].value == "train":
                names.add("train")  # cli("train", ...): the `tfbin train` command
    for literal in ast.walk(node):
        if isinstance(literal, (ast.List, ast.Tuple)) and any(
            isinstance(e, ast.Constant) and e.value == "train" for e in literal.elts
        ):
            names.add("train")  # an argv for `tfbin train`
        if isinstance(literal, ast.Constant) and isinstance(literal.value, str) and ".fit(" in literal.value:
            names.add("fit")  # a script run in a subprocess
    return names


def _functions(tree):
    return {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def _training(functions, fixtures_elsewhere=frozenset()) -> set:
    """Names of the functions that train, directly, through a helper of the module or through a
    fixture they take."""
    trains = {name for name, f in functions.items() if _called(f) & _TRAINING_CALLS} | set(fixtures_elsewhere)
    changed = True
    while changed:
        changed = False
        for name, f in functions.items():
            uses = _called(f) | {a.arg for a in f.args.args} | {n.id for n in ast.walk(f) if isinstance(n, ast.Name)}
            if any(isinstance(n, ast.Name) and n.id == "__file__" for n in ast.walk(f)):
                uses |= set(functions)  # runs this module in a subprocess: whatever it trains
            if name not in trains and uses & trains:
                trains.add(name)
                changed = True
    return trains


def _margin(function):
    for decorator in function.decorator_list:
        if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "pytest.mark.margin":
            keys = [a.value for a in decorator.args]
            exact = {k.arg: k.value.value for k in decorator.keywords}.get("exact")
            return keys, exact
    return None


def _training_tests():
    conftest_fixtures = _training(_functions(ast.parse((ROOT / "tests" / "conftest.py").read_text())))
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        functions = _functions(tree)
        scripts = {  # module-level scripts for a subprocess that train
            target.id for node in tree.body if isinstance(node, ast.Assign) and "fit" in _called(node)
            for target in node.targets if isinstance(target, ast.Name)
        }
        for name in sorted(_training(functions, conftest_fixtures | scripts)):
            if name.startswith("test_"):
                yield path.name, name, functions[name]


TRAINING_TESTS = list(_training_tests())


def test_the_scan_finds_the_known_training_tests():
    found = {(module, name) for module, name, _ in TRAINING_TESTS}
    assert ("test_binarize.py", "test_ordinary_cnns_binarized_with_every_recipe_train_far_above_chance") in found
    assert ("test_train.py", "test_resume_continues_an_interrupted_run_at_the_right_epoch") in found
    assert ("test_recipes.py", "test_binarized_float_model_trains_and_lowers_its_loss") in found
    assert ("test_quantizers.py", "test_libra_rejects_activations") not in found
    assert len(found) > 30


def test_every_training_test_names_its_measured_figures_or_what_it_compares_exactly():
    missing = [f"{module}::{name}" for module, name, function in TRAINING_TESTS if _margin(function) is None]
    assert not missing, f"training tests without @pytest.mark.margin(keys...) or margin(exact=...): {missing}"
    for module, name, function in TRAINING_TESTS:
        keys, exact = _margin(function)
        assert keys or (exact and exact.strip()), f"{module}::{name}: margin() needs figure keys or a non-empty exact=..."


def test_every_bound_lies_outside_its_measured_spread_with_room_to_spare():
    figures = _figures()
    measured = json.loads(RESULTS.read_text())["figures"]
    used = set()
    for module, name, function in TRAINING_TESTS:
        keys, _ = _margin(function) or ([], None)
        source = ast.unparse(function)
        for key in keys:
            used.add(key)
            assert key in figures, f"{module}::{name} names {key!r}, which bench/test_margins.py does not measure"
            test_file, _, op, bound, _ = figures[key]
            assert test_file == module, (key, test_file, module)
            entry = measured.get(key)
            assert entry, f"{key}: not measured yet; run `python bench/test_margins.py --only {key}`"
            assert (entry["op"], entry["bound"]) == (op, bound), f"{key}: measured against {entry['op']} {entry['bound']}, the bench now says {op} {bound}; rerun it"
            cells = {(r["seed"], r["onednn"]) for r in entry["runs"]}
            assert len({s for s, _ in cells}) >= 3 and {o for _, o in cells} == {0, 1}, f"{key}: needs 3 seeds x oneDNN 0/1, has {sorted(cells)}"
            values = [r["value"] for r in entry["runs"]]
            worst = min(values) if op == ">" else max(values)
            room = worst - bound if op == ">" else bound - worst
            spread = max(values) - min(values)
            # Room to spare: the spread again beyond the worst value, or (a bound on a positive
            # magnitude) an order of magnitude between the worst value and the bound.
            decade = bound > 0 and (worst >= 10 * bound if op == ">" else worst <= bound / 10)
            assert room > 0 and (room >= spread or decade), (
                f"{key}: bound {op} {bound}, measured {min(values):.4g}..{max(values):.4g}: room {room:.4g} < spread {spread:.4g}"
            )
            if bound != 0:  # the test states the bound the bench measured against
                constants = {n.value for n in ast.walk(function) if isinstance(n, ast.Constant) and isinstance(n.value, (int, float))}
                assert bound in constants, f"{module}::{name} does not state the bound {bound} of {key}: {source[:200]}"
    assert used == set(figures), f"measured figures no test names: {sorted(set(figures) - used)}"
