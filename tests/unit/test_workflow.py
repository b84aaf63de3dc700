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
    assert {"github-actions.yml", "check-cni-plugin.yml"} <= set(WORKFLOWS), WORKFLOWS


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_workflow_passes_actionlint(actionlint, workflow):
    done = subprocess.run([actionlint, str(ROOT / "ci" / workflow)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_does_catch_a_broken_workflow(actionlint, tmp_path):
    """Negative control: the check above can fail."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.nope }}\n")
    assert subprocess.run([actionlint, str(bad)], capture_output=True).returncode != 0
