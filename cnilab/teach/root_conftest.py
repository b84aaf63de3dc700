"""Root conftest of every exported workbook (export copies this file) and of the cnilab checkout (whose
conftest.py runs this file by path).

The cnilab pytest plugin (stage markers, ``lab`` fixture, leak guard) comes from the installed package
through its ``pytest11`` entry point; this file anchors pytest's rootdir. And it makes ``pytest -k
stage05`` work with whatever pytest the shell finds first: a pytest that cannot import cnilab (a system
or pyenv one) hands the same command over to the project's own pytest -- the checkout's ``.venv``, or
the environment that exported the workbook -- before anything else is collected. It runs inside a
foreign interpreter, so it uses the standard library only.
"""

import importlib.util
import json
import os
import sys
from pathlib import Path


def _project_pytest(here: Path) -> Path | None:
    venv = here / ".venv" / "bin" / "pytest"
    if venv.exists():
        return venv
    try:
        return Path(json.loads((here / ".cnilab" / "workbook.json").read_text())["python"]).parent / "pytest"
    except (OSError, ValueError, KeyError):
        return None


def _foreign() -> Path | None:
    """The project's pytest when this one cannot import cnilab, else None."""
    if importlib.util.find_spec("cnilab") is not None or os.environ.get("CNILAB_HANDED_OVER"):
        return None
    target = _project_pytest(Path(__file__).resolve().parent)
    if target is None or not target.exists():
        sys.exit(f"This pytest ({sys.executable}) cannot import cnilab: run ./lab.sh setup once, then use "
                 ".venv/bin/pytest (or `sudo pytest`, which lab.sh points at it).")
    return target


_TARGET = _foreign()

if _TARGET is not None:
    def pytest_configure(config) -> None:
        """Hand the command over before collection, with the terminal back (pytest captures it meanwhile)."""
        capture = config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.suspend_global_capture(in_=True)
        os.environ["CNILAB_HANDED_OVER"] = "1"  # never twice: a broken environment must fail, not loop
        sys.stdout.flush()
        os.execv(_TARGET, [str(_TARGET), *sys.argv[1:]])
