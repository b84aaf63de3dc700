"""Every assertion of a stage's tests says which property failed: a student reads that sentence, not a
bare `assert [] == ['10.0.3.1/24']`."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
STAGE_TESTS = sorted(ROOT.glob("tests/stage*/test_*.py"))


@pytest.mark.parametrize("path", STAGE_TESTS, ids=[p.name for p in STAGE_TESTS])
def test_every_stage_assertion_carries_a_message(path):
    tree = ast.parse(path.read_text())
    bare = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert) and n.msg is None]
    assert not bare, f"{path.relative_to(ROOT)}: assertions without a message at lines {sorted(bare)}"


def test_the_check_sees_a_bare_assertion():
    """Negative control: the parse above finds a bare assert when there is one."""
    tree = ast.parse("def test_x():\n    assert 1 == 2\n")
    assert [n for n in ast.walk(tree) if isinstance(n, ast.Assert) and n.msg is None], "the walk found nothing"
