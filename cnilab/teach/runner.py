"""The main job: run the stages with pytest and show a verdict per stage."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from ..core.suite import tests_dir
from .recipe import load_stage
from .stages import stage_dirs, stage_of



@dataclass
class StageTally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    todo: int = 0       # failed because a workbook TODO is still open
    xfailed: int = 0    # expected failures (the reference plugin's known differences)
    seconds: float = 0.0
    skip_reasons: set[str] = field(default_factory=set)

    @property
    def state(self) -> str:
        """A workbook stage: done, failing (something built, something wrong) or not started (only TODOs)."""
        if self.failed == 0 and self.passed:
            return "done"
        return "not started" if self.failed and self.failed == self.todo else "failing"

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
        if report.when == "call" or report.outcome != "passed":
            if report.skipped and hasattr(report, "wasxfail"):
                tally.xfailed += 1
            elif report.skipped:
                tally.skipped += 1
                if isinstance(report.longrepr, tuple):
                    tally.skip_reasons.add(str(report.longrepr[2]).removeprefix("Skipped: "))
            elif report.failed:
                tally.failed += 1
                tally.todo += bool(getattr(report, "cnilab_todo", None))
            elif report.when == "call":
                tally.passed += 1


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


STATE_STYLE = {"done": "[green]done[/]", "failing": "[red]failing[/]", "not started": "[dim]not started[/]"}


def show_progress(tests_dir: Path, console: Console | None = None) -> int:
    """``cnilab progress``: run every stage of a workbook and show each one's state, like rustlings."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = console or Console()
    dirs = stage_dirs(tests_dir)
    with Progress(TextColumn("checking your stages"), BarColumn(), MofNCompleteColumn(), console=console,
                  transient=True) as progress:
        live = _Live(progress, progress.add_task("tests", total=None))
        pytest.main([*map(str, dirs), "-p", "no:terminal", "-p", "no:cacheprovider"], plugins=[live])
    table = Table(title="cnilab progress")
    for col in ("stage", "what it proves", "state", "tests passed"):
        table.add_column(col)
    done = 0
    for d in dirs:
        stage = int(d.name[5:7])
        t = live.stages.get(stage, StageTally())
        done += t.state == "done"
        total = t.passed + t.failed
        table.add_row(f"{stage:02d}", title_of(stage, tests_dir), STATE_STYLE[t.state], f"{t.passed}/{total}")
    console.print(table)
    width = 28
    filled = round(width * done / len(dirs)) if dirs else 0
    console.print(f"Progress: [green]{'#' * filled}[/][dim]{'-' * (width - filled)}[/] {done}/{len(dirs)} stages done")
    nxt = next((int(d.name[5:7]) for d in dirs if live.stages.get(int(d.name[5:7]), StageTally()).state != "done"), None)
    if nxt is not None:
        console.print(f"Next: stage {nxt:02d} -- `sudo .venv/bin/pytest -k stage{nxt:02d}`; stuck? `cnilab hint {nxt}`")
    return 0 if done == len(dirs) else 1
