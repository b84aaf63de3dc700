"""``cnilab demo N``: a stage built step by step in front of an audience, from the stage's own recipe.

Like a demo-magic.sh session: before each build step a sentence says why
(the fixture's docstring), each kernel change is typed out as the shell
command it stands for, the presenter presses Enter, it runs, and the state
it produced is shown (addresses, routes, bridge ports). Then the stage's
traces run (a ping, a TCP exchange, their packets layer by layer), a picture
of the lab is saved, the lab is torn down, and the stage's tests give their
verdict. Nothing here builds anything itself: the steps are the recipe's,
run through ``Recipe.build`` with a narrator attached to the ``Lab``.
"""

from __future__ import annotations

import inspect
import re
import time
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.panel import Panel
from rich.rule import Rule
from rich.text import Text

from ..core.lab import Lab
from .recipe import load_conftest, stage_dir
from ..core.step import Step
from ..observe.topology import Topology


def prose(text: str, values: dict[str, Any] | None = None) -> str:
    """A docstring as a reader should see it: paragraphs reflowed but bullet items kept one per line,
    RST ``literals`` as `literals`, and the names it mentions -- constants like NODES, parameters like
    `mode` -- replaced by their values in this run."""
    values = values or {}

    def value(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        return str(values[name]) if name in values else m.group(0)

    out = []
    for para in text.split("\n\n"):
        items = re.split(r"\n\s*(?=[*-] )", para.strip())
        out.append("\n".join(re.sub(r"\s*\n\s*", " ", item) for item in items))
    joined = "\n\n".join(out).replace("``", "`")
    return re.sub(r"`(\w+)`|\b([A-Z][A-Z0-9_]{2,})\b", value, joined)


def why_of(fn: Callable[..., Any], values: dict[str, Any] | None = None) -> str:
    """The sentence a fixture or helper gives for itself: its docstring without the Name/Scope line."""
    doc = inspect.getdoc(fn) or ""
    paragraphs = [p for p in doc.split("\n\n") if p.strip()]
    if paragraphs and paragraphs[0].startswith("Name:"):
        paragraphs = paragraphs[1:]
    return prose(paragraphs[0], values) if paragraphs else ""


def run_values(module: Any, given: dict[str, Any]) -> dict[str, Any]:
    """What a docstring's names stand for in this run: the constants of the stage and of the stages it builds
    on (a table by its keys: "every pod of pod1, pod2, pod3"), and the given parameters."""
    values: dict[str, Any] = {}
    recipe = module.recipe
    while recipe is not None:
        for k, v in vars(load_conftest(recipe.path)).items():
            if k.isupper() and k not in values and isinstance(v, (int, str, dict)):
                values[k] = ", ".join(map(str, v)) if isinstance(v, dict) else v
        recipe = recipe.base
    return {**values, **given}


class Presenter:
    """Prints the show and paces it: Enter before each command unless ``auto``."""

    def __init__(self, console: Console, *, auto: bool, cps: float = 0.0):
        self.console, self.auto, self.cps = console, auto, cps
        self._shown: dict[str, tuple] = {}
        self._depth = 0
        self._told: set[str] = set()
        self.values: dict[str, Any] = {}  # what docstrings' names stand for in this run (see prose)

    def pause(self, prompt: str = "") -> None:
        if not self.auto:
            from rich.text import Text

            self.console.input(Text(f"{prompt or '(Enter)'} ", style="dim"))

    def type_out(self, command: str) -> None:
        """Show ``$ command`` -- typed out at ``cps`` characters a second when presenting live."""
        self.console.print("[bold green]$[/] ", end="")
        if self.cps and not self.auto:
            for ch in command:
                self.console.print(ch, end="", markup=False, highlight=False)
                self.console.file.flush()
                time.sleep(1 / self.cps)  # the typing effect; nothing waits on it
            self.console.print()
        else:
            self.console.print(command, markup=False, highlight=False)

    # -- the Lab's narrator: one kernel change -------------------------------------
    def narrate(self, step: Step) -> None:
        if step.note:
            self.console.print(f"[italic]# {step.note}[/]")
        self.type_out(step.command)
        self.pause()

    # -- Recipe.build's hook: one build step (a fixture, or a helper it calls) -------------
    def on_step(self, lab: Lab) -> Callable[[str, Callable[..., Any] | None], None]:
        """Announce each step with its why (once per step name); show the state after the outer ones.

        Depth 1 is a fixture, 2 a helper it calls (a pod plugged in, a node added); deeper helpers
        only announce themselves, so stage 06 shows its state once per node, not once per route.
        """
        def hook(name: str, fn: Callable[..., Any] | None) -> None:
            if fn is not None:
                self._depth += 1
                if self._depth == 1:
                    self.console.print(Rule(f"[bold]{name}", align="left"))
                else:
                    self.console.print(f"[bold]{'  ' * (self._depth - 2)}> {name}[/]")
                why = why_of(fn, self.values)
                if why and name not in self._told:
                    self._told.add(name)
                    self.console.print(f"[cyan]{why}[/]")
            else:
                self._depth -= 1
                if self._depth <= 1:
                    self.show_state(lab)
        return hook

    def show_state(self, lab: Lab, *, everything: bool = False) -> Topology:
        """What the kernel holds now, for the namespaces that changed since it was last shown."""
        topo = Topology.of(lab)
        changed = {ns for ns in topo.namespaces if everything or self._shown.get(ns) != topo.signature(ns)}
        for ns in topo.namespaces:
            self._shown[ns] = topo.signature(ns)
        if changed:
            self.console.print(topo.tree("state now" if not everything else f"lab {lab.prefix}", only=changed))
        return topo


def run_demo(stage: int, tests_dir: Path, *, auto: bool, keep: bool = False, verify: bool = True,
             pictures: Path | None = None, given: dict[str, Any] | None = None, cps: float = 60.0,
             console: Console | None = None) -> int:
    from .runner import run_stages
    from ..observe.trace import render

    console = console or Console()
    module = load_conftest(stage_dir(stage, tests_dir) / "conftest.py")
    recipe = module.recipe
    show = Presenter(console, auto=auto, cps=cps)
    given = {**getattr(module, "DEMO", {}), **(given or {})}
    show.values = run_values(module, {"node_kind": "netns", **given})
    intro = prose(inspect.getdoc(module) or recipe.title, show.values)
    console.print(Panel(intro, title=f"cnilab demo: stage {stage:02d} -- {recipe.title}", expand=False))
    with Lab(keep=keep, narrator=show.narrate) as lab:
        lab.on_event = lambda line: console.print(Text(line, style="magenta"))
        recipe.build(lab, on_step=show.on_step(lab), node_kind="netns", **given)
        for name, trace in recipe.traces.items():
            console.print(Rule(f"[bold]{name}", align="left"))
            console.print(f"[cyan]{why_of(trace, show.values)}[/]")
            show.pause("(Enter: run it)")
            console.print(render(trace(lab)))
            show.show_state(lab)
        topo = show.show_state(lab, everything=True)
        if pictures is not None:
            paths = topo.render(pictures, f"stage{stage:02d}", f"stage {stage:02d}: {recipe.title}")
            console.print(f"picture: {', '.join(map(str, paths))}")
        if keep:
            console.print(f"kept: {' ; '.join(lab.enter_hints())}  (remove with `cnilab cleanup --prefix {lab.prefix}`)")
        show.pause("(Enter: tear the lab down)")
    console.print(f"[dim]lab {lab.prefix} {'kept' if keep else 'torn down'}[/]")
    if not verify:
        return 0
    console.print(Rule("[bold]the stage's verifications"))
    show.pause("(Enter: run the tests)")
    return run_stages(tests_dir, [stage], console=console)

