"""A workbook's records: which tests it shipped with, what the last runs found, and each stage's state.

Three files under ``.cnilab/`` of a workbook:

- ``manifest.json`` -- the SHA-256 of the harness as exported (every file but the TODO files) and of the
  TODO files. A stage whose harness was edited, deleted or added to is "tests modified", never "done":
  the unchanged tests are the judge.
- ``results.json`` -- what pytest last found, per stage, written by ``Recorder`` (the pytest plugin
  registers it in every run inside a workbook). Each stage's record carries a fingerprint of the files
  the stage runs (its conftest and its base stages', its tests, the plugin for stage 07): a record
  whose fingerprint still matches, from a run that collected the whole stage, is as good as a rerun.
  So ``cnilab progress`` and ``cnilab grade`` rerun only the stages changed since.
- ``hints-shown.json`` / ``hints-used.json`` -- how many hints of each stage ``cnilab hint`` shows now (a
  reset starts again) and the most ever revealed (what a grade reports).

The records are a convenience, not a proof (the student's code runs in the judge's process):
``grade --fresh --strict`` discards them and judges by the grader's own cnilab.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .stages import stage_dirs, stage_of

STATE = ".cnilab"
MANIFEST, RESULTS = "manifest.json", "results.json"
HINTS_SHOWN, HINTS_USED = "hints-shown.json", "hints-used.json"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read(path: Path, default: Any) -> Any:
    """The JSON in ``path`` if it is readable and of ``default``'s type, else ``default``: a damaged record
    only costs a rerun (or, for the manifest, the verdict "cannot verify")."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return default
    return value if isinstance(value, type(default)) else default


#: what runs produce beside the harness (never part of it)
NOT_HARNESS = {"__pycache__", ".pytest_cache", STATE, "cnilab-pictures", "README.md"}


def harness_files(wb: Path, todo: set[str]) -> dict[str, str]:
    """{path: SHA-256} of every file of the workbook but the student's TODO files: the tests and everything
    that decides how they run (conftests, pytest settings, the plugin's harness). Only the TODO files may
    change; anything else edited, deleted or added makes its stage's tests "modified"."""
    files = (p for p in wb.rglob("*") if p.is_file() and not NOT_HARNESS & set(p.relative_to(wb).parts))
    return {str(p.relative_to(wb)): _sha(p) for p in sorted(files) if str(p.relative_to(wb)) not in todo}


def write_manifest(wb: Path, todo_files: list[Path]) -> None:
    """The harness as exported, and the files with the TODOs as exported (to tell "not started")."""
    todo = {str(rel) for rel in todo_files}
    manifest = {"harness": harness_files(wb, todo), "todo_files": {rel: _sha(wb / rel) for rel in sorted(todo)}}
    (wb / STATE / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def untouched(wb: Path, stage: int) -> bool:
    """Are the stage's TODO files (its conftest; the plugin for 07) still exactly as exported?"""
    files = _read(wb / STATE / MANIFEST, {}).get("todo_files", {})
    mine = [rel for rel in files if stage_of(rel) == stage or (stage == 7 and rel.startswith("plugin/"))]
    return bool(mine) and all((wb / rel).exists() and _sha(wb / rel) == files[rel] for rel in mine)


def modified_tests(wb: Path, shipped: dict[str, str] | None = None) -> dict[int, list[str]]:
    """{stage: ["tests/.../test_x.py edited", ...]} for the stages whose harness differs from ``shipped``
    (default: the workbook's manifest; ``grade --strict`` passes a fresh export of the grader's own cnilab,
    so a manifest the student rewrote proves nothing). A file outside every stage counts for all stages."""
    manifest = _read(wb / STATE / MANIFEST, {})
    stages = sorted({stage_of(d.name) for d in stage_dirs(wb / "tests")} | set(range(1, 9)))
    if shipped is None:
        shipped = manifest.get("harness")
    if not isinstance(shipped, dict):
        return {s: ["no readable manifest (.cnilab/manifest.json): the tests cannot be verified -- export again"]
                for s in stages}
    now = harness_files(wb, set(manifest.get("todo_files", {})) or default_todos(wb))
    found: dict[int, list[str]] = {}
    for rel in sorted(set(shipped) | set(now)):
        change = "deleted" if rel not in now else "added" if rel not in shipped else "edited" if now[rel] != shipped[rel] else ""
        if change:
            owner = stage_of(rel) or (7 if rel.startswith("plugin/") else None)
            for s in [owner] if owner else stages:
                found.setdefault(s, []).append(f"{rel} {change}")
    return found


def default_todos(wb: Path) -> set[str]:
    """The TODO files of a workbook whose manifest does not list them: each stage's conftest and the plugin."""
    return {"plugin/cnilab_cni/plugin.py", *(str((d / "conftest.py").relative_to(wb)) for d in stage_dirs(wb / "tests"))}


def stage_files(wb: Path, stage: int) -> list[Path]:
    """The files a stage's run depends on: all of its folder, its base stages' conftests, the plugin for 07,
    and every file outside the stage folders (root conftest, pytest settings) -- an edit to any of them
    means the stage's last results no longer stand."""
    dirs = {stage_of(d.name): d for d in stage_dirs(wb / "tests")}
    files, todo, seen = [], [stage], set()
    while todo:
        n = todo.pop()
        if n in seen or n not in dirs:
            continue
        seen.add(n)
        conftest = dirs[n] / "conftest.py"
        files += [conftest] if n != stage else [p for p in sorted(dirs[n].rglob("*")) if p.is_file()]
        if conftest.exists():
            todo += bases(conftest)
    common = [p for p in sorted(wb.rglob("*")) if p.is_file() and stage_of(p.relative_to(wb)) is None
              and not (p.relative_to(wb).parts[0] == "plugin" and stage != 7)]
    files += common
    return [f for f in files if f.exists() and not NOT_HARNESS & set(f.relative_to(wb).parts)]


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

def skip_reason(report: pytest.TestReport) -> str | None:
    """Why a test was skipped, as its skip said it (None when there is no reason to read)."""
    return str(report.longrepr[2]).removeprefix("Skipped: ") if isinstance(report.longrepr, tuple) else None


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
    """The pytest plugin that keeps ``results.json`` of a workbook up to date after every run.

    A run that judges another plugin (``--cni-plugin``, ``--cni-config``) is not the student's work and is
    not recorded; a stage whose collection failed is recorded as failed (not left at its last result)."""

    def __init__(self, wb: Path, args: list[str], judged_elsewhere: bool = False) -> None:
        self.wb, self.args, self.off = wb, args, judged_elsewhere
        self.collected: dict[int, set[str]] = {}
        self.outcomes: dict[str, str] = {}
        self.reasons: dict[str, str] = {}

    def pytest_itemcollected(self, item: pytest.Item) -> None:  # before -k/-m deselect: the stage's whole set
        stage = stage_of(item.nodeid)
        if stage is not None:
            self.collected.setdefault(stage, set()).add(item.nodeid)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        stage = stage_of(report.nodeid)
        if report.failed and stage is not None:  # a conftest or test file that does not even import
            self.collected.setdefault(stage, set()).add(f"{report.nodeid}::<collection>")
            self.outcomes[f"{report.nodeid}::<collection>"] = "failed"

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = outcome_of(report)
        if outcome and stage_of(report.nodeid) is not None:
            old = self.outcomes.get(report.nodeid, "passed")
            self.outcomes[report.nodeid] = min(old, outcome, key=WORST.index)
            if outcome == "skipped" and skip_reason(report) is not None:
                self.reasons[report.nodeid] = skip_reason(report)

    def whole(self, stage: int) -> bool:
        """Did this run collect all of the stage (its folder or an ancestor given, not one file or test)?"""
        folder = next((d for d in stage_dirs(self.wb / "tests") if stage_of(d.name) == stage), None)
        paths = [Path(a.split("::")[0]).resolve() for a in self.args if not a.startswith("-")] or [self.wb]
        return folder is not None and any(p == folder or p in folder.parents for p in paths)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.off:
            return
        path = self.wb / STATE / RESULTS
        records = _read(path, {})
        for stage, ids in self.collected.items():
            fp, key = fingerprint(self.wb, stage), f"{stage:02d}"
            old = records.get(key) if isinstance(records.get(key), dict) else {}
            fresh = old.get("fingerprint") == fp
            mine = {i: o for i, o in self.outcomes.items() if i in ids}
            records[key] = {"fingerprint": fp, "time": time.time(),
                            "whole": self.whole(stage) or (fresh and old.get("whole", False)),
                            "collected": sorted(ids | set(old.get("collected", []) if fresh else [])),
                            "outcomes": {**(old.get("outcomes", {}) if fresh else {}), **mine},
                            "reasons": {**(old.get("reasons", {}) if fresh else {}),
                                        **{i: r for i, r in self.reasons.items() if i in ids}}}
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
    started: bool = True     # the student changed the stage's TODO files since the export
    current: bool = True     # the record is of the stage's files as they are now
    broken: bool = False     # it was rerun and still recorded nothing (it did not even collect)
    missing: tuple[str, ...] = ()  # tests of the grader's suite this run never ran (grade --strict)

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.todo + self.skipped + self.xfailed

    @property
    def state(self) -> str:
        """done / failing / not started -- or "tests modified", which is never done; "not run" until a run
        of the stage's files as they are now exists."""
        if self.modified:
            return "tests modified"
        if self.broken:
            return "failing"
        if not self.current or self.total == 0:
            return "not run"
        if self.failed == 0 and self.todo == 0 and self.passed:
            return "done"
        return "not started" if not self.started and self.failed == 0 else "failing"


#: skip reasons a stage may be done with: the machine lacks a tier (Docker, containerd, kind), the
#: conformance checker found a case not applicable to the plugin's configuration, or the test judges the
#: reference plugin, not the student's (every skip of the reference suite on this machine says one of these)
ENVIRONMENT_SKIP = re.compile(r"docker|containerd|\bkind\b|github actions|crictl|not installed|not applicable|kernel"
                              r"|the reference", re.IGNORECASE)


def stale_stages(wb: Path) -> list[int]:
    """The stages whose last recorded run no longer stands (files changed since, never run whole, or tests
    never finished)."""
    records = _read(wb / STATE / RESULTS, {})
    stale = []
    for d in stage_dirs(wb / "tests"):
        stage = stage_of(d.name)
        rec = records.get(f"{stage:02d}")
        if (not isinstance(rec, dict) or rec.get("fingerprint") != fingerprint(wb, stage) or not rec.get("whole")
                or set(rec.get("collected", [])) - set(rec.get("outcomes", {}))):
            stale.append(stage)
    return stale


def stage_records(wb: Path, *, shipped: dict[str, str] | None = None, expected: dict[int, set[str]] | None = None,
                  broken: list[int] = ()) -> list[StageRecord]:
    """Each stage's record as of its files now. ``shipped``/``expected`` (grade --strict): the harness and the
    test ids of the grader's own suite; then a test never run counts as failed, and so does a skip whose
    reason is not the machine's (ENVIRONMENT_SKIP). ``broken``: stages rerun that still recorded nothing."""
    records, modified = _read(wb / STATE / RESULTS, {}), modified_tests(wb, shipped)
    shipped_stages = {stage_of(rel) for rel in (shipped or _read(wb / STATE / MANIFEST, {}).get("harness", {}))}
    # a stage folder the student deleted still has its row (tests modified), never drops out of the total
    stages = sorted(({stage_of(d.name) for d in stage_dirs(wb / "tests")} | set(expected or ()) | shipped_stages) - {None})
    out = []
    for stage in stages:
        rec = records.get(f"{stage:02d}")
        rec = rec if isinstance(rec, dict) else {}
        current = rec.get("fingerprint") == fingerprint(wb, stage) if (wb / "tests").is_dir() else False
        r = StageRecord(stage, time=rec.get("time", 0.0), modified=tuple(modified.get(stage, ())),
                        started=not untouched(wb, stage), current=current, broken=stage in broken)
        outcomes = rec.get("outcomes", {}) if current and isinstance(rec.get("outcomes"), dict) else {}
        reasons = rec.get("reasons", {}) if isinstance(rec.get("reasons"), dict) else {}
        for test, outcome in outcomes.items():
            if expected is not None and outcome == "skipped" and not ENVIRONMENT_SKIP.search(str(reasons.get(test, ""))):
                outcome = "failed"  # a skip the machine does not explain
            if outcome in WORST:
                setattr(r, outcome, getattr(r, outcome) + 1)
        if expected is not None:
            r.missing = tuple(sorted(expected.get(stage, set()) - set(outcomes)))
            r.failed += len(r.missing)
        out.append(r)
    return out


def _counts(path: Path) -> dict[str, int]:
    return {k: v for k, v in _read(path, {}).items() if isinstance(v, int) and v >= 0}


def hints_shown(wb: Path) -> dict[str, int]:
    """How many hints of each stage ``cnilab hint`` shows now (a reset starts a stage's count again)."""
    return _counts(wb / STATE / HINTS_SHOWN)


def hints_used(wb: Path) -> dict[str, int]:
    """The most hints of each stage ever revealed: what the grade reports (a reset does not take it back)."""
    return _counts(wb / STATE / HINTS_USED)


def set_hints_shown(wb: Path, stage: int, shown: int | None) -> None:
    seen = hints_shown(wb)
    if shown is None:
        seen.pop(str(stage), None)
    else:
        seen[str(stage)] = shown
        used = hints_used(wb)
        used[str(stage)] = max(used.get(str(stage), 0), shown)
        (wb / STATE / HINTS_USED).write_text(json.dumps(used))
    (wb / STATE / HINTS_SHOWN).write_text(json.dumps(seen))
