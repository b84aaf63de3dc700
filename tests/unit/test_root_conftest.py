"""The checkout's root conftest.py and the one every workbook gets are one text (export copies it)."""

from pathlib import Path

import cnilab.teach.root_conftest as template

ROOT = Path(__file__).resolve().parents[2]


def test_the_checkouts_root_conftest_is_the_workbook_template():
    assert (ROOT / "conftest.py").read_text() == Path(template.__file__).read_text(), (
        "conftest.py drifted from cnilab/teach/root_conftest.py: copy the template over it")


def test_the_template_imports_nothing_but_the_standard_library():
    import ast

    tree = ast.parse(Path(template.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"importlib", "json", "os", "sys", "pathlib", "__future__"}, imported
