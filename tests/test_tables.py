"""The README's and docs' benchmark tables are the ones bench/make_tables.py renders from the
committed JSON (no figure typed by hand, none left stale after a result changed)."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_table_in_the_docs_is_rendered_from_the_committed_results():
    spec = importlib.util.spec_from_file_location("make_tables", os.path.join(ROOT, "bench", "make_tables.py"))
    make_tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_tables)
    texts = make_tables.rendered()
    assert os.path.join(ROOT, "README.md") in texts
    for path, text in texts.items():
        with open(path, encoding="utf-8") as f:
            assert f.read() == text, f"{os.path.relpath(path, ROOT)} differs from its tables: run `python bench/make_tables.py`"
