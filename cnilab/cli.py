"""The ``cnilab`` command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console

from .core.errors import LabError, NotRootError


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise NotRootError(f"`cnilab {what}`")


def cmd_run(args: argparse.Namespace) -> int:
    from .teach.runner import default_tests_dir, run_stages

    _need_root("run")
    stages = [int(s) for s in args.stages.split(",")] if args.stages else None
    return run_stages(Path(args.tests) if args.tests else default_tests_dir(), stages, args.pytest_args)


def cmd_cleanup(args: argparse.Namespace) -> int:
    from .runtime import cleanup

    _need_root("cleanup")
    removed = cleanup.cleanup({args.prefix} if args.prefix else None)
    console = Console()
    if removed:
        console.print(f"removed: {removed.describe()}")
    else:
        console.print("nothing to clean up: no lab namespaces, links or processes are left")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .teach.doctor import run_doctor

    return run_doctor()


def cmd_plugin_install(args: argparse.Namespace) -> int:
    from .runtime.cni import install_plugin, is_thick

    target = install_plugin(args.bin_dir, args.name, thick=not args.thin)
    mode = (f"thick: start the node daemon with `cnilab plugin daemon {args.bin_dir}`; without it the plugin "
            "runs as a process per call") if is_thick(target) else "thin: a Python process per call"
    print(f"installed {target} (code in {target.parent / '.cnilab'}; {mode})")
    return 0


def cmd_plugin_daemon(args: argparse.Namespace) -> int:
    from .runtime.cni import PluginDaemon, is_thick

    _need_root("plugin daemon")
    plugin = Path(args.bin_dir) / args.name
    if not plugin.exists() or not is_thick(plugin):
        raise LabError(f"{plugin} is not a thick cnilab install: run `cnilab plugin install {args.bin_dir}` "
                       "where a C compiler (gcc) is installed.")
    with PluginDaemon(args.bin_dir) as daemon:
        print(f"serving {daemon.sock} (Ctrl-C stops it; the plugin then runs as a process per call)", flush=True)
        daemon.proc.wait()
    return 0


def cmd_conformance(args: argparse.Namespace) -> int:
    import fnmatch

    from .conformance import report
    from .conformance.run import check, target_for

    _need_root("conformance")
    patterns = args.only or []
    select = (lambda case: any(fnmatch.fnmatchcase(case, p) or fnmatchcase_prefix(case, p) for p in patterns)) if patterns else None
    console = Console()
    with target_for(args.plugin, args.config) as target:
        result = check(target, strict=args.strict, select=select,
                       progress=lambda o: console.print(report.progress_line(o, args.strict), highlight=False))
    report.terminal(result, console)
    if args.junit:
        report.junit(result, args.junit)
    if args.markdown:
        with open(args.markdown, "a") as f:  # appending: a GitHub job summary may hold several plugins' reports
            f.write(report.markdown(result))
    return result.exit_code


def fnmatchcase_prefix(case: str, pattern: str) -> bool:
    """``--only add.twice`` also selects its variants ``add.twice[...]``."""
    return case.split("[")[0] == pattern


def cmd_workbook_export(args: argparse.Namespace) -> int:
    from .teach.workbook import export

    turned = export(Path(args.dir))
    stages = sorted({b.stage for b in turned})
    print(f"workbook written to {args.dir}: {len(turned)} TODOs in stages {', '.join(f'{s:02d}' for s in stages)}")
    print(f"next: cd {args.dir} && sudo {Path(sys.executable).parent}/pytest -k stage01")
    return 0


def cmd_workbook_reset(args: argparse.Namespace) -> int:
    from .teach.workbook import reset

    for rel in reset(args.stage, Path(args.dir) if args.dir else None, force=args.force):
        print(f"reset {rel}: its TODOs are back, its hints start again at 1")
    return 0


def _workbook(dir_arg: str | None) -> Path:
    from .teach.workbook import workbook_root

    return workbook_root(Path(dir_arg) if dir_arg else None)


def cmd_progress(args: argparse.Namespace) -> int:
    from .teach.runner import show_progress

    return show_progress(_workbook(args.dir))


def cmd_grade(args: argparse.Namespace) -> int:
    import json

    from .teach.runner import grade, grade_markdown

    g = grade(_workbook(args.dir), only=None if args.stage is None else [args.stage], strict=args.strict, fresh=args.fresh)
    if not g["stages"]:
        raise LabError(f"The workbook has no stage {args.stage:02d}: stages are 1 to 7.")
    print(json.dumps(g, indent=1) if args.json else grade_markdown(g))
    if args.require_done:
        return 0 if all(s["state"] == "done" for s in g["stages"]) else 1
    return 0


def cmd_hint(args: argparse.Namespace) -> int:
    from .core.suite import tests_dir
    from .teach.gradebook import hints_shown, set_hints_shown
    from .teach.recipe import load_conftest, stage_dir
    from .teach.workbook import stored_hints

    wb = None if args.reference else _workbook(args.dir)
    hints = stored_hints(wb).get(str(args.stage)) if wb else None
    if hints is None:  # the checkout's own hints, or a workbook exported before hints moved out of the conftests
        tests = wb / "tests" if wb else tests_dir()
        hints = getattr(load_conftest(stage_dir(args.stage, tests) / "conftest.py"), "HINTS", [])
    if not hints:
        raise LabError(f"Stage {args.stage:02d} has no hints.")
    seen = hints_shown(wb).get(str(args.stage), 0) if wb else 0
    shown = len(hints) if args.all else min(seen + 1, len(hints))
    for i, hint in enumerate(hints[:shown], 1):
        print(f"stage {args.stage:02d} hint {i}/{len(hints)}: {hint}")
    if shown < len(hints):
        print(f"(run `cnilab hint {args.stage}` again for the next one)")
    if wb:
        set_hints_shown(wb, args.stage, max(shown, seen))
    return 0


def _tests_dir(arg: str | None) -> Path:
    from .teach.runner import default_tests_dir

    return Path(arg) if arg else default_tests_dir()


def cmd_demo(args: argparse.Namespace) -> int:
    from .teach.demo import run_demo

    _need_root("demo")
    given = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise LabError(f"--set {item!r} is not KEY=VALUE: write it like `--set mode=routed`.")
        given[key] = value
    return run_demo(args.stage, _tests_dir(args.tests), auto=args.auto, keep=args.keep, verify=not args.no_verify,
                    pictures=None if args.no_picture else Path(args.pictures), given=given)


def cmd_show(args: argparse.Namespace) -> int:
    from .core.lab import Lab
    from .observe.topology import Topology, pick_prefix

    _need_root("show")
    with Lab.adopt(pick_prefix(args.prefix)) as lab:
        topo = Topology.of(lab)
    Console().print(topo.tree())
    if not args.no_picture:
        paths = topo.render(Path(args.out), lab.prefix.rstrip("-"), f"lab {lab.prefix}")
        print(f"picture: {', '.join(map(str, paths))}")
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from .core.lab import Lab
    from .teach.recipe import load_stage
    from .observe.topology import pick_prefix
    from .observe.trace import render

    _need_root("trace")
    traces = load_stage(args.stage, _tests_dir(args.tests)).traces
    if not traces:
        raise LabError(f"Stage {args.stage:02d} has no packet views (stages 02-07 have): pick another stage.")
    console = Console()
    with Lab.adopt(pick_prefix(args.prefix)) as lab:
        for name, trace in traces.items():
            console.print(f"[bold]{name}[/]")
            console.print(render(trace(lab)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnilab", description="The verifiable lab for container networking.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="build and verify every stage (the learning path), then print a verdict per stage")
    run.add_argument("--stages", help="comma-separated stage numbers, e.g. 1,2,3 (default: all)")
    run.add_argument("--tests", help="the tests folder (default: this checkout's tests/)")
    run.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments after --")
    run.set_defaults(func=cmd_run)
    clean = sub.add_parser("cleanup", help="remove every leftover lab object of any run (idempotent)")
    clean.add_argument("--prefix", help="only the objects of one run, e.g. cl7k2q- (as printed by --keep)")
    clean.set_defaults(func=cmd_cleanup)
    doctor = sub.add_parser("doctor", help="check privileges, kernel features and tools, and say how to fix what is missing")
    doctor.set_defaults(func=cmd_doctor)
    _add_plugin_commands(sub)
    _add_teaching_commands(sub)
    from .teach import agent_run

    agent_run.add_parser(sub)
    return parser


def _add_plugin_commands(sub: argparse._SubParsersAction) -> None:
    """`plugin install|daemon` and `conformance`: the CNI plugin and its judge."""
    plugin = sub.add_parser("plugin", help="cnilab's CNI plugin")
    plugin_sub = plugin.add_subparsers(dest="plugin_command", required=True)
    inst = plugin_sub.add_parser("install", help="install the plugin into a runtime's CNI bin dir (e.g. /opt/cni/bin)")
    inst.add_argument("bin_dir")
    inst.add_argument("--name", default="cnilab", help="its type name in conflists (default: cnilab)")
    inst.add_argument("--thin", action="store_true", help="no native shim: the runtime starts python3 per call")
    inst.set_defaults(func=cmd_plugin_install)
    dmn = plugin_sub.add_parser("daemon", help="run the node daemon of a thick install (foreground)")
    dmn.add_argument("bin_dir")
    dmn.add_argument("--name", default="cnilab")
    dmn.set_defaults(func=cmd_plugin_daemon)
    conf = sub.add_parser("conformance", help="check a CNI plugin against the spec, requirement by requirement",
                          description="Exit 0: conformant; 1: a MUST failed (or a SHOULD, with --strict); 3: the checker itself failed; 4: nothing could be checked here.")
    conf.add_argument("plugin", nargs="?", help="the plugin executable (default: cnilab's own plugin)")
    conf.add_argument("--config", help="the plugin's network configuration with {{placeholders}} (default: the one cnilab "
                                       "ships for the plugin's name: bridge, ptp, macvlan, ipvlan, cnilab; or one of "
                                       "those names, e.g. bridge-chained)")
    conf.add_argument("--junit", metavar="FILE", help="write the verdicts as JUnit XML")
    conf.add_argument("--markdown", metavar="FILE", help="append the verdicts as a Markdown table (e.g. $GITHUB_STEP_SUMMARY)")
    conf.add_argument("--strict", action="store_true", help="SHOULD failures fail the run too")
    conf.add_argument("--only", action="append", metavar="CASE", help="only these cases (glob, e.g. 'gc.*'; repeatable)")
    conf.set_defaults(func=cmd_conformance)


def _add_teaching_commands(sub: argparse._SubParsersAction) -> None:
    """The workbook, hints and progress, demos, pictures and traces."""
    wb = sub.add_parser("workbook", help="the student workbook: the suite with the solutions as TODOs")
    wb_sub = wb.add_subparsers(dest="workbook_command", required=True)
    exp = wb_sub.add_parser("export", help="write a student copy of the suite to DIR")
    exp.add_argument("dir")
    exp.set_defaults(func=cmd_workbook_export)
    rst = wb_sub.add_parser("reset", help="put one stage's TODOs back")
    rst.add_argument("stage", type=int)
    rst.add_argument("--dir", help="the workbook (default: the one around the current folder)")
    rst.add_argument("--force", action="store_true", help="overwrite a stage you changed (a backup is kept)")
    rst.set_defaults(func=cmd_workbook_reset)
    prog = sub.add_parser("progress", help="each workbook stage: done / failing / not started")
    prog.add_argument("--dir", help="the workbook (default: the one around the current folder)")
    prog.set_defaults(func=cmd_progress)
    hint = sub.add_parser("hint", help="the next hint for a stage (--all: every hint)")
    hint.add_argument("stage", type=int)
    hint.add_argument("--all", action="store_true")
    hint.add_argument("--dir", help="the workbook (default: the one around the current folder)")
    hint.add_argument("--reference", action="store_true", help="read the hints of this checkout, outside a workbook")
    hint.set_defaults(func=cmd_hint)
    grd = sub.add_parser("grade", help="for teachers: per stage pass/fail, hints used, test integrity, a total")
    grd.add_argument("--dir", help="the workbook (default: the one around the current folder)")
    form = grd.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="JSON (the default is a Markdown table)")
    form.add_argument("--markdown", action="store_true", help="a Markdown table (e.g. for $GITHUB_STEP_SUMMARY)")
    grd.add_argument("--stage", type=int, help="only this stage")
    grd.add_argument("--fresh", action="store_true", help="discard the recorded results: every stage runs again")
    grd.add_argument("--strict", action="store_true", help="judge by this cnilab, not the workbook's .cnilab: its "
                     "tests as the reference, every test must have run, a skip must be the machine's (CI: with --fresh)")
    grd.add_argument("--require-done", action="store_true", help="exit 1 unless the stage(s) are done (autograding)")
    grd.set_defaults(func=cmd_grade)
    demo = sub.add_parser("demo", help="build a stage step by step, narrated and paced by Enter, then verify it")
    demo.add_argument("stage", type=int, choices=range(1, 9), metavar="N", help="stage 1-8")
    demo.add_argument("--auto", action="store_true", help="run unpaced (CI, recordings)")
    demo.add_argument("--keep", action="store_true", help="leave the lab up afterwards (then `cnilab show`, `cnilab trace`)")
    demo.add_argument("--no-verify", action="store_true", help="skip the stage's tests at the end")
    demo.add_argument("--pictures", default="cnilab-pictures", help="where the stage's picture goes (default: ./cnilab-pictures)")
    demo.add_argument("--no-picture", action="store_true", help="draw no picture")
    demo.add_argument("--set", action="append", metavar="KEY=VALUE", help="a stage parameter, e.g. --set mode=routed (stage 06)")
    demo.add_argument("--tests", help="the tests folder (default: this checkout's tests/)")
    demo.set_defaults(func=cmd_demo)
    show = sub.add_parser("show", help="draw the live lab from kernel state: a tree here, SVG and PNG files")
    show.add_argument("--prefix", help="which lab (default: the only one that is up)")
    show.add_argument("--out", default="cnilab-pictures", help="folder for PREFIX.svg and PREFIX.png (default: ./cnilab-pictures)")
    show.add_argument("--no-picture", action="store_true", help="only the tree")
    show.set_defaults(func=cmd_show)
    trace = sub.add_parser("trace", help="run a stage's packet views on a kept lab and print the packets layer by layer")
    trace.add_argument("stage", type=int, choices=range(1, 9), metavar="N")
    trace.add_argument("--prefix", help="which lab (default: the only one that is up)")
    trace.add_argument("--tests", help="the tests folder (default: this checkout's tests/)")
    trace.set_defaults(func=cmd_trace)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "pytest_args", None) and args.pytest_args[0] == "--":
        args.pytest_args = args.pytest_args[1:]
    try:
        return args.func(args)
    except LabError as exc:
        print(f"cnilab: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnilab: interrupted; the lab was torn down (check with `cnilab cleanup`).", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
