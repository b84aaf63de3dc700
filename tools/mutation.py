"""Mutation check: is every solution step really checked -- and is a wrong step rightly diagnosed?

Run as root: `sudo .venv/bin/python tools/mutation.py [--stages 2,3] [--wrong | --all]`.

For every marked solution block (``# BEGIN SOLUTION`` ... ``# END SOLUTION``, the same blocks the
workbook turns into TODOs), each of its steps -- one top-level statement at a time -- is replaced
by ``pass`` in a scratch copy of the suite, and that stage's tests run (stopping at the first
failure). A removal no test notices is a surviving mutant: the step is either unnecessary or not
proven necessary. The table shows, for each removal, the first failure message, which should name
the missing mechanism.

With ``--wrong`` the mutants are the plausible wrong steps of ``tools/wrong_steps.py`` (wrong
interface, namespace, address, prefix, table, chain, order; a forgotten ``up`` or ``return``). Each
declares the words a right diagnosis contains; the table then says, per mutant, whether it was caught
and whether the first failure message names the mistake. Goals: every mutant caught, >= 90% rightly
diagnosed.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import tempfile
import time
from xml.etree import ElementTree
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cnilab.teach.workbook import Block, blocks, export, solution_files, source_root
from wrong_steps import STEPS, Wrong

from cnilab.core.processes import run_nested
from cnilab.teach.stages import stage_dir

BIN = Path(sys.executable).parent


@dataclass
class Mutant:
    block: Block
    first: int   # 1-based line numbers of the removed statement (a removal)
    last: int
    text: str
    wrong: Wrong | None = None  # a wrong step instead of a removal
    killed: bool = False
    message: str = ""
    diagnosed: bool = False
    seconds: float = 0.0

    def apply(self, original: str) -> str:
        if self.wrong is None:
            lines = original.splitlines()
            indent = re.match(r"\s*", lines[self.first - 1]).group(0)
            lines[self.first - 1:self.last] = [f"{indent}pass  # mutant: step removed"]
            return "\n".join(lines) + "\n"
        lines = original.splitlines(keepends=True)
        before, inside, after = lines[:self.block.begin], "".join(lines[self.block.begin:self.block.end + 1]), lines[self.block.end + 1:]
        for old, new in self.wrong.edits:
            if inside.count(old) != 1:
                raise SystemExit(f"wrong step {self.wrong.what!r}: {old!r} occurs {inside.count(old)} times in "
                                 f"{self.block.path}:{self.block.begin + 1} (must be exactly once): fix tools/wrong_steps.py")
            inside = inside.replace(old, new)
        return "".join(before) + inside + "".join(after)


def steps(block: Block) -> list[tuple[int, int, str]]:
    """Top-level statements inside the block: (first line, last line, source of the first line)."""
    source = block.path.read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    lo, hi = block.begin + 2, block.end  # 1-based, exclusive of the marker lines
    inside = [n for n in ast.walk(tree) if isinstance(n, ast.stmt) and lo <= n.lineno and n.end_lineno <= hi]
    nested = {id(c) for n in inside for c in ast.walk(n) if c is not n and isinstance(c, ast.stmt)}
    return sorted((n.lineno, n.end_lineno, lines[n.lineno - 1].strip()) for n in inside if id(n) not in nested)


def target_stage(mutant: Mutant) -> list[str] | None:
    """The tests that judge a wrong step made in another stage's block (stage 06's route_to, run by stage 08's agent)."""
    judge = mutant.wrong.judged_by if mutant.wrong else None
    return [str(stage_dir(judge, Path("tests")))] if judge else None


def target(block: Block) -> list[str]:
    """The tests of the block's stage (for the plugin: the conformance suite against cnilab's plugin)."""
    if block.path.name == "plugin.py":
        return ["tests/stage07_cni/test_stage07_conformance.py", "-k", "cnilab"]
    return [str(stage_dir(block.stage, Path("tests")))]


def run(mutant: Mutant, scratch: Path, only: list[str] | None = None) -> None:
    """Apply ``mutant`` to the scratch suite, run its stage's tests (or ``only`` these) to the first failure,
    record what the student would read; the scratch file is restored afterwards."""
    path = scratch / mutant.block.path
    original = path.read_text()
    path.write_text(mutant.apply(original))
    started = time.monotonic()
    report = scratch / "mutant.xml"
    try:
        done = run_nested([str(BIN / "pytest"), "-x", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                           *(only or target(mutant.block))], cwd=scratch, capture_output=True, text=True, timeout=600)
    finally:
        path.write_text(original)
    mutant.seconds = time.monotonic() - started
    mutant.killed = done.returncode != 0
    test, message = first_failure(report) if report.exists() else ("", done.stdout[-300:])
    mutant.message = f"{test}: {message}"[:300] if mutant.killed else ""
    # judged on what a student reads first: the failure's message (its diagnosis included), not the values
    # pytest's introspection prints below it, where any word may turn up by chance
    mutant.diagnosed = mutant.killed and bool(mutant.wrong) and all(w.lower() in message.lower() for w in mutant.wrong.words)


def first_failure(junit: Path) -> tuple[str, str]:
    """(test name, message) of the first failed or erroring test of a JUnit report."""
    for case in ElementTree.parse(junit).iter("testcase"):
        for bad in (*case.iter("failure"), *case.iter("error")):
            message = bad.get("message") or (bad.text or "").strip()
            if "more line" in message:  # pytest cut a multi-line message short: its E lines are in the text
                shown = [line[1:].strip() for line in (bad.text or "").splitlines() if line.startswith("E ")]
                message = " ".join(shown) or message
            return case.get("name", ""), " ".join(message.split())
    return "", ""


def wrong_mutants(root: Path, wanted: set[int], steps: tuple[Wrong, ...] = STEPS) -> list[Mutant]:
    every = [(rel, b) for rel in solution_files(root) for b in blocks(root / rel)]
    found = []
    for w in steps:
        if (w.judged_by or w.stage) not in wanted:
            continue
        # a function may hold several blocks (the plugin's CHECK): the one whose text holds the first edit
        candidates = [b for rel, b in every if (b.stage, b.function) == (w.stage, w.function)]
        lines = lambda b: "".join(b.path.read_text().splitlines(keepends=True)[b.begin:b.end + 1])  # noqa: E731
        b = next((b for b in candidates if w.edits[0][0] in lines(b)), candidates[0] if candidates else None)
        if b is None:
            raise SystemExit(f"wrong step {w.what!r}: stage {w.stage} has no solution block in {w.function!r}")
        found.append(Mutant(Block(b.path.relative_to(root), b.begin, b.end, b.indent, b.instruction, b.function, b.stage),
                            0, 0, w.what, wrong=w))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", help="comma-separated stage numbers (default: all)")
    parser.add_argument("--wrong", action="store_true", help="plausible wrong steps instead of removed ones")
    parser.add_argument("--all", action="store_true", help="removed and wrong steps")
    parser.add_argument("--catalogue", metavar="FILE", help="wrong steps from FILE (a module with STEPS, like wrong_steps.py)")
    args = parser.parse_args()
    wanted = {int(s) for s in args.stages.split(",")} if args.stages else set(range(1, 9))
    root = source_root()
    scratch = Path(tempfile.mkdtemp(prefix="cnilab-mutation-")) / "suite"
    export(scratch, root, solutions=True)
    mutants = [] if args.wrong else [
        Mutant(Block(rel, b.begin, b.end, b.indent, b.instruction, b.function, b.stage), first, last, text)
        for rel in solution_files(root) for b in blocks(root / rel) if b.stage in wanted for first, last, text in steps(b)]
    if args.wrong or args.all:
        steps = STEPS
        if args.catalogue:
            import runpy
            steps = tuple(runpy.run_path(args.catalogue)["STEPS"])
        mutants += wrong_mutants(root, wanted, steps)
    console = Console(width=200)
    for i, mutant in enumerate(mutants, 1):
        run(mutant, scratch, target_stage(mutant))
        verdict = "caught" if mutant.killed else "SURVIVED"
        console.print(f"[{i}/{len(mutants)}] stage {mutant.block.stage:02d} {mutant.block.function}: {mutant.text[:60]} -> {verdict}")
    removed = [m for m in mutants if m.wrong is None]
    wrongs = [m for m in mutants if m.wrong is not None]
    ok = True
    if removed:
        table = Table(title="mutation check: each solution step removed in turn")
        for col in ("stage", "step in", "removed statement", "caught", "first failure (what the student reads)"):
            table.add_column(col, overflow="fold")
        for m in removed:
            table.add_row(f"{m.block.stage:02d}", m.block.function, m.text[:70], "yes" if m.killed else "[red]NO[/]", m.message)
        console.print(table)
        killed = sum(m.killed for m in removed)
        console.print(f"removed steps caught: {killed}/{len(removed)} = {killed / len(removed):.0%}")
        ok = killed == len(removed)
    if wrongs:
        table = Table(title="wrong-step check: each plausible mistake applied in turn")
        for col in ("stage", "step in", "the mistake", "caught", "diagnosed", "first failure (what the student reads)"):
            table.add_column(col, overflow="fold")
        for m in wrongs:
            table.add_row(f"{m.block.stage:02d}", m.block.function, m.text, "yes" if m.killed else "[red]NO[/]",
                          "yes" if m.diagnosed else f"[red]no[/] (wants {', '.join(m.wrong.words)})", m.message)
        console.print(table)
        killed, right = sum(m.killed for m in wrongs), sum(m.diagnosed for m in wrongs)
        console.print(f"wrong steps caught: {killed}/{len(wrongs)} = {killed / len(wrongs):.0%}; "
                      f"rightly diagnosed: {right}/{len(wrongs)} = {right / len(wrongs):.0%} (goals: 100%, >= 90%)")
        ok = ok and killed == len(wrongs) and right >= 0.9 * len(wrongs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
