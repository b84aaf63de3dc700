"""How long `cnilab progress` takes in a workbook whose stages 01-05 are solved. Run as root:
`sudo .venv/bin/python bench/progress_speed.py [ROUNDS]`.

Three figures, measured in one run on one exported workbook:
- baseline: `pytest` of stages 01-05 (what the old `progress` did every time);
- progress after nothing changed (every result reused: the goal is <= 5 s);
- progress after one edit to stage 05 (only that stage runs again).
Each is the median of ROUNDS (default 3); the ratios are against the baseline.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnilab.teach.workbook import export, source_root

BIN = Path(sys.executable).parent
SOLVED = [f"tests/{d}/conftest.py" for d in ("stage01_netns", "stage02_veth", "stage03_multi", "stage04_com", "stage05_out")]


def timed(argv: list[str], cwd: Path) -> float:
    start = time.monotonic()
    subprocess.run(argv, cwd=cwd, capture_output=True, check=False)
    return time.monotonic() - start


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    wb = Path(tempfile.mkdtemp(prefix="cnilab-bench-")) / "wb"
    export(wb)
    for rel in SOLVED:
        shutil.copy(source_root() / rel, wb / rel)
    for rel in ("tests/stage06_multi", "tests/stage07_cni"):  # the figure is about stages 01-05
        shutil.rmtree(wb / rel)
    stages = [str(wb / Path(rel).parent) for rel in SOLVED]
    progress = [str(BIN / "cnilab"), "progress"]
    timed(progress, wb)  # the first progress runs everything once
    base = statistics.median(timed([str(BIN / "pytest"), "-q", *stages], wb) for _ in range(rounds))
    reused = statistics.median(timed(progress, wb) for _ in range(rounds))
    edited = []
    for _ in range(rounds):
        conftest = wb / SOLVED[-1]
        conftest.write_text(conftest.read_text() + "\n")
        edited.append(timed(progress, wb))
    edit = statistics.median(edited)
    print(f"baseline: pytest of stages 01-05            {base:6.2f} s")
    print(f"progress, nothing changed (results reused) {reused:6.2f} s  = {reused / base:.2f}x the baseline  (goal <= 5 s)")
    print(f"progress, stage 05 edited (05 reruns)       {edit:6.2f} s  = {edit / base:.2f}x the baseline")
    shutil.rmtree(wb.parent)


if __name__ == "__main__":
    main()
