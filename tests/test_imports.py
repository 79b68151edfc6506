"""The package's import graph: no function-level in-package imports, no import circle.

Function-level imports hide circles; the only ones allowed are the CLI's (`tfbin/cli.py` keeps
`tfbin --help` fast by importing TensorFlow-heavy modules only when a verb runs)."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# setup.py maps these folders into the `tfbin` package.
PACKAGES = {"tfbin": "tfbin", "export": "tfbin.export", "models": "tfbin.models", "tuning": "tfbin.tuning"}
# tfbin itself loads its Keras 2 API in a function: a Keras 3 process (tfbin.keras3) loads none of it.
ALLOWED_LAZY = {"tfbin.cli", "tfbin"}


def modules():
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join([package, *parts]).removesuffix(".__init__")
            yield name, path


def in_package_imports(node, module, is_package):
    """Names of tfbin modules an import statement imports (`from tfbin import x` counts x
    when x is a module, else tfbin)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "tfbin"]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target.split(".")[0] != "tfbin":
            return []
        return [f"{target}.{a.name}" for a in node.names] + [target]
    return []


def graph():
    known = dict(modules())
    edges, lazy = {}, []
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        is_package = path.name == "__init__.py"
        top = set()
        for node in tree.body:
            for target in in_package_imports(node, name, is_package):
                top.add(target)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if in_package_imports(inner, name, is_package):
                        lazy.append(f"{name}:{inner.lineno}")
        # Keep targets that are modules; `from tfbin.x import f` depends on tfbin.x.
        edges[name] = {t for t in top if t in known and t != name}
    return edges, lazy


def test_no_function_level_in_package_imports_outside_the_cli():
    _, lazy = graph()
    offending = [site for site in lazy if site.split(":")[0] not in ALLOWED_LAZY]
    assert not offending, f"in-package imports inside functions (move them to the top): {offending}"


def test_the_import_graph_has_no_circle():
    edges, _ = graph()
    state, stack, circles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            # A package's __init__ importing its own submodules is not a circle.
            if node.startswith(nxt + "."):
                continue
            if state.get(nxt) == "open":
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not circles, f"import circles: {circles}"


def test_the_checks_see_a_circle_and_a_lazy_import(tmp_path, monkeypatch):
    # The check must be able to fail: a synthetic package with both faults.
    pkg = tmp_path / "tfbin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from tfbin import b\n")
    (pkg / "b.py").write_text("import tfbin.a\n\ndef f():\n    from tfbin import a\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    monkeypatch.setattr(__import__(__name__), "PACKAGES", {"tfbin": "tfbin"})
    edges, lazy = graph()
    assert edges["tfbin.a"] - {"tfbin"} == {"tfbin.b"} and edges["tfbin.b"] == {"tfbin.a"}
    assert lazy == ["tfbin.b:4"]
    with pytest.raises(AssertionError, match="circles"):
        test_the_import_graph_has_no_circle()


def test_the_library_imports_no_job():
    edges, _ = graph()
    library = {name for name in edges if not name.startswith("tfbin.jobs") and name != "tfbin.cli"}
    offending = {name: sorted(t for t in edges[name] if t.startswith("tfbin.jobs")) for name in library}
    assert not {k: v for k, v in offending.items() if v}, f"library modules importing a job: {offending}"


@pytest.mark.margin(exact='module file names (nothing trains: the scan reads `startswith("train")` as `tfbin train`)')
def test_one_module_per_name():
    # `train.py` beside `training.py`, or two `report.py`, made readers guess which is which.
    names = [path.stem for _, path in modules() if path.name != "__init__.py"]
    assert len([n for n in names if n.startswith("train")]) <= 1, sorted(n for n in names if n.startswith("train"))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"modules sharing a name: {duplicates}"
