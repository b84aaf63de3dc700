"""Put this plugin into a runtime's CNI bin dir: the one installer, used by ``cnilab plugin install``
and by the DaemonSet.

The code goes to ``BIN/.cnilab/``. The executable ``BIN/<name>`` is either the thin shim, a
five-line Python script run by ``python3 -IS`` (no site, no venv: start-up is most of a plugin
call), or -- where a C compiler is at hand -- the thick shim (``shim.c``), which hands each call to
the node daemon (``daemon.py``) when one runs and else runs the thin shim (``BIN/.cnilab/thin``).
Each step lands atomically (rename), so a runtime never runs half a plugin.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SHIM = """#!{python} -IS
# cnilab CNI plugin; its code is in .cnilab/ beside this file (or this file is .cnilab/thin).
import sys
here = sys.argv[0].rpartition("/")[0]
sys.path.insert(0, here if here.endswith("/.cnilab") else here + "/.cnilab")
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
            source: str | Path = SOURCE, thick: bool = True) -> Path:
    """Install the package at ``source`` into ``bin_dir``; ``precompile`` with ``python`` (unchecked-hash
    .pyc: nothing is compiled or stat'ed per call) when that interpreter is at hand. ``thick``: install
    the C shim that uses the node daemon, when ``cc`` can build it (else the thin shim)."""
    bin_dir = Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    staging, lib, old = bin_dir / ".cnilab.new", bin_dir / ".cnilab", bin_dir / ".cnilab.old"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging / "cnilab_cni", ignore=shutil.ignore_patterns("__pycache__"))
    os.chmod(staging, 0o755)
    if precompile:
        subprocess.run([python, "-IS", "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(staging)],
                       check=True)
    write_atomic(staging / "thin", SHIM.format(python=python), 0o755)
    shim = staging / "shim"
    if thick and shutil.which("cc"):
        subprocess.run(["cc", "-O2", "-o", str(shim), str(staging / "cnilab_cni" / "shim.c")], check=True)
    shutil.rmtree(old, ignore_errors=True)
    if lib.exists():
        os.rename(lib, old)
    os.rename(staging, lib)
    shutil.rmtree(old, ignore_errors=True)
    if (lib / "shim").exists():
        os.replace(lib / "shim", bin_dir / name)  # same filesystem: the swap is atomic
    else:
        write_atomic(bin_dir / name, SHIM.format(python=python), 0o755)
    return bin_dir / name


def daemon_argv(bin_dir: str | Path, python: str = "/usr/bin/python3", die_with_parent: bool = False) -> list[str]:
    """The command that runs the node daemon for the plugin installed in ``bin_dir``."""
    lib = Path(bin_dir) / ".cnilab"
    return [python, "-IS", "-c", f"import sys; sys.path.insert(0, {str(lib)!r}); from cnilab_cni.daemon import serve; "
                                 f"serve({str(lib / 'daemon.sock')!r}, die_with_parent={die_with_parent!r})"]
