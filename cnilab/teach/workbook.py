"""The student workbook: the suite with the solution parts of each stage's recipe as TODOs.

Solution parts are marked in the source, as nbgrader does::

    # BEGIN SOLUTION: what to build, in one line
    ...the reference code...
    # END SOLUTION

``export`` copies the suite (stage folders and the plugin) and replaces every marked block by a
stub that fails with one line -- the instruction and where the hint is. Everything else (tests,
library, plugin harness) stays the same, so the unchanged tests say when the student got it right.
``blocks`` is also what the mutation check (``tools/mutation.py``) walks.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import LabError
from ..core.suite import suite_root
from .stages import stage_dirs, stage_of

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?::\s*(?P<text>.*?))?\s*$")
END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
DEF = re.compile(r"^\s*def (\w+)\(")
STATE = ".cnilab"
PLUGIN_FILE = "plugin/cnilab_cni/plugin.py"


@dataclass(frozen=True)
class Block:
    path: Path
    begin: int          # index of the BEGIN line
    end: int            # index of the END line
    indent: str
    instruction: str
    function: str       # the fixture or function the block belongs to
    stage: int


def stage_of_path(path: Path) -> int:
    found = stage_of(path)
    return 7 if found is None else found  # the plugin is stage 07's TODO


def blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    found, open_at = [], None
    for i, line in enumerate(lines):
        if m := BEGIN.match(line):
            if open_at is not None:
                raise LabError(f"{path}:{i + 1}: BEGIN SOLUTION inside another block: close the first with END SOLUTION.")
            open_at = (i, m)
        elif END.match(line):
            if open_at is None:
                raise LabError(f"{path}:{i + 1}: END SOLUTION without BEGIN SOLUTION.")
            start, m = open_at
            function = next((d.group(1) for d in (DEF.match(x) for x in reversed(lines[:start])) if d), "?")
            found.append(Block(path, start, i, m.group("indent"), m.group("text") or "fill this in", function,
                               stage_of_path(path)))
            open_at = None
    if open_at is not None:
        raise LabError(f"{path}: BEGIN SOLUTION at line {open_at[0] + 1} is never closed with END SOLUTION.")
    return found


def stub(block: Block) -> list[str]:
    text = block.instruction.replace('"', "'")
    if block.path.name == "plugin.py":
        return [f'{block.indent}raise CniError(TODO, "TODO in stage 07 `{block.function}`: {text} (hint: `cnilab hint 7`)")']
    return [f'{block.indent}todo({block.stage}, "{block.function}", "{text}")']


def without_solutions(path: Path) -> str:
    """The file's text with every solution block replaced by its stub."""
    lines = path.read_text().splitlines()
    for block in reversed(blocks(path)):
        lines[block.begin:block.end + 1] = stub(block)
    text = "\n".join(lines) + "\n"
    if path.name == "plugin.py":
        text = text.replace("from .errors import (", "from .errors import (TODO, ", 1)
    elif "todo(" in text and "import todo" not in text:
        text = text.replace("from cnilab.teach.recipe import Recipe", "from cnilab.teach.recipe import Recipe, todo", 1)
    return text


def source_root() -> Path:
    """The reference suite the workbook is made from (the checkout, or the copy installed with cnilab)."""
    return suite_root()


def solution_files(root: Path) -> list[Path]:
    """Files with solution blocks, relative to the root: each stage's conftest.py and the plugin."""
    files = sorted((d / "conftest.py").relative_to(root) for d in stage_dirs(root / "tests"))
    return files + [Path(PLUGIN_FILE)]


PYPROJECT = """[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "--import-mode=importlib -p no:cacheprovider"
"""

README = """# cnilab workbook

Fill the TODOs in each stage's `tests/stageNN_*/conftest.py` (stage 07: `plugin/cnilab_cni/plugin.py`),
then prove your work with the unchanged tests:

    sudo {venv}/pytest -k stage02          # one stage
    sudo {venv}/cnilab progress            # every stage: done / failing / not started
    {venv}/cnilab hint 2                   # the next hint for stage 02
    {venv}/cnilab workbook reset 2         # start stage 02 over
"""


def export(dest: Path, root: Path | None = None, *, solutions: bool = False) -> list[Block]:
    """Write a workbook to ``dest``; return the blocks turned into TODOs (kept as they are with ``solutions``)."""
    root = root or source_root()
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise LabError(f"{dest} is not empty: export into a new folder (or remove it first).")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for sub in stage_dirs(root / "tests"):
        shutil.copytree(sub, dest / sub.relative_to(root), ignore=ignore)
    shutil.copytree(root / "plugin", dest / "plugin", ignore=ignore)
    (dest / "pyproject.toml").write_text(PYPROJECT)
    (dest / "conftest.py").write_text('"""Anchors pytest at the workbook; the cnilab plugin does the rest."""\n')
    import sys
    (dest / "README.md").write_text(README.format(venv=Path(sys.executable).parent))
    (dest / STATE).mkdir()
    (dest / STATE / "workbook.json").write_text(json.dumps({"source": str(root)}))
    turned = []
    for rel in solution_files(root):
        turned += blocks(root / rel)
        if not solutions:
            (dest / rel).write_text(without_solutions(root / rel))
    return turned


def workbook_root(start: Path | None = None) -> Path:
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / STATE / "workbook.json").exists():
            return d
    raise LabError(f"{here} is not inside a workbook: run `cnilab workbook export DIR` first, then work in DIR.")


def reset(stage: int, workbook: Path | None = None) -> list[Path]:
    """Put stage ``stage``'s TODOs back (its conftest, or the plugin for stage 07); return the files reset."""
    wb = workbook_root(workbook)
    root = Path(json.loads((wb / STATE / "workbook.json").read_text())["source"])
    files = [rel for rel in solution_files(root) if stage_of_path(rel) == stage and (
        rel.name == "plugin.py" or stage_of(rel.parent.name) == stage)]
    if not files:
        raise LabError(f"Stage {stage} has nothing to reset: stages are 1 to 7.")
    for rel in files:
        (wb / rel).write_text(without_solutions(root / rel))
    return files
