"""A workbook's records: which tests it shipped with, what the last runs found, and each stage's state.

Three files under ``.cnilab/`` of a workbook:

- ``manifest.json`` -- the SHA-256 of every test file as exported. A stage whose tests were edited,
  deleted or added to is "tests modified", never "done": the unchanged tests are the judge.
- ``results.json`` -- what pytest last found, per stage, written by ``Recorder`` (the pytest plugin
  registers it in every run inside a workbook). Each stage's record carries a fingerprint of the files
  the stage runs (its conftest and its base stages', its tests, the plugin for stage 07): a record
  whose fingerprint still matches, from a run that collected the whole stage, is as good as a rerun.
  So ``cnilab progress`` and ``cnilab grade`` rerun only the stages changed since.
- ``hints-shown.json`` -- how many hints of each stage the student has asked for.
"""

from __future__ import annotations

import ast
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .stages import stage_dirs, stage_of

STATE = ".cnilab"
MANIFEST, RESULTS, HINTS_SHOWN = "manifest.json", "results.json", "hints-shown.json"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def test_files(wb: Path) -> dict[str, str]:
    """{path relative to the workbook: SHA-256} of every test file of every stage."""
    return {str(p.relative_to(wb)): _sha(p) for d in stage_dirs(wb / "tests") for p in sorted(d.glob("test_*.py"))}


def write_manifest(wb: Path, todo_files: list[Path]) -> None:
    """The test files as exported, and the files with the TODOs as exported (to tell "not started")."""
    manifest = {"tests": test_files(wb), "todo_files": {str(rel): _sha(wb / rel) for rel in todo_files}}
    (wb / STATE / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def untouched(wb: Path, stage: int) -> bool:
    """Are the stage's TODO files (its conftest; the plugin for 07) still exactly as exported?"""
    files = _read(wb / STATE / MANIFEST, {}).get("todo_files", {})
    mine = [rel for rel in files if stage_of(rel) == stage or (stage == 7 and rel.startswith("plugin/"))]
    return bool(mine) and all((wb / rel).exists() and _sha(wb / rel) == files[rel] for rel in mine)


def modified_tests(wb: Path) -> dict[int, list[str]]:
    """{stage: ["tests/.../test_x.py edited", ...]} for the stages whose test files differ from the export."""
    shipped = _read(wb / STATE / MANIFEST, {}).get("tests")
    if shipped is None:  # a workbook exported before manifests: nothing to compare with
        return {}
    now, found = test_files(wb), {}
    for rel in sorted(set(shipped) | set(now)):
        change = "deleted" if rel not in now else "added" if rel not in shipped else "edited" if now[rel] != shipped[rel] else ""
        if change:
            found.setdefault(stage_of(rel) or 0, []).append(f"{rel} {change}")
    return found


def stage_files(wb: Path, stage: int) -> list[Path]:
    """The files a stage's run depends on: its folder, its base stages' conftests, and the plugin for 07."""
    dirs = {stage_of(d.name): d for d in stage_dirs(wb / "tests")}
    files, todo, seen = [], [stage], set()
    while todo:
        n = todo.pop()
        if n in seen or n not in dirs:
            continue
        seen.add(n)
        conftest = dirs[n] / "conftest.py"
        files += [conftest] if n != stage else sorted(dirs[n].glob("*.py"))
        if conftest.exists():
            todo += bases(conftest)
    if stage == 7:
        files += sorted((wb / "plugin").rglob("*.py"))
    return [f for f in files if f.exists()]


def bases(conftest: Path) -> list[int]:
    """The ``base=N`` of the stage's ``Recipe(...)`` call, read without running the file (which may not even
    parse while a student is halfway through it: then nothing, and the stage reruns anyway)."""
    try:
        tree = ast.parse(conftest.read_text())
    except SyntaxError:
        return []
    return [k.value.value for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Recipe"
            for k in n.keywords if k.arg == "base" and isinstance(k.value, ast.Constant)]


def fingerprint(wb: Path, stage: int) -> str:
    h = hashlib.sha256()
    for f in stage_files(wb, stage):
        h.update(str(f.relative_to(wb)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


# -- recording results ---------------------------------------------------------------------------------

def outcome_of(report: pytest.TestReport) -> str | None:
    """One test phase's outcome as the gradebook counts it (None: a passing setup or teardown)."""
    if report.skipped:
        return "xfailed" if hasattr(report, "wasxfail") else "skipped"
    if report.failed:  # a TODO met in a fixture, or one the plugin's stub answered with (stage 07)
        todo = getattr(report, "cnilab_todo", None) or "TODO in stage " in str(report.longrepr)
        return "todo" if todo else "failed"
    return "passed" if report.when == "call" else None


WORST = ("failed", "todo", "xfailed", "skipped", "passed")


class Recorder:
    """The pytest plugin that keeps ``results.json`` of a workbook up to date after every run."""

    def __init__(self, wb: Path, args: list[str]) -> None:
        self.wb, self.args = wb, args
        self.collected: dict[int, set[str]] = {}
        self.outcomes: dict[str, str] = {}

    def pytest_itemcollected(self, item: pytest.Item) -> None:  # before -k/-m deselect: the stage's whole set
        stage = stage_of(item.nodeid)
        if stage is not None:
            self.collected.setdefault(stage, set()).add(item.nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = outcome_of(report)
        if outcome and stage_of(report.nodeid) is not None:
            old = self.outcomes.get(report.nodeid, "passed")
            self.outcomes[report.nodeid] = min(old, outcome, key=WORST.index)

    def whole(self, stage: int) -> bool:
        """Did this run collect all of the stage (its folder or an ancestor given, not one file or test)?"""
        folder = next((d for d in stage_dirs(self.wb / "tests") if stage_of(d.name) == stage), None)
        paths = [Path(a.split("::")[0]).resolve() for a in self.args if not a.startswith("-")] or [self.wb]
        return folder is not None and any(p == folder or p in folder.parents for p in paths)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        path = self.wb / STATE / RESULTS
        records = _read(path, {})
        for stage, ids in self.collected.items():
            fp, key = fingerprint(self.wb, stage), f"{stage:02d}"
            old = records.get(key, {})
            fresh = old.get("fingerprint") == fp
            outcomes = {**(old.get("outcomes", {}) if fresh else {}),
                        **{i: o for i, o in self.outcomes.items() if i in ids}}
            records[key] = {"fingerprint": fp, "time": time.time(),
                            "whole": self.whole(stage) or (fresh and old.get("whole", False)),
                            "collected": sorted(ids | set(old.get("collected", []) if fresh else [])),
                            "outcomes": outcomes}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(records, indent=1))
        tmp.replace(path)


# -- reading them back ---------------------------------------------------------------------------------

@dataclass
class StageRecord:
    stage: int
    passed: int = 0
    failed: int = 0
    todo: int = 0
    skipped: int = 0
    xfailed: int = 0
    time: float = 0.0
    modified: tuple[str, ...] = ()
    started: bool = True   # the student changed the stage's TODO files since the export

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.todo

    @property
    def state(self) -> str:
        """done / failing / not started -- or "tests modified", which is never done."""
        if self.modified:
            return "tests modified"
        if self.total == 0:
            return "not run"
        if self.failed == 0 and self.todo == 0:
            return "done"
        return "not started" if not self.started and self.failed == 0 else "failing"


def stale_stages(wb: Path) -> list[int]:
    """The stages whose last recorded run no longer stands (files changed since, never run whole, or tests
    never finished)."""
    records = _read(wb / STATE / RESULTS, {})
    stale = []
    for d in stage_dirs(wb / "tests"):
        stage = stage_of(d.name)
        rec = records.get(f"{stage:02d}")
        if (rec is None or rec.get("fingerprint") != fingerprint(wb, stage) or not rec.get("whole")
                or set(rec.get("collected", [])) - set(rec.get("outcomes", {}))):
            stale.append(stage)
    return stale


def stage_records(wb: Path) -> list[StageRecord]:
    records, modified = _read(wb / STATE / RESULTS, {}), modified_tests(wb)
    out = []
    for d in stage_dirs(wb / "tests"):
        stage = stage_of(d.name)
        rec = records.get(f"{stage:02d}", {})
        r = StageRecord(stage, time=rec.get("time", 0.0), modified=tuple(modified.get(stage, ())),
                        started=not untouched(wb, stage))
        for outcome in rec.get("outcomes", {}).values():
            setattr(r, outcome, getattr(r, outcome) + 1)
        out.append(r)
    return out


def hints_shown(wb: Path) -> dict[str, int]:
    return _read(wb / STATE / HINTS_SHOWN, {})


def set_hints_shown(wb: Path, stage: int, shown: int | None) -> None:
    seen = hints_shown(wb)
    if shown is None:
        seen.pop(str(stage), None)
    else:
        seen[str(stage)] = shown
    (wb / STATE / HINTS_SHOWN).write_text(json.dumps(seen))
