"""The cnilab pytest plugin: stage markers and order, the ``lab`` fixture, one-line errors, a leak guard.

Loaded through the ``pytest11`` entry point, so it is active wherever the
``cnilab`` package is installed -- in this repository and in an exported
workbook alike.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Iterator

import pytest

from . import cleanup as leftovers
from .errors import LabError, NotRootError, Todo
from .lab import Lab, used_prefixes

STAGE_DIR = re.compile(r"stage(\d\d)_")
_kept: list[Lab] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cnilab")
    group.addoption("--keep", action="store_true",
                    help="leave each test's lab up after the run and print how to enter it; `cnilab cleanup` removes it")
    group.addoption("--cni-plugin", default=None, metavar="PATH",
                    help="run the stage-07 conformance suite against this CNI plugin executable "
                         "(default: cnilab's plugin and the reference bridge+host-local)")
    group.addoption("--nodes", choices=("netns", "docker"), default="netns",
                    help="what a multi-node stage's nodes are: lab namespaces (default) or Docker containers")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stage(n): the lab stage (1-7) a test belongs to; set from the directory name")
    config.addinivalue_line("markers", "unit: a test of the library itself that needs no root")


def stage_of(item: pytest.Item) -> int | None:
    m = STAGE_DIR.search(str(item.path))
    return int(m.group(1)) if m else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its stage and order stages 01 -> 07 (pytest-order keeps file order within a stage)."""
    for item in items:
        stage = stage_of(item)
        if stage is not None:
            item.add_marker(pytest.mark.stage(stage))
            if not item.get_closest_marker("order"):
                item.add_marker(pytest.mark.order(stage * 1000))


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """Without root, say so in one sentence and stop -- unless only the root-free unit tests are asked for."""
    if os.geteuid() == 0 or config.option.help or config.option.version or config.option.markexpr == "unit":
        return None
    if config.args and all("/unit" in str(arg) or str(arg).startswith("unit") for arg in config.args):
        return None
    sys.stderr.write(f"cnilab: {NotRootError('this test suite')}\n")
    return 4


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """Name: lab. Scope: function. Depends: nothing.

    A fresh ``Lab`` (own prefix) per test; torn down after the test, on
    failure and on Ctrl-C too. With ``--keep`` it stays up for inspection.
    """
    keep = request.config.getoption("--keep")
    with Lab(keep=keep) as the_lab:
        yield the_lab
    if keep and the_lab.namespaces:
        _kept.append(the_lab)
        _picture(request, the_lab)


#: stage -> (size of the largest kept lab drawn, its picture files): one picture per stage
_pictures: dict[int, tuple[int, list[str]]] = {}


def _picture(request: pytest.FixtureRequest, lab: Lab) -> None:
    """With --keep, draw each stage's largest kept lab to cnilab-pictures/stageNN.svg and .png."""
    from .topology import Topology

    stage = stage_of(request.node)
    if stage is None:
        return
    topo = Topology.of(lab)
    size = len(topo.ifaces) + len(topo.edges)
    if size <= _pictures.get(stage, (0, []))[0]:
        return
    out = Path(str(request.config.rootpath)) / "cnilab-pictures"
    try:
        paths = topo.render(out, f"stage{stage:02d}", f"stage {stage:02d} ({request.node.name})")
    except LabError as exc:  # no graphviz: the lab is still kept, only the picture is missing
        paths = [f"no picture: {exc}"]
    _pictures[stage] = (size, [str(p) for p in paths])


@pytest.fixture
def node_kind(request: pytest.FixtureRequest) -> str:
    """Name: node_kind. Scope: function. Depends: the ``--nodes`` option.

    What a stage's nodes are made of. Docker nodes skip, with the reason, where Docker cannot run.
    """
    kind = request.config.getoption("--nodes")
    if kind == "docker":
        from .nodes import require_docker

        return require_docker()
    return kind


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A ``LabError`` (bad input, a TODO, a missing tool) is reported as its one sentence, no traceback."""
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and isinstance(call.excinfo.value, LabError):
        report.longrepr = f"{item.nodeid}: {call.excinfo.value}"
        if isinstance(call.excinfo.value, Todo):
            report.cnilab_todo = str(call.excinfo.value)


def pytest_report_teststatus(report, config):
    """A test waiting for a workbook TODO counts as failed but is listed once per TODO, not per test."""
    if getattr(report, "cnilab_todo", None):
        return "todo", "T", "TODO"
    return None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Leak guard: no namespace or root link of this session's labs may remain."""
    if session.config.getoption("--keep", default=False) or not used_prefixes or os.geteuid() != 0:
        return
    found = leftovers.find(set(used_prefixes))
    if found:
        leftovers.remove(found)
        session.config._cnilab_leaks = found.describe()  # type: ignore[attr-defined]
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    todos: dict[str, int] = {}
    for report in terminalreporter.stats.get("todo", []):
        todos[report.cnilab_todo] = todos.get(report.cnilab_todo, 0) + 1
    if todos:
        terminalreporter.write_sep("-", "workbook: what to build next")
        for line, waiting in todos.items():
            terminalreporter.write_line(f"{line} -- {waiting} test(s) wait for it", yellow=True)
    leaks = getattr(config, "_cnilab_leaks", None)
    if leaks:
        terminalreporter.write_line(f"LEAK GUARD: the session left lab objects behind ({leaks}); they were removed now, "
                                    "but a finalizer is missing: fix it.", red=True, bold=True)
    if _kept:
        terminalreporter.write_sep("-", "cnilab --keep: labs left up")
        for kept in _kept:
            for hint in kept.enter_hints():
                terminalreporter.write_line(f"  {hint}")
        terminalreporter.write_line("remove them with: cnilab cleanup")
        for stage, (_, paths) in sorted(_pictures.items()):
            terminalreporter.write_line(f"  stage {stage:02d} picture: {', '.join(paths)}")
