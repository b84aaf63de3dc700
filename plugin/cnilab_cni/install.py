"""Put this plugin into a runtime's CNI bin dir: the one installer, used by ``cnilab plugin install``
and by the DaemonSet.

The code goes to ``BIN/.cnilab/`` and the executable ``BIN/<name>`` is a five-line shim run by
``python3 -IS`` (no site, no venv): start-up is most of a plugin call. Each step lands atomically
(rename), so a runtime never runs half a plugin.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SHIM = """#!{python} -IS
# cnilab CNI plugin; its code is in .cnilab/ beside this file.
import sys
sys.path.insert(0, sys.argv[0].rpartition("/")[0] + "/.cnilab")
from cnilab_cni.plugin import main
code = main()
sys.stdout.flush()
import posix
posix._exit(code)  # the answer is out: skip interpreter teardown (a few ms of every call)
"""
SOURCE = Path(__file__).resolve().parent


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)


def install(bin_dir: str | Path, name: str = "cnilab", python: str = "/usr/bin/python3", precompile: bool = True,
            source: str | Path = SOURCE) -> Path:
    """Install the package at ``source`` into ``bin_dir``; ``precompile`` with ``python`` (unchecked-hash
    .pyc: nothing is compiled or stat'ed per call) when that interpreter is at hand."""
    bin_dir = Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    staging, lib, old = bin_dir / ".cnilab.new", bin_dir / ".cnilab", bin_dir / ".cnilab.old"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging / "cnilab_cni", ignore=shutil.ignore_patterns("__pycache__"))
    os.chmod(staging, 0o755)
    if precompile:
        subprocess.run([python, "-IS", "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(staging)],
                       check=True)
    shutil.rmtree(old, ignore_errors=True)
    if lib.exists():
        os.rename(lib, old)
    os.rename(staging, lib)
    shutil.rmtree(old, ignore_errors=True)
    write_atomic(bin_dir / name, SHIM.format(python=python), 0o755)
    return bin_dir / name
