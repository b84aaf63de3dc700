"""Proof that the suite really checks: the workbook fails with TODOs, and the solutions make it pass.

(The reference solutions passing every stage is the main suite itself.)
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cnilab.core.errors import LabError
from cnilab.runtime import cleanup
from cnilab.core.processes import run_nested
from cnilab.teach.workbook import blocks, export, reset, solution_files, source_root

BIN = Path(sys.executable).parent
STAGES = [f"stage{n:02d}" for n in range(1, 9)]


def run_pytest(where: Path, *args: str) -> subprocess.CompletedProcess:
    return run_nested([str(BIN / "pytest"), "-q", *args], cwd=where, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def workbook(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("wb") / "workbook"
    export(dest)
    return dest


def test_every_stage_has_marked_solution_steps():
    root = source_root()
    by_stage = {b.stage for rel in solution_files(root) for b in blocks(root / rel)}
    assert by_stage == set(range(1, 9))


def test_export_leaves_no_solution_and_keeps_the_tests(workbook):
    root = source_root()
    for rel in solution_files(root):
        text = (workbook / rel).read_text()
        assert "BEGIN SOLUTION" not in text, f"{rel} still holds a solution"
        if blocks(root / rel):
            assert "todo(" in text or "TODO" in text, f"{rel} lost its TODO stubs"
    for test in root.glob("tests/stage*/test_*.py"):
        assert (workbook / test.relative_to(root)).read_text() == test.read_text(), "tests must stay unchanged"


@pytest.mark.parametrize("stage", STAGES)
def test_untouched_workbook_fails_each_stage_with_todo_lines_and_leaks_nothing(workbook, stage):
    before = cleanup.find()
    done = run_pytest(workbook, "-k", stage)
    assert done.returncode == 1, done.stdout[-2000:]
    out = done.stdout + done.stderr
    assert "TODO in stage" in out and "hint: `cnilab hint" in out, out[-2000:]
    assert "Traceback" not in out, "TODOs are one line each, no traceback"
    todo_lines = [line for line in out.splitlines() if line.startswith("TODO in stage")]
    assert len(todo_lines) == len(set(todo_lines)), "one line per TODO, not one per test"
    after = cleanup.find()
    assert after.namespaces == before.namespaces and after.dirs == before.dirs, "a failing workbook leaked"


def test_solutions_put_back_make_the_workbook_pass(workbook, tmp_path):
    copy = tmp_path / "restored"
    shutil.copytree(workbook, copy)
    root = source_root()
    for rel in solution_files(root):
        shutil.copy(root / rel, copy / rel)
    done = run_pytest(copy)
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and "todo" not in done.stdout.splitlines()[-1]
    # the strictest grade (CI's: nothing recorded trusted, the grader's own tests, every test run, only the
    # machine's skips) accepts the right thing: every stage, full points
    graded = run_nested([str(BIN / "cnilab"), "grade", "--fresh", "--strict", "--json"], cwd=copy,
                        capture_output=True, text=True, timeout=900)
    import json

    g = json.loads(graded.stdout)
    assert g["total"]["points"] == g["total"]["max_points"] == 8, [(s["stage"], s["state"], s["not_run"][:3]) for s in g["stages"]]


def test_reset_puts_one_stages_todos_back(workbook, tmp_path):
    copy = tmp_path / "wb"
    shutil.copytree(workbook, copy)
    root = source_root()
    shutil.copy(root / "tests/stage02_veth/conftest.py", copy / "tests/stage02_veth/conftest.py")
    assert "todo(" not in (copy / "tests/stage02_veth/conftest.py").read_text()
    with pytest.raises(LabError, match="--force"):
        reset(2, copy)  # the student's work is not overwritten silently
    files = reset(2, copy, force=True)
    assert [str(f) for f in files] == ["tests/stage02_veth/conftest.py"]
    assert "todo(2, \"veth\"" in (copy / "tests/stage02_veth/conftest.py").read_text()


def test_hint_and_progress_commands(workbook):
    hint = subprocess.run([str(BIN / "cnilab"), "hint", "2"], cwd=workbook, capture_output=True, text=True)
    assert hint.returncode == 0 and "stage 02 hint 1/" in hint.stdout and "hint 2/" not in hint.stdout
    again = subprocess.run([str(BIN / "cnilab"), "hint", "2"], cwd=workbook, capture_output=True, text=True)
    assert "stage 02 hint 2/" in again.stdout, "each call shows one more hint"
    progress = subprocess.run([str(BIN / "cnilab"), "progress"], cwd=workbook, capture_output=True, text=True,
                              timeout=900, env={**os.environ, "COLUMNS": "160"})
    assert progress.returncode == 1
    assert progress.stdout.count("not started") >= 6 and "0/8 stages done" in progress.stdout, progress.stdout
