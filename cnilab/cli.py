"""The ``cnilab`` command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console

from .errors import LabError, NotRootError


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise NotRootError(f"`cnilab {what}`")


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import default_tests_dir, run_stages

    _need_root("run")
    stages = [int(s) for s in args.stages.split(",")] if args.stages else None
    return run_stages(Path(args.tests) if args.tests else default_tests_dir(), stages, args.pytest_args)


def cmd_cleanup(args: argparse.Namespace) -> int:
    from . import cleanup

    _need_root("cleanup")
    removed = cleanup.cleanup({args.prefix} if args.prefix else None)
    console = Console()
    if removed:
        console.print(f"removed: {removed.describe()}")
    else:
        console.print("nothing to clean up: no lab namespaces, links or processes are left")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run_doctor

    return run_doctor()


def cmd_plugin_install(args: argparse.Namespace) -> int:
    from .cni import install_plugin

    target = install_plugin(args.bin_dir, args.name)
    print(f"installed {target} (code in {target.parent / '.cnilab'})")
    return 0


def cmd_workbook_export(args: argparse.Namespace) -> int:
    from .workbook import export

    turned = export(Path(args.dir))
    stages = sorted({b.stage for b in turned})
    print(f"workbook written to {args.dir}: {len(turned)} TODOs in stages {', '.join(f'{s:02d}' for s in stages)}")
    print(f"next: cd {args.dir} && sudo {Path(sys.executable).parent}/pytest -k stage01")
    return 0


def cmd_workbook_reset(args: argparse.Namespace) -> int:
    from .workbook import reset

    for rel in reset(args.stage, Path(args.dir) if args.dir else None):
        print(f"reset {rel}: its TODOs are back")
    return 0


def _workbook_tests(dir_arg: str | None) -> Path:
    from .workbook import workbook_root

    return workbook_root(Path(dir_arg) if dir_arg else None) / "tests"


def cmd_progress(args: argparse.Namespace) -> int:
    from .runner import show_progress

    _need_root("progress")
    return show_progress(_workbook_tests(args.dir))


def cmd_hint(args: argparse.Namespace) -> int:
    import json

    from .recipe import _load, stage_dir

    tests = _workbook_tests(args.dir) if not args.reference else Path(__file__).resolve().parent.parent / "tests"
    hints = getattr(_load(stage_dir(args.stage, tests) / "conftest.py"), "HINTS", [])
    if not hints:
        raise LabError(f"Stage {args.stage:02d} has no hints.")
    state_file = tests.parent / ".cnilab" / "hints.json"
    seen = json.loads(state_file.read_text()) if state_file.exists() else {}
    shown = len(hints) if args.all else min(seen.get(str(args.stage), 0) + 1, len(hints))
    for i, hint in enumerate(hints[:shown], 1):
        print(f"stage {args.stage:02d} hint {i}/{len(hints)}: {hint}")
    if shown < len(hints):
        print(f"(run `cnilab hint {args.stage}` again for the next one)")
    if state_file.parent.is_dir():
        seen[str(args.stage)] = shown
        state_file.write_text(json.dumps(seen))
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
    plugin = sub.add_parser("plugin", help="cnilab's CNI plugin")
    plugin_sub = plugin.add_subparsers(dest="plugin_command", required=True)
    inst = plugin_sub.add_parser("install", help="install the plugin into a runtime's CNI bin dir (e.g. /opt/cni/bin)")
    inst.add_argument("bin_dir")
    inst.add_argument("--name", default="cnilab", help="its type name in conflists (default: cnilab)")
    inst.set_defaults(func=cmd_plugin_install)
    wb = sub.add_parser("workbook", help="the student workbook: the suite with the solutions as TODOs")
    wb_sub = wb.add_subparsers(dest="workbook_command", required=True)
    exp = wb_sub.add_parser("export", help="write a student copy of the suite to DIR")
    exp.add_argument("dir")
    exp.set_defaults(func=cmd_workbook_export)
    rst = wb_sub.add_parser("reset", help="put one stage's TODOs back")
    rst.add_argument("stage", type=int)
    rst.add_argument("--dir", help="the workbook (default: the one around the current folder)")
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
    return parser


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
