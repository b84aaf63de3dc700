"""Where the stages (``tests/``) and the plugin (``plugin/``) are: the checkout cnilab runs from (an
editable install), or the copy a non-editable install ships below ``cnilab/_suite``."""

from __future__ import annotations

from pathlib import Path

from .errors import LabError

_PACKAGE = Path(__file__).resolve().parents[1]


def suite_root() -> Path:
    """The folder that holds ``tests/`` and ``plugin/``."""
    for root in (_PACKAGE.parent, _PACKAGE / "_suite"):
        if (root / "tests").is_dir() and (root / "plugin").is_dir():
            return root
    raise LabError(f"cnilab's stages and plugin are neither beside {_PACKAGE} nor installed in it: "
                   "reinstall cnilab (`pip install .` or `pip install -e .` from its checkout).")


def tests_dir() -> Path:
    return suite_root() / "tests"


def plugin_dir() -> Path:
    return suite_root() / "plugin"
