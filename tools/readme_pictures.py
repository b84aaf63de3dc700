"""Redraw the README's stage pictures (docs/pictures/stageNN.svg) from live labs.

Each picture comes from the stage's own demo (`cnilab demo N --auto --no-verify`), so it shows
what the recipe builds, read back from the kernel. Run as root after changing a recipe:

    sudo .venv/bin/python tools/readme_pictures.py
"""

import sys
import tempfile
from pathlib import Path

from cnilab.core.processes import run_nested

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "pictures"
CNILAB = str(Path(sys.executable).parent / "cnilab")
RUNS = [(str(n), [], f"stage{n:02d}") for n in (1, 2, 3, 4, 5, 6, 7, 8)] + [("6", ["--set", "mode=routed"], "stage06-routed")]


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for stage, extra, name in RUNS:
        with tempfile.TemporaryDirectory() as tmp:
            done = run_nested([CNILAB, "demo", stage, "--auto", "--no-verify", "--pictures", tmp, *extra],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                print(f"stage {stage}: the demo failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}", file=sys.stderr)
                return 1
            (OUT / f"{name}.svg").write_bytes((Path(tmp) / f"stage{int(stage):02d}.svg").read_bytes())
        print(f"wrote {(OUT / f'{name}.svg').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
