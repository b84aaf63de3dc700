"""Mutation check: is every solution step really checked by the tests?

Run as root: `sudo .venv/bin/python tools/mutation.py [--stages 2,3]`.

For every marked solution block (``# BEGIN SOLUTION`` ... ``# END SOLUTION``, the same blocks the
workbook turns into TODOs), each of its steps -- one top-level statement at a time -- is replaced
by ``pass`` in a scratch copy of the suite, and that stage's tests run (stopping at the first
failure). A removal no test notices is a surviving mutant: the step is either unnecessary or not
proven necessary. The table shows, for each removal, the first failure message, which should name
the missing mechanism.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cnilab.teach.workbook import Block, blocks, export, solution_files, source_root

from cnilab.core.processes import run_nested
from cnilab.teach.stages import stage_dir

BIN = Path(sys.executable).parent


@dataclass
class Mutant:
    block: Block
    first: int   # 1-based line numbers of the removed statement
    last: int
    text: str
    killed: bool = False
    message: str = ""
    seconds: float = 0.0


def steps(block: Block) -> list[tuple[int, int, str]]:
    """Top-level statements inside the block: (first line, last line, source of the first line)."""
    source = block.path.read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    lo, hi = block.begin + 2, block.end  # 1-based, exclusive of the marker lines
    inside = [n for n in ast.walk(tree) if isinstance(n, ast.stmt) and lo <= n.lineno and n.end_lineno <= hi]
    nested = {id(c) for n in inside for c in ast.walk(n) if c is not n and isinstance(c, ast.stmt)}
    return sorted((n.lineno, n.end_lineno, lines[n.lineno - 1].strip()) for n in inside if id(n) not in nested)


def target(block: Block) -> list[str]:
    """The tests of the block's stage (for the plugin: the conformance suite against cnilab's plugin)."""
    if block.path.name == "plugin.py":
        return ["tests/stage07_cni/test_stage07_conformance.py", "-k", "cnilab"]
    return [str(stage_dir(block.stage, Path("tests")))]


FAILED = re.compile(r"^(FAILED|ERROR) (\S+)(?: - (.*))?$")


def run(mutant: Mutant, scratch: Path) -> None:
    path = scratch / mutant.block.path
    original = path.read_text()
    lines = original.splitlines()
    indent = re.match(r"\s*", lines[mutant.first - 1]).group(0)
    lines[mutant.first - 1:mutant.last] = [f"{indent}pass  # mutant: step removed"]
    path.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    try:
        done = run_nested([str(BIN / "pytest"), "-x", "-q", "-rfE", "-p", "no:cacheprovider", *target(mutant.block)],
                              cwd=scratch, capture_output=True, text=True, timeout=600)
    finally:
        path.write_text(original)
    mutant.seconds = time.monotonic() - started
    mutant.killed = done.returncode != 0
    out = done.stdout.splitlines()
    failed = [m for m in map(FAILED.match, out) if m]
    errors = [line[1:].strip() for line in out if line.startswith("E ")]
    # what the student reads: the diagnosis if there is one, else the first assertion line
    why = next((e for e in errors if e.startswith("Diagnosis:")), errors[0] if errors else "")
    if not why:  # one-line LabError reports: "nodeid: message"
        why = next((line.split(": ", 1)[1] for line in out if line.startswith("tests/") and ": " in line), "")
    test = failed[0].group(2).split("::")[-1] if failed else ""
    mutant.message = f"{test}: {why}"[:260] if mutant.killed else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", help="comma-separated stage numbers (default: all)")
    args = parser.parse_args()
    wanted = {int(s) for s in args.stages.split(",")} if args.stages else set(range(1, 8))
    root = source_root()
    scratch = Path(tempfile.mkdtemp(prefix="cnilab-mutation-")) / "suite"
    export(scratch, root, solutions=True)
    mutants = [Mutant(Block(rel, b.begin, b.end, b.indent, b.instruction, b.function, b.stage), first, last, text)
               for rel in solution_files(root) for b in blocks(root / rel) if b.stage in wanted
               for first, last, text in steps(b)]
    console = Console(width=200)
    for i, mutant in enumerate(mutants, 1):
        run(mutant, scratch)
        verdict = "caught" if mutant.killed else "SURVIVED"
        console.print(f"[{i}/{len(mutants)}] stage {mutant.block.stage:02d} {mutant.block.function}: {mutant.text[:60]} -> {verdict}")
    table = Table(title="mutation check: each solution step removed in turn")
    for col in ("stage", "step in", "removed statement", "caught", "first failure (what the student reads)"):
        table.add_column(col, overflow="fold")
    for m in mutants:
        table.add_row(f"{m.block.stage:02d}", m.block.function, m.text[:70], "yes" if m.killed else "[red]NO[/]", m.message)
    console.print(table)
    killed = sum(m.killed for m in mutants)
    console.print(f"kill rate: {killed}/{len(mutants)} = {killed / len(mutants):.0%}")
    return 0 if killed == len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
