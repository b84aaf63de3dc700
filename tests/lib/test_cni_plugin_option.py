"""`pytest -k stage07 --cni-plugin PATH` works as `--cni-plugin=PATH` does: pytest guessed its rootdir from
the PATH (/usr/lib/cni) and lost the project's settings; the two forms now collect the same cases under
the project's rootdir, and run them with the same verdicts."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTEST = str(Path(sys.executable).parent / "pytest")
BRIDGE = "/usr/lib/cni/bridge"


def pytest_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTEST, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("form", [["--cni-plugin", BRIDGE], [f"--cni-plugin={BRIDGE}"]], ids=["space", "equals"])
def test_both_forms_keep_the_project_rootdir(form):
    done = pytest_run("--collect-only", "-q", "-k", "stage07 and conformance", *form)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    header = pytest_run("--collect-only", "-k", "stage07", *form).stdout
    assert f"rootdir: {ROOT}" in header and "configfile: pyproject.toml" in header, header[:500]


def test_both_forms_give_the_same_verdicts():
    if not Path(BRIDGE).exists():
        pytest.skip("the reference plugins are missing: apt-get install -y containernetworking-plugins")
    select = ["-k", "stage07 and conformance and (add.twice or error.code or gc.)", "-q", "-rA", "-p", "no:randomly"]
    space = pytest_run(*select, "--cni-plugin", BRIDGE)
    equals = pytest_run(*select, f"--cni-plugin={BRIDGE}")
    verdicts = lambda out: sorted(l for l in out.splitlines() if l.startswith(("PASSED", "FAILED", "SKIPPED", "XFAIL")))  # noqa: E731
    assert verdicts(space.stdout) and verdicts(space.stdout) == verdicts(equals.stdout), space.stdout[-2000:]
