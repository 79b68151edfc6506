"""Docstrings say what a thing computes, not what it scored (issue #39).

The docstrings of tfbin/, models/, export/ and tuning/ give the formula, the arguments and
defaults, where the defaults come from (one sentence and a link into docs/) and the references.
Measured accuracies, step times and seed-by-seed figures live in docs/: in the tables
bench/make_tables.py renders from bench/results/*.json, and in the hand-written notes beside them
(docs/benchmarks.md, "How the defaults were chosen"). A figure typed into a docstring is a second
copy that nothing regenerates, and it drifts."""
import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = ("tfbin", "models", "export", "tuning")

# A figure of the form 0.9016 or 0.881 (an accuracy, a fraction) counts only beside a word of
# a measurement: dataset statistics (`cifar_normalize`'s 0.4914) and formulas (`|soft| ≥ 0.99`,
# `clip_value=1.0`, `momentum 0.99`, `1e-3`) carry none of these words, or fewer digits.
FRACTION = re.compile(r"(?<![\w.])0\.\d{3,4}(?![\d])")
MEASUREMENT_WORDS = re.compile(
    r"accura|\bacc\b|\bhard\b|scored|\bscores?\b|deployed|recalibrat|\bseeds?\b|validation|test\s+set|"
    r"\bpoints?\b|\bagainst\b|\bvs\.?\b|\bste\b|`ste`",
    re.I,
)
NEAR = 100  # characters either side of a figure in which a measurement word counts
# Docstrings wrap anywhere, so the patterns below match white space (\s), not only a space.
ALWAYS = {
    "a percentage with decimals": re.compile(r"(?<![\w.])\d+\.\d+\s?%"),
    "a mean ± spread": re.compile(r"(?<![\w.])\d*\.\d+\s?±\s?\d*\.\d+"),
    "a step time": re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?ms\b(?!\s*=)"),
    "a cost ratio": re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s+of\s+an?\s+(?:whole\s+)?\S+\s+(?:training\s+)?step\b|"
                               r"(?<![\w.])\d+(?:\.\d+)?\s?×\s+(?:slower|faster|the\s+cost)"),
    "a lab note": re.compile(r"\bmeasured\s+(?:on|here)\b|\bmeasured\s+by\s+`?python\s+bench/", re.I),
}
SIGNED = re.compile(r"(?<![\w.])[+−-]\d+\.\d+\b")  # +8.0, −1.9: a difference, when in points
POINTS = re.compile(r"\bpoints?\b", re.I)


def lab_notes(doc: str) -> list[str]:
    """What in one docstring reads as a measurement: ['kind: excerpt', ...]."""
    found = []

    def excerpt(m):
        return " ".join(doc[max(0, m.start() - 40): m.end() + 20].split())

    for m in FRACTION.finditer(doc):
        window = doc[max(0, m.start() - NEAR): m.end() + NEAR]
        if MEASUREMENT_WORDS.search(window):
            found.append(f"an accuracy figure: …{excerpt(m)}…")
    for m in SIGNED.finditer(doc):
        if POINTS.search(doc[max(0, m.start() - NEAR): m.end() + NEAR]):
            found.append(f"a difference in points: …{excerpt(m)}…")
    for kind, pattern in ALWAYS.items():
        found += [f"{kind}: …{excerpt(m)}…" for m in pattern.finditer(doc)]
    return found


def docstrings(root=ROOT, folders=FOLDERS):
    """(place, docstring) of every module, class and function docstring under `folders`."""
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in [tree, *ast.walk(tree)]:
                if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                if node is not tree and isinstance(node, ast.Module):
                    continue
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 1)}"
                    yield f"{where} {getattr(node, 'name', '(module)')}", doc


def flagged(root=ROOT, folders=FOLDERS) -> dict:
    """{place: [lab notes]} of every docstring that quotes a measurement."""
    return {place: notes for place, doc in docstrings(root, folders) if (notes := lab_notes(doc))}


def test_no_docstring_quotes_a_measurement():
    found = flagged()
    report = "\n".join(f"{place}:\n    " + "\n    ".join(notes) for place, notes in found.items())
    assert not found, (
        f"{len(found)} docstring(s) quote measurements; say what the thing computes and link the table in docs/ "
        f"(findings not in a generated table go to a hand-written section of docs/, with their command):\n{report}"
    )


@pytest.mark.parametrize("note", [
    "0.9120 / 0.9068 against 0.9052 / 0.9062 for the paper's schedule",
    "1,024 entries scored 0.9049 hard accuracy and 4,096 scored 0.9064",
    "hard accuracy after BN recalibration: 0.709 at k = 1, 0.826 at 10, 0.848 at 30",
    "it took 0.4 of a whole\n    `ste` training step",
    "`abc` trains 1.5× slower than `ste`",
    "0.9087 ± 0.0052 deployed (0.9050 ± 0.0057 before recalibration)",
    "`v_end = v_kernel_end = 3` 0.8840 (seed 1: 0.8769)",
    "a step 207 ms against 223 ms",
    "at 118 vs 269 ms/step",
    "in points of hard accuracy: self_binarizing +8.0 and +8.0, ste +6.8 and +4.1",
    "the BN cost −1.9 and −12.7 points",
    "the float net reached 92.5 % on Fashion-MNIST",
    "Measured on Fashion-MNIST (`python bench/blrnet_logit_scale.py`)",
])
def test_the_check_sees_a_lab_note(note):
    assert lab_notes(f"A quantizer.\n\n{note}.\n"), note


@pytest.mark.parametrize("formula", [
    "clip_value: the clip of `SteSign` (default 1.0).",
    "BatchNorm momentum 0.99, Adam 1e-3, weight decay 1e-4.",
    "torchvision's `Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))`",
    "`|soft(x) − hard(x)| ≤ 0.01·max|hard|` (for ±1: `|soft| ≥ 0.99`), histograms over −1.05…1.05",
    "The paper's schedule is `T_min = 0.1`, `T_max = 10`; the defaults `t_min = 1`, `t_max = 3.16`.",
    "the bound (δ = 0.05) on the linear loss; `train[:10%]`; within 1 % of the hard one",
    "sharpen: float = 0.2965, warmup 0.23, finish 0.4564 (the search's shape).",
    "Defaults chosen on the validation split: see docs/benchmarks.md#irnet.",
    "the split point can lag by up to N − 1 steps; `k` 1 → 3.16 over 3 epochs: `t` = 1, 1.47, 2.15",
    "`s_o = 2^round(log2 mean|w|)`; 4,096 negatives (CMIM's code), 1,024 here; ~1,000 steps at lr 1e-3",
])
def test_the_check_leaves_formulas_and_defaults_alone(formula):
    assert not lab_notes(f"A quantizer.\n\n{formula}\n"), lab_notes(formula)


def test_the_check_reads_every_kind_of_docstring(tmp_path):
    (tmp_path / "tfbin").mkdir()
    (tmp_path / "tfbin" / "m.py").write_text(
        '"""Scored 0.9016 hard."""\n\n'
        'class A:\n    """0.9016 against `ste`."""\n\n    def f(self):\n        """+8.0 points."""\n\n'
        'async def g():\n    """7 ms per step."""\n'
    )
    assert sorted(p.split()[1] for p in flagged(tmp_path, ("tfbin",))) == ["(module)", "A", "f", "g"]


def _anchors(markdown: str) -> set:
    """GitHub's heading anchors of a Markdown page (lower case, punctuation dropped, spaces to -)."""
    anchors, seen = set(), {}
    for heading in re.findall(r"^#{1,6} +(.+?) *$", re.sub(r"```.*?```", "", markdown, flags=re.S), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_every_link_from_a_docstring_into_docs_resolves():
    broken = []
    for place, doc in docstrings():
        for page, anchor in re.findall(r"\b(docs/[\w.-]+\.md|README\.md)(?:#([\w-]+))?", doc):
            path = ROOT / page
            if not path.is_file():
                broken.append(f"{place}: {page} does not exist")
            elif anchor and anchor not in _anchors(path.read_text(encoding="utf-8")):
                broken.append(f"{place}: {page} has no heading #{anchor}")
    assert not broken, "\n".join(broken)
