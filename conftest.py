"""The checkout's root conftest is cnilab/teach/root_conftest.py -- the very file every exported workbook
gets as its conftest.py -- run from there by path (the pytest loading this one may not import cnilab)."""

from pathlib import Path as _Path

_TEMPLATE = _Path(__file__).resolve().parent / "cnilab" / "teach" / "root_conftest.py"
exec(compile(_TEMPLATE.read_text(), str(_TEMPLATE), "exec"))  # noqa: S102 -- one text, two homes would drift
