"""The checkout's root conftest.py runs the one text every workbook gets (cnilab/teach/root_conftest.py)."""

import ast
import importlib.util
from pathlib import Path

import cnilab.teach.root_conftest as template

ROOT = Path(__file__).resolve().parents[2]


def test_the_checkouts_root_conftest_runs_the_workbook_template():
    spec = importlib.util.spec_from_file_location("checkout_root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module._project_pytest(ROOT) == ROOT / ".venv" / "bin" / "pytest", "the template's lookup, from the checkout"
    assert module._TARGET is None, "this pytest imports cnilab: nothing to hand over"
    assert module._foreign.__code__.co_filename == template.__file__, "the function comes from the template file"


def test_the_template_imports_nothing_but_the_standard_library():
    tree = ast.parse(Path(template.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"importlib", "json", "os", "sys", "pathlib", "__future__"}, imported
