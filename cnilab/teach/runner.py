"""The main job: run the stages with pytest and show a verdict per stage."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from ..core.errors import NotRootError
from ..core.suite import tests_dir
from .gradebook import hints_used, outcome_of, skip_reason, stage_records, stale_stages
from .recipe import load_stage
from .stages import stage_dirs, stage_of
from .workbook import stored_hints



@dataclass
class StageTally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    xfailed: int = 0    # expected failures (the reference plugin's known differences)
    seconds: float = 0.0
    skip_reasons: set[str] = field(default_factory=set)

    @property
    def verdict(self) -> str:
        if self.failed:
            return "[red]FAIL[/]"
        if self.passed:
            return "[green]PROVEN[/]" + (" [yellow](some skipped)[/]" if self.skipped else "")
        return "[yellow]SKIPPED[/]" if self.skipped else "[dim]no tests[/]"


class Tally:
    """A pytest plugin object that counts outcomes per stage."""

    def __init__(self) -> None:
        self.stages: dict[int, StageTally] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        stage = stage_of(report.nodeid)
        if stage is None:
            return
        tally = self.stages.setdefault(stage, StageTally())
        tally.seconds += report.duration
        outcome = outcome_of(report)
        if outcome is None:
            return
        outcome = "failed" if outcome == "todo" else outcome  # the main job's verdict: an open TODO fails
        setattr(tally, outcome, getattr(tally, outcome) + 1)
        if outcome == "skipped" and skip_reason(report):
            tally.skip_reasons.add(skip_reason(report))


def default_tests_dir() -> Path:
    """The stages of this cnilab (its checkout's, or the copy installed with it)."""
    return tests_dir()


def title_of(stage: int, tests_dir: Path) -> str:
    try:
        return load_stage(stage, tests_dir).title
    except Exception:  # noqa: BLE001 -- a broken stage still gets its row, the tests report why
        return "?"


def run_stages(tests_dir: Path, stages: list[int] | None = None, extra: list[str] | None = None,
               console: Console | None = None) -> int:
    console = console or Console(width=None if sys.stdout.isatty() else 120)
    tally = Tally()
    dirs = stage_dirs(tests_dir)
    if stages:
        dirs = [d for d in dirs if stage_of(d.name) in stages]
    if not dirs:
        from ..core.errors import LabError
        raise LabError(f"No stage folders (stageNN_name) matched under {tests_dir}: check --tests and --stages.")
    # importlib mode as in the project's settings: outside a checkout (an installed suite) there are none
    args = [*map(str, dirs), "-q", "--no-header", "-p", "no:cacheprovider", "-rfE", "--import-mode=importlib",
            "-W", "ignore::pytest.PytestAssertRewriteWarning"]  # cnilab is imported before this in-process run
    args += extra or []
    started = time.monotonic()
    code = pytest.main(args, plugins=[tally])
    elapsed = time.monotonic() - started
    table = Table(title=f"cnilab: the learning path, verified ({elapsed:.1f} s)")
    numeric = ("passed", "failed", "skipped", "xfail", "seconds")
    for col in ("stage", "what it proves", *numeric, "verdict"):
        table.add_column(col, justify="right" if col in numeric else "left")
    for stage in sorted(tally.stages):
        t = tally.stages[stage]
        table.add_row(f"{stage:02d}", title_of(stage, tests_dir), str(t.passed), str(t.failed), str(t.skipped),
                      str(t.xfailed), f"{t.seconds:.1f}", t.verdict)
    console.print(table)
    for stage in sorted(tally.stages):
        for reason in sorted(tally.stages[stage].skip_reasons):
            console.print(f"  stage {stage:02d} skipped: {reason}")
    return int(code)


class _Live(Tally):
    """A Tally that also advances a rich progress bar, test by test."""

    def __init__(self, progress, task) -> None:
        super().__init__()
        self.progress, self.task = progress, task

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.progress.update(self.task, total=len(session.items))

    def pytest_runtest_logfinish(self, nodeid: str, location) -> None:
        self.progress.advance(self.task)


STATE_STYLE = {"done": "[green]done[/]", "failing": "[red]failing[/]", "not started": "[dim]not started[/]",
               "tests modified": "[bold red]tests modified[/]", "not run": "[dim]not run[/]"}


def here_command(tool: str, *args: str, root: bool = False) -> str:
    """A command line that works where it is printed: this cnilab's own ``tool`` (by its full path unless the
    PATH finds this very one), with ``sudo`` only for a user who is not root and only where root is needed
    (sudo resets PATH, so then always the full path)."""
    mine = Path(sys.executable).parent / tool
    found = shutil.which(tool)
    sudo = root and os.geteuid() != 0
    exe = tool if not sudo and found and Path(found).resolve() == mine.resolve() else str(mine)
    return " ".join(["sudo"] * sudo + [exe, *args])


def refresh(wb: Path, console: Console, why: str, only: list[int] | None = None) -> tuple[list[int], list[int]]:
    """Rerun the stages (all, or ``only``) whose recorded results no longer stand. Returns (rerun, broken):
    the stages run now, and those of them that still recorded nothing (they did not even collect)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    stale = [s for s in stale_stages(wb) if only is None or s in only]
    if not stale:
        return [], []
    if os.geteuid() != 0:
        raise NotRootError(f"{why} (stages {', '.join(f'{s:02d}' for s in stale)} changed since their last run)")
    dirs = [d for d in stage_dirs(wb / "tests") if stage_of(d.name) in stale]
    with Progress(TextColumn(f"running stage(s) {', '.join(f'{s:02d}' for s in stale)}"), BarColumn(),
                  MofNCompleteColumn(), console=console, transient=True) as progress:
        live = _Live(progress, progress.add_task("tests", total=None))
        pytest.main([*map(str, dirs), "--rootdir", str(wb), "-p", "no:terminal", "-p", "no:cacheprovider"], plugins=[live])
    return stale, [s for s in stale_stages(wb) if s in stale]


def grader_truth() -> tuple[dict[str, str], dict[int, set[str]]]:
    """What ``grade --strict`` trusts instead of the student's .cnilab: the harness of a fresh export of this
    very cnilab, and the ids of the tests its pytest collects there (every one must run in the workbook)."""
    import subprocess
    import tempfile

    from .gradebook import MANIFEST, STATE
    from .workbook import export

    with tempfile.TemporaryDirectory(prefix="cnilab-grade-") as tmp:
        ref = Path(tmp) / "wb"
        export(ref)
        shipped = json.loads((ref / STATE / MANIFEST).read_text())["harness"]
        done = subprocess.run([str(Path(sys.executable).parent / "pytest"), "--co", "-q", "-p", "no:cacheprovider"],
                              cwd=ref, capture_output=True, text=True, timeout=600)
    expected: dict[int, set[str]] = {}
    for line in done.stdout.splitlines():
        if "::" in line and stage_of(line) is not None:
            expected.setdefault(stage_of(line), set()).add(line.strip())
    return shipped, expected


def show_progress(wb: Path, console: Console | None = None) -> int:
    """``cnilab progress``: each stage's state, like rustlings -- from the recorded results of the last runs,
    rerunning only the stages changed since."""
    console = console or Console()
    rerun, broken = refresh(wb, console, "cnilab progress")
    records = stage_records(wb, broken=broken)
    table = Table(title="cnilab progress")
    for col in ("stage", "what it proves", "state", "tests passed", "result from"):
        table.add_column(col)
    for r in records:
        table.add_row(f"{r.stage:02d}", title_of(r.stage, wb / "tests"), STATE_STYLE[r.state],
                      f"{r.passed}/{r.total}" + "".join(f", {n} {what}" for n, what in (
                          (r.todo, "wait for a TODO"), (r.skipped, "skipped"), (r.xfailed, "known deviations")) if n),
                      "did not run: see `pytest -k stage%02d`" % r.stage if r.broken else
                      "this run" if r.stage in rerun else "your last run (unchanged since)")
    console.print(table)
    for r in records:
        for change in r.modified:
            console.print(f"  stage {r.stage:02d}: {change} -- the tests must stay as exported to count")
    done = sum(r.state == "done" for r in records)
    width = 28
    filled = round(width * done / len(records)) if records else 0
    console.print(f"Progress: [green]{'#' * filled}[/][dim]{'-' * (width - filled)}[/] {done}/{len(records)} stages done")
    nxt = next((r.stage for r in records if r.state != "done"), None)
    if nxt is not None:
        console.print(f"Next: stage {nxt:02d} -- `{here_command('pytest', '-k', f'stage{nxt:02d}', root=True)}`; "
                      f"stuck? `{here_command('cnilab', 'hint', str(nxt))}`", highlight=False)
    return 0 if done == len(records) else 1


def grade(wb: Path, console: Console | None = None, only: list[int] | None = None, *, strict: bool = False,
          fresh: bool = False) -> dict:
    """What a teacher records: per stage its counts, state, hints used and test integrity; a total (of the
    stages ``only``, when given). ``fresh`` discards the recorded results (a student can commit any), so
    every stage runs again; ``strict`` compares the harness with a fresh export of this cnilab instead of
    the workbook's manifest, requires every test of that export to have run, and a skip to be the
    machine's. CI grades with both (then per stage with ``strict``, reusing what that run recorded)."""
    console = console or Console(stderr=True)
    if fresh:
        from .gradebook import RESULTS, STATE

        (wb / STATE / RESULTS).unlink(missing_ok=True)
    _, broken = refresh(wb, console, "cnilab grade", only)
    shipped, expected = grader_truth() if strict else (None, None)
    used, hints = hints_used(wb), stored_hints(wb)
    stages = [{"stage": r.stage, "title": title_of(r.stage, wb / "tests"), "state": r.state, "passed": r.passed,
               "failed": r.failed + r.todo, "todo": r.todo, "skipped": r.skipped, "tests_intact": not r.modified,
               "modified": list(r.modified), "not_run": list(r.missing), "hints_used": used.get(str(r.stage), 0),
               "hints_total": len(hints.get(str(r.stage), [])), "points": int(r.state == "done"), "max_points": 1}
              for r in stage_records(wb, shipped=shipped, expected=expected, broken=broken)
              if only is None or r.stage in only]
    return {"workbook": str(wb), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "strict": strict, "fresh": fresh,
            "stages": stages,
            "total": {"points": sum(s["points"] for s in stages), "max_points": len(stages),
                      "passed": sum(s["passed"] for s in stages), "failed": sum(s["failed"] for s in stages),
                      "hints_used": sum(s["hints_used"] for s in stages),
                      "tests_intact": all(s["tests_intact"] for s in stages)}}


def grade_markdown(g: dict) -> str:
    rows = ["| stage | what it proves | state | passed | failed | hints used | tests intact | points |",
            "|---|---|---|---|---|---|---|---|"]
    for s in g["stages"]:
        rows.append(f"| {s['stage']:02d} | {s['title']} | {s['state']} | {s['passed']} | {s['failed']} | "
                    f"{s['hints_used']}/{s['hints_total']} | {'yes' if s['tests_intact'] else 'NO'} | {s['points']}/{s['max_points']} |")
    t = g["total"]
    rows.append(f"| **total** | | | {t['passed']} | {t['failed']} | {t['hints_used']} | "
                f"{'yes' if t['tests_intact'] else 'NO'} | **{t['points']}/{t['max_points']}** |")
    return f"## cnilab grade ({g['timestamp']})\n\n" + "\n".join(rows) + "\n"
