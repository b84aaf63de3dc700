"""The GitHub Actions workflows in ci/ pass actionlint (no root needed)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
ACTIONLINT = Path(sys.executable).parent / "actionlint"


@pytest.fixture
def actionlint():
    if not ACTIONLINT.exists():
        pytest.skip("actionlint is not installed: .venv/bin/pip install -e '.[dev]' (./lab.sh does)")
    return str(ACTIONLINT)


WORKFLOWS = sorted(p.name for p in (ROOT / "ci").glob("*.yml"))


def test_every_workflow_is_checked():
    assert {"github-actions.yml", "check-cni-plugin.yml", "classroom.yml"} <= set(WORKFLOWS), WORKFLOWS


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_workflow_passes_actionlint(actionlint, workflow):
    done = subprocess.run([actionlint, str(ROOT / "ci" / workflow)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_does_catch_a_broken_workflow(actionlint, tmp_path):
    """Negative control: the check above can fail."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.nope }}\n")
    assert subprocess.run([actionlint, str(bad)], capture_output=True).returncode != 0


def test_the_classroom_workflow_calls_cnilab_as_cnilab_parses_it():
    """Every `cnilab ...` command of the autograding workflow is one the CLI accepts (a typo would grade 0)."""
    import re
    import shlex

    from cnilab.cli import build_parser

    text = (ROOT / "ci" / "classroom.yml").read_text()
    commands = re.findall(r"cnilab/\.venv/bin/cnilab ([^\n>]+)", text)
    assert len(commands) >= 10, commands  # the full grade, one per stage, the leftover check
    for command in commands:
        build_parser().parse_args(shlex.split(command))
    stages = re.findall(r"--stage (\d+) --require-done", text)
    assert sorted(map(int, stages)) == list(range(1, 9)), "one graded step per stage"
