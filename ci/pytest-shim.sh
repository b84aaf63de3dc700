#!/bin/sh
# cnilab-pytest-shim: installed as /usr/local/bin/pytest by lab.sh, so that `sudo pytest -k stage05` works
# as written (sudo's PATH never holds a project's .venv). Inside a cnilab checkout or an exported workbook it
# runs that project's own pytest, the one that imports cnilab; anywhere else the next pytest on PATH.
dir=$(pwd -P)
while :; do
  if [ -x "$dir/.venv/bin/pytest" ] && [ -f "$dir/lab.sh" ] && [ -d "$dir/cnilab" ]; then
    exec "$dir/.venv/bin/pytest" "$@"
  fi
  if [ -f "$dir/.cnilab/workbook.json" ]; then
    py=$(sed -n 's/.*"python": *"\([^"]*\)".*/\1/p' "$dir/.cnilab/workbook.json")
    if [ -n "$py" ] && [ -x "$(dirname "$py")/pytest" ]; then exec "$(dirname "$py")/pytest" "$@"; fi
  fi
  [ "$dir" = / ] && break
  dir=$(dirname "$dir")
done
self=$(readlink -f "$0")
IFS=:
for p in $PATH; do
  if [ -x "$p/pytest" ] && [ "$(readlink -f "$p/pytest")" != "$self" ]; then exec "$p/pytest" "$@"; fi
done
echo "pytest: not inside a cnilab checkout or workbook, and no other pytest is installed: cd into one (or run its .venv/bin/pytest)." >&2
exit 127
