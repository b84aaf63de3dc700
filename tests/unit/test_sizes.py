"""Small modules, short functions: none of cnilab's or the plugin's modules is over 400 lines, and no
function is over 60 lines unless its docstring says why (a line starting "Long because")."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*ROOT.glob("cnilab/**/*.py"), *ROOT.glob("plugin/**/*.py")])


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_module_and_functions_are_small(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 400, f"{path.name} has {len(text.splitlines())} lines: split it by what its parts do"
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(ast.parse(text))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60
            and "Long because" not in (ast.get_docstring(n) or "")]
    assert not long, f"functions over 60 lines in {path.name}: {long}"
