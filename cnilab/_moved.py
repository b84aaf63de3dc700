"""The flat module names of earlier cnilab versions, kept for exported workbooks and users' code.

``import cnilab.probes`` finds ``cnilab.observe.probes`` itself (the same module object, not a copy),
through a finder on ``sys.meta_path``: a module file per old name would clutter the layout that
shows the layers.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {name: f"cnilab.{layer}.{name}" for layer, names in {
    "core": ("errors", "names", "step", "nsexec", "lab", "netns"),
    "observe": ("probes", "capture", "diagnose", "topology", "trace"),
    "runtime": ("nodes", "cni", "cri", "cleanup"),
    "teach": ("recipe", "demo", "workbook", "runner", "doctor"),
}.items() for name in names}


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.startswith("cnilab.") and fullname[len("cnilab."):] in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name[len("cnilab."):]])
        self._own_spec = module.__spec__
        return module

    def exec_module(self, module):
        # the import system stamped the old name's spec on the module: give it back its own
        module.__spec__ = self._own_spec


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
