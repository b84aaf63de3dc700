"""The verdicts as a table: in the terminal (rich), as JUnit XML (CI systems), as Markdown (a GitHub job summary)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .run import Outcome, Report
from .spec import Level, Verdict

STYLE = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.NOT_APPLICABLE: "dim", Verdict.SKIPPED: "yellow",
         Verdict.DEVIATION: "cyan", Verdict.ERROR: "magenta"}


def label(o: Outcome, strict: bool) -> str:
    if o.verdict is Verdict.FAIL and o.requirement.level is Level.SHOULD and not strict:
        return "fail (warning)"
    return o.verdict.value


def summary(report: Report) -> str:
    r = report
    parts = [f"{r.count(Verdict.PASS)} pass",
             f"{r.count(Verdict.FAIL, Level.MUST)} MUST fail",
             f"{r.count(Verdict.FAIL, Level.SHOULD)} SHOULD fail" + ("" if r.strict else " (warnings)"),
             f"{r.count(Verdict.DEVIATION)} known deviation", f"{r.count(Verdict.NOT_APPLICABLE)} not applicable",
             f"{r.count(Verdict.SKIPPED)} skipped", f"{r.count(Verdict.ERROR)} checker error"]
    verdict = {0: "CONFORMANT", 1: "NOT CONFORMANT", 3: "CHECKER ERROR", 4: "NOT CHECKED"}[r.exit_code]
    return (f"{verdict}: {r.target.path} ({r.target.config_name}; claims {', '.join(r.target.supported)}): "
            f"{', '.join(parts)} in {r.seconds:.1f} s")


def progress_line(o: Outcome, strict: bool) -> str:
    return f"[{STYLE[o.verdict]}]{label(o, strict):>16}[/] {escape(o.case)}" + (f"  [dim]{escape(o.detail[:110])}[/]" if o.detail else "")


def terminal(report: Report, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"CNI conformance of {report.target.path}", show_lines=False)
    table.add_column("requirement", no_wrap=True)
    table.add_column("level")
    table.add_column("result", no_wrap=True)
    table.add_column("spec section / detail", overflow="fold")
    for o in report.outcomes:
        table.add_row(escape(o.case), o.requirement.level.value, f"[{STYLE[o.verdict]}]{label(o, report.strict)}[/]",
                      escape(f"{o.requirement.cite.section}" + (f": {o.detail[:200]}" if o.detail else "")))
    console.print(table)
    console.print(escape(summary(report)), soft_wrap=True, highlight=False)


def junit(report: Report, path: str | Path) -> None:
    suite = ET.Element("testsuite", name=f"cni-conformance {report.target.type}", tests=str(len(report.outcomes)),
                       failures=str(sum(o.fails_run(report.strict) for o in report.outcomes)),
                       errors=str(report.count(Verdict.ERROR)),
                       skipped=str(report.count(Verdict.NOT_APPLICABLE) + report.count(Verdict.SKIPPED) + report.count(Verdict.DEVIATION)),
                       time=f"{report.seconds:.3f}")
    for o in report.outcomes:
        tc = ET.SubElement(suite, "testcase", classname=f"SPEC {o.requirement.cite.section}", name=o.case, time=f"{o.seconds:.3f}")
        cite = f"{o.requirement.level.value}: {o.requirement.title}. {o.requirement.cite}"
        if o.verdict is Verdict.ERROR:
            ET.SubElement(tc, "error", message=o.detail).text = cite
        elif o.fails_run(report.strict):
            ET.SubElement(tc, "failure", message=o.detail).text = cite
        elif o.verdict in (Verdict.NOT_APPLICABLE, Verdict.SKIPPED, Verdict.DEVIATION):
            ET.SubElement(tc, "skipped", message=f"{o.verdict.value}: {o.detail}")
        elif o.verdict is Verdict.FAIL:  # a SHOULD without --strict: a warning
            ET.SubElement(tc, "system-out").text = f"WARNING (SHOULD): {o.detail}\n{cite}"
    ET.ElementTree(ET.Element("testsuites")).getroot().append(suite)
    tree = ET.ElementTree(suite)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)


ICON = {Verdict.PASS: "✅", Verdict.FAIL: "❌", Verdict.NOT_APPLICABLE: "➖", Verdict.SKIPPED: "⏭️",
        Verdict.DEVIATION: "📝", Verdict.ERROR: "💥"}


def markdown(report: Report) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"## CNI conformance: `{report.target.path}`", "", f"**{cell(summary(report))}**", "",
             "| requirement | level | result | spec | detail |", "|---|---|---|---|---|"]
    for o in report.outcomes:
        warn = o.verdict is Verdict.FAIL and not o.fails_run(report.strict)
        lines.append(f"| `{o.case}` {cell(o.requirement.title)} | {o.requirement.level.value} | "
                     f"{'⚠️' if warn else ICON[o.verdict]} {label(o, report.strict)} | "
                     f"{cell(str(o.requirement.cite))} | {cell(o.detail[:300])} |")
    return "\n".join(lines) + "\n"
