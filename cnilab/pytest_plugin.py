"""The cnilab pytest plugin: stage markers and order, the ``lab`` fixture, one-line errors, a leak guard.

Loaded through the ``pytest11`` entry point, so it is active wherever the
``cnilab`` package is installed -- in this repository and in an exported
workbook alike.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

from .runtime import cleanup as leftovers
from .teach.stages import stage_of
from .core.errors import LabError, NotRootError, Todo
from .core.lab import PREFIX_LOG_ENV, Lab, logged_prefixes, used_prefixes

_kept: list[Lab] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cnilab")
    group.addoption("--keep", action="store_true",
                    help="leave each test's lab up after the run and print how to enter it; `cnilab cleanup` removes it")
    group.addoption("--cni-plugin", default=None, metavar="PATH",
                    help="run the stage-07 conformance cases against this CNI plugin executable "
                         "(default: cnilab's plugin and the reference bridge+host-local)")
    group.addoption("--cni-config", default=None, metavar="FILE",
                    help="the --cni-plugin's network configuration with {{placeholders}}, as `cnilab conformance --config`")
    group.addoption("--cni-strict", action="store_true",
                    help="a SHOULD the --cni-plugin breaks fails its test (always so for cnilab's own plugin)")
    group.addoption("--nodes", choices=("netns", "docker"), default="netns",
                    help="what a multi-node stage's nodes are: lab namespaces (default) or Docker containers")


#: options whose value is a path: written ``--opt PATH`` the PATH must not pass for a test path
PATH_OPTIONS = ("--cni-plugin", "--cni-config")


def join_path_options(args: list[str]) -> list[str]:
    """``--cni-plugin PATH`` as ``--cni-plugin=PATH``: the form pytest cannot mistake for a test path."""
    out, i = [], 0
    while i < len(args):
        if args[i] in PATH_OPTIONS and i + 1 < len(args):
            out.append(f"{args[i]}={args[i + 1]}")
            i += 2
        else:
            out.append(args[i])
            i += 1
    return out


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Settle the rootdir again once this plugin's options are known.

    pytest picks its rootdir and ini file from the command line before it loads plugins, so in
    ``pytest -k stage07 --cni-plugin /usr/lib/cni/bridge`` the path looks like a test path: the
    rootdir became /usr/lib/cni and the project's settings (testpaths, import mode) were lost.
    Here the option and its value are joined and the setup is determined as pytest would have
    determined it for ``--cni-plugin=PATH``.
    """
    joined = join_path_options(args)
    if joined == args:
        return
    args[:] = joined
    import copy
    import inspect

    from _pytest.config.findpaths import determine_setup

    ns = parser.parse_known_args(args)
    given = {"inifile": ns.inifilename, "override_ini": ns.override_ini, "args": ns.file_or_dir,
             "rootdir_cmd_arg": ns.rootdir or None, "invocation_dir": early_config.invocation_params.dir}
    wanted = inspect.signature(determine_setup).parameters
    rootpath, inipath, inicfg, *_ = determine_setup(**{k: v for k, v in given.items() if k in wanted})
    if (rootpath, inipath) == (early_config.rootpath, early_config.inipath):
        return
    early_config._rootpath, early_config._inipath, early_config._inicfg = rootpath, inipath, inicfg  # type: ignore[attr-defined]
    early_config._inicache.clear()  # type: ignore[attr-defined]
    parser.extra_info.update(rootdir=str(rootpath), inifile=str(inipath))
    addopts = early_config._validate_args(early_config.getini("addopts"), "via addopts config")  # type: ignore[attr-defined]
    args[:] = addopts + args
    early_config.pluginmanager.consider_preparse(addopts, exclude_only=False)
    early_config.known_args_namespace = parser.parse_known_args(args, namespace=copy.copy(early_config.option))
    early_config.known_args_namespace.confcutdir = str(inipath.parent if inipath else rootpath)


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(PREFIX_LOG_ENV) and os.geteuid() == 0:  # the outermost run owns the log; nested runs append
        import tempfile

        fd, path = tempfile.mkstemp(prefix="cnilab-prefixes-")
        os.close(fd)
        os.environ[PREFIX_LOG_ENV] = path
        config._cnilab_prefix_log = path  # type: ignore[attr-defined]
    if (config.rootpath / ".cnilab" / "workbook.json").exists():  # a student's workbook: keep its gradebook
        from .teach.gradebook import Recorder

        elsewhere = bool(config.getoption("--cni-plugin") or config.getoption("--cni-config"))  # not the student's plugin
        config.pluginmanager.register(Recorder(config.rootpath, [str(a) for a in config.args], elsewhere), "cnilab-gradebook")
    config.addinivalue_line("markers", "stage(n): the lab stage (1-8) a test belongs to; set from the directory name")
    config.addinivalue_line("markers", "unit: a test of the library itself that needs no root")


def stage_of_item(item: pytest.Item) -> int | None:
    return stage_of(item.path)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its stage and order stages 01 -> 07 (pytest-order keeps file order within a stage)."""
    for item in items:
        stage = stage_of_item(item)
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
    from .observe.topology import Topology

    stage = stage_of_item(request.node)
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
        from .runtime.nodes import require_docker

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
            report.cnilab_todo_at = (call.excinfo.value.stage, call.excinfo.value.function, str(item.path.parent.parent))


def pytest_report_teststatus(report, config):
    """A test waiting for a workbook TODO counts as failed but is listed once per TODO, not per test."""
    if getattr(report, "cnilab_todo", None):
        return "todo", "T", "TODO"
    return None


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config._cnilab_items = list(session.items)  # type: ignore[attr-defined]


def waiting_for(report: pytest.TestReport, items: list[pytest.Item]) -> int:
    """How many of the session's tests need the TODO ``report`` failed on: every test whose fixtures run the
    TODO's step -- not only those that met it first (a test needing two TODOs fails on one of them)."""
    from pathlib import Path

    from .teach.recipe import load_stage, steps_using

    stage, function, tests = getattr(report, "cnilab_todo_at", (None, None, None))
    if stage is None:
        return 1
    users = steps_using(load_stage(stage, Path(tests)), function)
    return sum(1 for item in items if users & set(getattr(item, "fixturenames", ())))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Leak guard: no namespace or root link of this session's labs -- or of the runs it started -- may remain."""
    prefixes = set(used_prefixes)
    own_log = getattr(session.config, "_cnilab_prefix_log", None)
    if own_log:  # only the outermost run reads the log: a nested run must not judge its parent's live labs
        prefixes |= logged_prefixes()
        os.environ.pop(PREFIX_LOG_ENV, None)
        os.unlink(own_log)
    if session.config.getoption("--keep", default=False) or not prefixes or os.geteuid() != 0:
        return
    found = leftovers.find(prefixes)
    if found:
        leftovers.remove(found)
        session.config._cnilab_leaks = found.describe()  # type: ignore[attr-defined]
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    todos: dict[str, int] = {}
    for report in terminalreporter.stats.get("todo", []):
        todos[report.cnilab_todo] = waiting_for(report, getattr(config, "_cnilab_items", []))
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
