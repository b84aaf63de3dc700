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

import ast
import base64
import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import LabError
from ..core.suite import suite_root
from .gradebook import STATE, set_hints_shown, write_manifest
from .stages import stage_dirs, stage_of

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?::\s*(?P<text>.*?))?\s*$")
END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
DEF = re.compile(r"^\s*def (\w+)\(")
PLUGIN_FILE = "plugin/cnilab_cni/plugin.py"
HINTS_FILE = "hints.dat"


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
    """The file's text with every solution block replaced by its stub, and without its ``HINTS``: the file
    the student edits holds TODOs and docstrings only; ``cnilab hint N`` reveals the hints one by one."""
    lines = path.read_text().splitlines()
    for block in reversed(blocks(path)):
        lines[block.begin:block.end + 1] = stub(block)
    for first, last in reversed(_hints_lines("\n".join(lines))):
        lines[first - 1:last] = []
    text = "\n".join(lines) + "\n"
    if path.name == "plugin.py":
        text = text.replace("from .errors import (", "from .errors import (TODO, ", 1)
    elif "todo(" in text and "import todo" not in text:
        text = text.replace("from cnilab.teach.recipe import Recipe", "from cnilab.teach.recipe import Recipe, todo", 1)
    return text


def _hints_assignments(text: str) -> list[ast.Assign]:
    """Each top-level ``HINTS = [...]`` of a stage's source."""
    return [n for n in ast.parse(text).body
            if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "HINTS" for t in n.targets)]


def _hints_lines(text: str) -> list[tuple[int, int]]:
    """(first, last) line numbers of each top-level ``HINTS = [...]``."""
    return [(n.lineno, n.end_lineno) for n in _hints_assignments(text)]


def hints_of(root: Path) -> dict[str, list[str]]:
    """{stage: its hints} of the reference suite, read without running any stage code."""
    return {str(stage_of(d.name)): ast.literal_eval(n.value) for d in stage_dirs(root / "tests")
            for n in _hints_assignments((d / "conftest.py").read_text())}


def stored_hints(wb: Path) -> dict[str, list[str]]:
    """The hints kept with a workbook, outside the files the student edits (base64, so that a glance at
    .cnilab or a grep for the answer does not spoil them -- not a secret)."""
    path = wb / STATE / HINTS_FILE
    if not path.exists():
        return {}
    try:
        hints = json.loads(base64.b64decode(path.read_bytes(), validate=True))
    except ValueError:  # binascii.Error and JSON errors are both ValueErrors
        raise LabError(f"{path} is damaged: copy it from a fresh `cnilab workbook export` of the same cnilab.") from None
    return hints if isinstance(hints, dict) else {}


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
then prove your work with the unchanged tests (they are checksummed: an edited test never counts as done).
From this folder, in a root shell (from a normal shell, put `sudo` in front of the first two):

    {venv}/pytest -k stage02          # one stage
    {venv}/cnilab progress            # every stage: done / failing / not started (reruns only what changed)
    {venv}/cnilab hint 2              # the next hint for stage 02, one more each time
    {venv}/cnilab workbook reset 2    # start stage 02 over (keeps a backup of your version)
    {venv}/cnilab grade --markdown    # what a teacher sees
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
    shutil.copy(Path(__file__).with_name("root_conftest.py"), dest / "conftest.py")
    (dest / "README.md").write_text(README.format(venv=Path(sys.executable).parent))
    (dest / STATE).mkdir()
    # the python whose cnilab made it: the pytest shim (`sudo pytest` in the workbook) runs that one's pytest
    (dest / STATE / "workbook.json").write_text(json.dumps({"source": str(root), "python": sys.executable}))
    (dest / STATE / HINTS_FILE).write_bytes(base64.b64encode(json.dumps(hints_of(root)).encode()))
    turned = []
    for rel in solution_files(root):
        turned += blocks(root / rel)
        if not solutions:
            (dest / rel).write_text(without_solutions(root / rel))
    write_manifest(dest, solution_files(root))
    return turned


def workbook_root(start: Path | None = None) -> Path:
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / STATE / "workbook.json").exists():
            return d
    raise LabError(f"{here} is not inside a workbook: run `cnilab workbook export DIR` first, then work in DIR.")


def reset(stage: int, workbook: Path | None = None, *, force: bool = False) -> list[Path]:
    """Put stage ``stage``'s TODOs back (its conftest, or the plugin for stage 07) and its hint counter to
    zero; return the files reset. A file the student changed is overwritten only with ``force``, and then
    kept first under ``.cnilab/backup/TIME/``."""
    wb = workbook_root(workbook)
    root = Path(json.loads((wb / STATE / "workbook.json").read_text())["source"])
    files = [rel for rel in solution_files(root) if stage_of_path(rel) == stage and (
        rel.name == "plugin.py" or stage_of(rel.parent.name) == stage)]
    if not files:
        raise LabError(f"Stage {stage} has nothing to reset: stages are 1 to 7.")
    gone = [rel for rel in files if not (wb / rel).parent.is_dir()]
    if gone:
        raise LabError(f"Stage {stage:02d}'s folder {gone[0].parent} is gone from the workbook: restore it (e.g. "
                       "`git checkout -- tests`) or export a new workbook.")
    fresh = {rel: without_solutions(root / rel) for rel in files}
    changed = [rel for rel in files if (wb / rel).exists() and (wb / rel).read_text() != fresh[rel]]
    if changed and not force:
        raise LabError(f"Stage {stage:02d}: you changed {', '.join(map(str, changed))}; a reset would overwrite your "
                       f"work: run `cnilab workbook reset {stage} --force` (it keeps a backup in {STATE}/backup/).")
    if changed:
        backup = wb / STATE / "backup" / time.strftime("%Y%m%d-%H%M%S")
        for rel in changed:
            (backup / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(wb / rel, backup / rel)
    for rel in files:
        (wb / rel).write_text(fresh[rel])
    set_hints_shown(wb, stage, None)
    return files
