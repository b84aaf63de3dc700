"""Each stage's conftest.py runs once per process: the module pytest imports is the recipe demos,
the CLI and the tests' ``stage_module`` use (two copies would mean two recipes and two sets of classes)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r'''
import sys
from pathlib import Path
import pytest
from cnilab.teach.recipe import load_conftest, load_stage

class Count:
    def pytest_collection_finish(self, session):
        for stage, name in ((6, "stage06_multi"), (3, "stage03_multi")):
            path = (Path("tests") / name / "conftest.py").resolve()
            copies = [m for m in list(sys.modules.values())
                      if getattr(m, "__file__", None) and Path(m.__file__).resolve() == path]
            same = load_conftest(path) is copies[0] and load_stage(stage, Path("tests")) is copies[0].recipe
            print(f"RESULT {name} copies={len(copies)} same={same}")

pytest.main(["--collect-only", "-q", "tests/stage06_multi"], plugins=[Count()])
'''


def test_a_stage_conftest_executes_once_per_process():
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    results = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    assert results == ["RESULT stage06_multi copies=1 same=True", "RESULT stage03_multi copies=1 same=True"], \
        done.stdout[-2000:] + done.stderr[-2000:]
