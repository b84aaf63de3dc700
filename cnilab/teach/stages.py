"""The one rule for where a stage lives: a folder ``stageNN_name`` under the tests folder (e.g.
``tests/stage05_out``), which holds the stage's recipe (``conftest.py``) and its proofs."""

from __future__ import annotations

import re
from pathlib import Path

from ..core.errors import LabError

_STAGE = re.compile(r"(?:^|/)stage(\d\d)_(\w+?)(?=/|$)")


def stage_of(path: str | Path) -> int | None:
    """The stage a path (a file, a folder, a pytest node id) belongs to, or None."""
    m = _STAGE.search(str(path))
    return int(m.group(1)) if m else None


def stage_name(path: str | Path) -> str | None:
    """``out`` for anything under ``stage05_out``, or None."""
    m = _STAGE.search(str(path))
    return m.group(2) if m else None


def stage_dirs(tests_dir: Path) -> list[Path]:
    return sorted(p for p in tests_dir.iterdir() if p.is_dir() and stage_of(p.name) is not None) if tests_dir.is_dir() else []


def stage_dir(stage: int, tests_dir: Path) -> Path:
    found = [p for p in stage_dirs(tests_dir) if stage_of(p.name) == stage]
    if not found:
        raise LabError(f"There is no stage {stage:02d} under {tests_dir}: stages are the folders tests/stageNN_name.")
    return found[0]
