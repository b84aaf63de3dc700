"""The workbook grades honestly: hints stay out of the student's files, progress reuses results and says
what its counts say, edited tests never count as done, reset keeps the student's work, TODO counts are
right, the teacher's grade holds what it promises, and `sudo pytest -k stage05` works as written."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cnilab.core.processes import run_nested
from cnilab.teach.workbook import export, hints_of, solution_files, source_root

BIN = Path(sys.executable).parent
EASY = ["tests/stage01_netns/conftest.py", "tests/stage02_veth/conftest.py"]


def cnilab(wb: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return run_nested([str(BIN / "cnilab"), *args], cwd=wb, capture_output=True, text=True, timeout=900,
                      env={**os.environ, "COLUMNS": "200"}, **kw)


def solve(wb: Path, *rels: str) -> None:
    for rel in rels:
        shutil.copy(source_root() / rel, wb / rel)


@pytest.fixture
def workbook(tmp_path) -> Path:
    """Name: workbook. Scope: function. A fresh export, stages 01 and 02 solved, nothing run yet."""
    wb = tmp_path / "wb"
    export(wb)
    solve(wb, *EASY)
    return wb


def test_hints_live_outside_the_files_the_student_edits(workbook):
    reference = hints_of(source_root())
    assert reference["2"], "the reference stage 02 has hints to hide"
    for conftest in (workbook / "tests").glob("stage*/conftest.py"):
        if str(conftest.relative_to(workbook)) in EASY:
            continue  # solved from the reference: the student's own copy
        text = conftest.read_text()
        assert "HINTS" not in text, f"{conftest} still holds its hints"
        stage = conftest.parent.name[5:7].lstrip("0")
        for hint in reference.get(stage, []):
            assert hint[:40] not in text, f"a hint of stage {stage} is readable in {conftest}"
    first = cnilab(workbook, "hint", "3")
    assert first.returncode == 0 and "stage 03 hint 1/" in first.stdout and "hint 2/" not in first.stdout, first.stdout
    second = cnilab(workbook, "hint", "3")
    assert "stage 03 hint 2/" in second.stdout, "each call reveals one more hint"


def test_progress_reuses_results_and_prints_commands_that_work_here(workbook):
    first = cnilab(workbook, "progress")
    assert first.returncode == 1, first.stdout + first.stderr
    again = cnilab(workbook, "progress")
    rows = {line.split("│")[1].strip(): line for line in again.stdout.splitlines() if line.startswith("│ 0")}
    assert all("your last run" in row for row in rows.values()), f"nothing changed, yet stages ran again:\n{again.stdout}"
    assert "sudo" not in again.stdout, "root needs no sudo (and a root shell may have none)"
    nxt = next(line for line in again.stdout.splitlines() if line.startswith("Next:"))
    command = nxt.split("`")[1].split()
    assert Path(command[0]).exists() or shutil.which(command[0]), f"{command[0]} does not exist here: {nxt}"
    assert not command[0].startswith(".venv"), f"a workbook has no .venv of its own: {nxt}"
    (workbook / "tests/stage02_veth/conftest.py").write_text((workbook / "tests/stage02_veth/conftest.py").read_text() + "\n")
    third = cnilab(workbook, "progress")
    rerun = [line.split("│")[1].strip() for line in third.stdout.splitlines() if "this run" in line]
    assert rerun == ["02"], f"only the changed stage should run again, ran {rerun}:\n{third.stdout}"


def test_states_agree_with_their_counts(workbook):
    (workbook / "tests/stage02_veth/conftest.py").write_text(
        (workbook / "tests/stage02_veth/conftest.py").read_text().replace("pod_end.add_address(POD_IP).up()",
                                                                          "pod_end.add_address(POD_IP)"))
    by = {n: json.loads(cnilab(workbook, "grade", "--json", "--stage", str(n)).stdout)["stages"][0] for n in (1, 2, 3)}
    assert by[1]["state"] == "done" and by[1]["failed"] == 0 and by[1]["passed"] > 0, by[1]
    assert by[2]["state"] == "failing" and by[2]["failed"] > 0, by[2]
    assert by[3]["state"] == "not started" and by[3]["passed"] == 0 and by[3]["todo"] == by[3]["failed"] > 0, by[3]
    for s in by.values():
        if s["state"] == "done":
            assert s["failed"] == 0 and s["passed"] > 0 and s["tests_intact"], s


@pytest.mark.parametrize("tamper", ["edit", "delete", "add"])
def test_a_stage_whose_tests_were_touched_is_never_done(workbook, tamper):
    tests = workbook / "tests/stage01_netns"
    victim = tests / "test_stage01_netns.py"
    if tamper == "edit":  # the classic: make the failing proof pass by asserting nothing
        victim.write_text(victim.read_text().replace("assert ", "assert True or "))
    elif tamper == "delete":
        victim.unlink()
        (tests / "test_mine.py").write_text("def test_fine():\n    assert 1\n")
    else:
        (tests / "test_extra.py").write_text("def test_fine():\n    assert 1\n")
    grade = json.loads(cnilab(workbook, "grade", "--json", "--stage", "1").stdout)
    stage1 = grade["stages"][0]
    assert stage1["state"] == "tests modified" and not stage1["tests_intact"] and stage1["points"] == 0, stage1
    assert stage1["modified"], "the grade names the touched files"


def test_reset_keeps_the_students_work_unless_forced_and_restarts_the_hints(workbook):
    mine = workbook / "tests/stage02_veth/conftest.py"
    work = mine.read_text()
    cnilab(workbook, "hint", "2")
    refused = cnilab(workbook, "workbook", "reset", "2")
    assert refused.returncode != 0 and "--force" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert mine.read_text() == work, "a refused reset changed the file"
    forced = cnilab(workbook, "workbook", "reset", "2", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "todo(2" in mine.read_text(), "the TODO is back"
    backups = list((workbook / ".cnilab" / "backup").rglob("conftest.py"))
    assert [b.read_text() for b in backups] == [work], "the student's version is kept"
    assert "stage 02 hint 1/" in cnilab(workbook, "hint", "2").stdout, "the hint counter starts again"
    untouched = cnilab(workbook, "workbook", "reset", "3")
    assert untouched.returncode == 0, "an untouched stage resets without --force"


def test_todo_counts_every_test_that_needs_the_todo(tmp_path):
    wb = tmp_path / "wb"
    export(wb)
    solve(wb, "tests/stage01_netns/conftest.py")
    stage01 = (wb / "tests/stage01_netns/conftest.py")
    stage01.write_text(stage01.read_text().replace('return lab.netns("pod")', 'todo(1, "pod", "x")').replace(
        "from cnilab.teach.recipe import Recipe", "from cnilab.teach.recipe import Recipe, todo"))
    done = run_nested([str(BIN / "pytest"), "-q", "-k", "stage01"], cwd=wb, capture_output=True, text=True, timeout=300)
    line = next(l for l in done.stdout.splitlines() if "fixture `pod`" in l)
    assert line.endswith("-- 7 test(s) wait for it"), f"all 7 stage-01 tests use pod: {line}"


def test_grade_for_teachers(workbook):
    cnilab(workbook, "hint", "1")
    md = cnilab(workbook, "grade", "--markdown")
    assert md.returncode == 0, md.stderr
    assert "| 01 |" in md.stdout and "**total**" in md.stdout and "hints used" in md.stdout, md.stdout
    g = json.loads(cnilab(workbook, "grade", "--json").stdout)
    assert {"timestamp", "stages", "total"} <= set(g)
    stage1 = g["stages"][0]
    assert {"passed", "failed", "hints_used", "tests_intact", "points"} <= set(stage1)
    assert stage1["hints_used"] == 1 and stage1["points"] == 1
    assert g["total"]["points"] == sum(s["points"] for s in g["stages"]) >= 2
    assert cnilab(workbook, "grade", "--stage", "1", "--require-done").returncode == 0
    assert cnilab(workbook, "grade", "--stage", "3", "--require-done").returncode == 1


@pytest.mark.skipif(shutil.which("sudo") is None or not Path("/usr/local/bin/pytest").exists(),
                    reason="./lab.sh setup installs sudo and the pytest shim; this machine has not run it")
@pytest.mark.parametrize("where", ["checkout", "workbook"])
def test_sudo_pytest_runs_the_stage_verbatim(workbook, where):
    cwd = source_root() if where == "checkout" else workbook
    if where == "checkout" and not (cwd / "lab.sh").exists():
        pytest.skip("cnilab is installed, not checked out: there is no checkout to run in")
    for argv in (["sudo", "pytest", "-k", "stage05", "--co", "-q"], ["pytest", "-k", "stage05", "--co", "-q"]):
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"})
        assert done.returncode == 0, f"`{' '.join(argv)}` in the {where}: {done.stdout[-1500:]}{done.stderr[-1500:]}"
        assert "stage05_out/test_stage05_out.py::test_pod_reaches_the_internet_by_ping_and_tcp" in done.stdout, done.stdout[-1500:]


def test_a_pytest_that_cannot_import_cnilab_hands_over_to_the_projects(workbook, tmp_path):
    foreign = tmp_path / "foreign"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(foreign)], check=True)
    site = next(Path(sys.executable).parent.parent.glob("lib/python*/site-packages"))
    # the project's pytest, importable by a python that does not see cnilab (no .pth, no editable finder)
    (foreign / "bin" / "fpytest").write_text(
        f"#!{foreign}/bin/python -P\nimport sys\nsys.path.append({str(site)!r})\n"
        "sys.modules['cnilab'] = None  # as if absent: find_spec says None, import fails\n"
        "import pytest\nsys.exit(pytest.main(sys.argv[1:] + ['-p', 'no:cnilab']))\n")  # its entry point too
    (foreign / "bin" / "fpytest").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CNILAB_HANDED_OVER"}
    done = subprocess.run([str(foreign / "bin" / "fpytest"), "-k", "stage02", "--co", "-q"],
                          cwd=workbook, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-1500:]
    assert "test_stage02_veth.py::test_ping_both_ways" in done.stdout, done.stdout[-1500:]


def test_strict_fresh_grading_trusts_nothing_the_student_commits(workbook):
    """Forged results, a rewritten manifest, a skip or a deselection planted in the harness: --fresh --strict
    (what ci/classroom.yml grades with) sees through each; the plain grade already flags the harness edits."""
    from cnilab.teach.gradebook import fingerprint

    forged = {f"{n:02d}": {"fingerprint": fingerprint(workbook, n), "whole": True, "collected": ["x"],
                           "outcomes": {"x": "passed"}} for n in range(1, 9)}
    (workbook / ".cnilab" / "results.json").write_text(json.dumps(forged))
    solve(workbook, "tests/stage03_multi/conftest.py")
    stage3 = workbook / "tests/stage03_multi/conftest.py"  # the student's own file: a skip planted there
    stage3.write_text(stage3.read_text() + "\n\n@pytest.fixture(autouse=True)\ndef _quiet(request):\n"
                      "    if 'arp' in request.node.name:\n        pytest.skip('busy')\n")
    if "import pytest" not in stage3.read_text():
        stage3.write_text("import pytest\n" + stage3.read_text())
    (workbook / "pytest.ini").write_text("[pytest]\naddopts = -k 'not bridge_down'\n")
    manifest = json.loads((workbook / ".cnilab" / "manifest.json").read_text())
    manifest["harness"]["pytest.ini"] = manifest["harness"]["pyproject.toml"]  # "it was always there"
    (workbook / ".cnilab" / "manifest.json").write_text(json.dumps(manifest))
    g = json.loads(cnilab(workbook, "grade", "--json", "--fresh", "--strict", "--stage", "3").stdout)["stages"][0]
    assert g["points"] == 0 and g["state"] != "done", g
    assert not g["tests_intact"] and any("pytest.ini" in m for m in g["modified"]), g
    (workbook / "pytest.ini").unlink()
    g = json.loads(cnilab(workbook, "grade", "--json", "--fresh", "--strict", "--stage", "3").stdout)["stages"][0]
    assert g["state"] == "failing" and g["points"] == 0, f"a skip the machine does not explain must not pass: {g}"
    g = json.loads(cnilab(workbook, "grade", "--json", "--fresh", "--strict", "--stage", "1").stdout)["stages"][0]
    assert g["state"] == "done" and not g["not_run"], f"an honest stage stays done under --strict: {g}"


def test_a_deleted_manifest_or_stage_folder_is_never_done(workbook):
    shutil.rmtree(workbook / "tests/stage04_com")
    g = json.loads(cnilab(workbook, "grade", "--json", "--stage", "1").stdout)
    assert g["stages"][0]["points"] == 1, "stage 01 is untouched by it"
    full = json.loads(cnilab(workbook, "grade", "--json", "--stage", "4").stdout)
    assert full["stages"][0]["state"] == "tests modified", "a deleted stage keeps its row, with 0 points"
    assert cnilab(workbook, "workbook", "reset", "4").stderr.count("\n") == 1, "one sentence, no traceback"
    (workbook / ".cnilab" / "manifest.json").unlink()
    g = json.loads(cnilab(workbook, "grade", "--json", "--stage", "1").stdout)["stages"][0]
    assert g["state"] == "tests modified" and "manifest" in g["modified"][0], g


def test_damaged_records_cost_a_rerun_or_one_sentence(workbook):
    state = workbook / ".cnilab"
    (state / "results.json").write_text("[]")
    (state / "hints-shown.json").write_text('{"1": "many", "2": -5}')
    g = cnilab(workbook, "grade", "--json", "--stage", "1")
    assert g.returncode == 0 and json.loads(g.stdout)["stages"][0]["state"] == "done", g.stderr
    assert json.loads(g.stdout)["total"]["hints_used"] >= 0
    (state / "hints.dat").write_text("%%% not base64 %%%")
    hint = cnilab(workbook, "hint", "1")
    assert hint.returncode != 0 and "damaged" in hint.stderr and "Traceback" not in hint.stderr, hint.stderr


def test_a_reset_does_not_take_back_the_hints_a_grade_reports(workbook):
    cnilab(workbook, "hint", "3", "--all")
    assert cnilab(workbook, "workbook", "reset", "3").returncode == 0
    g = json.loads(cnilab(workbook, "grade", "--json", "--stage", "3").stdout)["stages"][0]
    assert g["hints_used"] == g["hints_total"] > 0, g


def test_a_run_judging_another_plugin_is_not_the_students_record(workbook):
    before = (workbook / ".cnilab" / "results.json").read_text() if (workbook / ".cnilab" / "results.json").exists() else ""
    run_nested([str(BIN / "pytest"), "-q", "-k", "stage07 and version", "--cni-plugin", "/usr/lib/cni/bridge"],
               cwd=workbook, capture_output=True, text=True, timeout=600)
    after = (workbook / ".cnilab" / "results.json").read_text() if (workbook / ".cnilab" / "results.json").exists() else ""
    assert after == before, "the reference plugin's verdicts were recorded as the student's stage 07"
