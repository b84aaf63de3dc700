"""Root conftest: the cnilab pytest plugin (stage markers, ``lab`` fixture, leak guard) comes
from the installed package through its ``pytest11`` entry point, so a workbook exported
elsewhere behaves the same. This file only anchors pytest's rootdir at the repository."""
