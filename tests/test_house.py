"""House rules a newcomer can rely on when changing the library (`tfbin/`, `models/`, `export/`,
`tuning/`), checked as `tests/test_imports.py` checks the import graph:

- no function or method longer than `MAX_LINES` lines (from its `def` to the last line of its
  body; decorators not counted): a longer one is split into named steps a reader can follow;
- no module reaches into another module's private names, neither `from tfbin.x import _y` nor
  `x._y` on an imported tfbin module. Private *modules* (`tfbin._io`, `tfbin._graph`, ...) are
  shared inside the package and may be imported; a private name inside any module may not.
  What another module needs is public (no underscore) in the module that owns it.
"""
import ast
import importlib.util
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# setup.py maps these folders into the `tfbin` package.
PACKAGES = {"tfbin": "tfbin", "export": "tfbin.export", "models": "tfbin.models", "tuning": "tfbin.tuning"}
MAX_LINES = 80



def modules(root=None, packages=None):
    root, packages = root or ROOT, packages or PACKAGES
    for folder, package in packages.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            yield ".".join([package, *parts]).removesuffix(".__init__"), path


def long_functions(root=None, packages=None) -> list[str]:
    """`module:line name (N lines)` for every function or method over `MAX_LINES` lines."""
    found = []
    for name, path in modules(root, packages):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    found.append(f"{name}:{node.lineno} {node.name} ({lines} lines)")
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _imported_from(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts[: len(parts) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _module_names(tree, module, is_package, known) -> dict:
    """The names this module binds to tfbin modules by importing them: `{local name: module}`."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "tfbin":
                    bound[alias.asname or "tfbin"] = alias.name if alias.asname else "tfbin"
        elif isinstance(node, ast.ImportFrom):
            source = _imported_from(node, module, is_package)
            for alias in node.names:
                if f"{source}.{alias.name}" in known:
                    bound[alias.asname or alias.name] = f"{source}.{alias.name}"
    return bound


def private_uses(root=None, packages=None) -> list[str]:
    """`module: owner._name` for every private name a module takes from another tfbin module."""
    known = dict(modules(root, packages))
    found = []
    for module, path in known.items():
        tree = ast.parse(path.read_text())
        is_package = path.name == "__init__.py"
        bound = _module_names(tree, module, is_package, known)

        def resolve(node):
            """The tfbin module an expression names (`quantizers`, `tfbin.data`), else None."""
            if isinstance(node, ast.Name):
                return bound.get(node.id)
            if isinstance(node, ast.Attribute):
                owner = resolve(node.value)
                return f"{owner}.{node.attr}" if owner and f"{owner}.{node.attr}" in known else None
            return None

        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _imported_from(node, module, is_package)
                if source.split(".")[0] != "tfbin" or source == module:
                    continue
                for alias in node.names:
                    if _private(alias.name) and f"{source}.{alias.name}" not in known:
                        found.append(f"{module}: {source}.{alias.name}")
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                owner = resolve(node.value)
                if owner and owner != module and f"{owner}.{node.attr}" not in known:
                    found.append(f"{module}: {owner}.{node.attr}")
    return sorted(set(found))


def test_no_function_is_longer_than_the_house_limit():
    found = long_functions()
    assert not found, f"functions over {MAX_LINES} lines (split them into named steps): {found}"


def test_no_module_uses_another_modules_private_names():
    found = private_uses()
    assert not found, f"private names used across modules (make them public where they live): {found}"


def test_the_checks_see_a_long_function_and_each_kind_of_private_use(tmp_path):
    # The checks must be able to fail: a synthetic package with every fault, and the allowed forms.
    pkg = tmp_path / "tfbin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "_io.py").write_text("def write():\n    pass\n\n\ndef _helper():\n    pass\n")
    (pkg / "a.py").write_text("def _own():\n    pass\n\n\ndef public():\n    return _own()\n")
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES - 1))
    (pkg / "b.py").write_text(
        "import tfbin.a\n"
        "from tfbin import _io, a as alias\n"
        "from tfbin._io import write\n"
        "from tfbin.a import _own\n"
        "from . import _io as io_again\n"
        "from ._io import _helper\n\n\n"
        "def fits():\n" + body + "\n\n"
        "@staticmethod\n"
        "def too_long():\n" + body + "    x = 0\n\n\n"
        "def reaches():\n"
        "    _io.write(), io_again.write(), alias.public(), alias.__name__\n"
        "    return tfbin.a._own, alias._own\n"
    )
    packages = {"tfbin": "tfbin"}
    assert long_functions(tmp_path, packages) == [f"tfbin.b:{9 + MAX_LINES + 3} too_long ({MAX_LINES + 1} lines)"]
    assert private_uses(tmp_path, packages) == ["tfbin.b: tfbin._io._helper", "tfbin.b: tfbin.a._own"]
    (pkg / "b.py").write_text("from tfbin import a\n\n\ndef f():\n    return a._own()\n")
    (pkg / "c.py").write_text("import tfbin.a\n\nOWN = tfbin.a._own\n")
    assert private_uses(tmp_path, packages) == ["tfbin.b: tfbin.a._own", "tfbin.c: tfbin.a._own"]


@pytest.mark.parametrize("name, private", [("_register", True), ("__name__", False), ("register", False), ("_io", True)])
def test_private_means_a_leading_underscore_but_not_a_dunder(name, private):
    assert _private(name) is private


def test_every_mutation_of_make_mutations_still_applies_to_the_code():
    # `make mutations` edits the code by text: a refactor that moves a snippet must move its mutation.
    spec = importlib.util.spec_from_file_location("tfbin_mutations", ROOT / "tests" / "mutations.py")
    mutations = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mutations  # dataclasses look their module up there
    try:
        spec.loader.exec_module(mutations)
    finally:
        del sys.modules[spec.name]
    assert mutations.check_list() == []
