"""Ctrl-C is safe with nested runs: SIGINT to the process group of a pytest run whose test runs a demo
(or a pytest) as a child, at several points of the child's life, leaves nothing behind -- the child
gets the time to tear its lab down (``run_nested``), and every lab notes its prefix in the run's
prefix log, so what a nested run left would be found."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnilab.runtime import cleanup

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]

OUTER = '''
import os, subprocess, sys
from cnilab.core.processes import run_nested

def test_nested():
    with open(os.environ["NESTED_OUT"], "w") as out:
        run_nested(sys.argv[:0] + {argv!r}, stdout=out, stderr=subprocess.STDOUT, cwd={root!r},
                   env={{**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", "TERM": "dumb"}})
'''

DEMO = [str(BIN / "cnilab"), "demo", "2", "--auto", "--no-verify", "--no-picture"]
PYTEST = [str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "tests/stage02_veth"]

#: (the nested run, the text in its output after which the interrupt comes)
POINTS = {
    "demo: first namespace made": (DEMO, "ip netns add"),
    "demo: cable made": (DEMO, "type veth"),
    "demo: pinging": (DEMO, "PING"),
    "demo: about to tear down": (DEMO, "state now\n└── pod"),
    "pytest: first test done": (PYTEST, "."),
}


@pytest.mark.parametrize("point", sorted(POINTS))
def test_sigint_to_the_group_of_a_nested_run_leaves_nothing(tmp_path, point):
    argv, marker = POINTS[point]
    (tmp_path / "test_outer.py").write_text(OUTER.format(argv=argv, root=str(ROOT)))
    out, log = tmp_path / "nested.out", tmp_path / "prefixes"
    env = {**os.environ, "NESTED_OUT": str(out), "CNILAB_PREFIX_LOG": str(log)}
    outer = subprocess.Popen([str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", str(tmp_path / "test_outer.py")],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    deadline = time.monotonic() + 120
    while marker not in (out.read_text() if out.exists() else ""):
        assert outer.poll() is None, f"the run ended before {marker!r}: {outer.stdout.read()[-2000:]}"
        assert time.monotonic() < deadline, f"no {marker!r} in the nested run's output within 120 s"
        time.sleep(0.01)
    os.killpg(outer.pid, signal.SIGINT)
    said, _ = outer.communicate(timeout=180)
    prefixes = set(log.read_text().split()) if log.exists() else set()
    assert prefixes, f"the nested run noted no lab prefix: {out.read_text()[-1500:]}"
    left = cleanup.find(prefixes)
    assert not left, f"SIGINT at '{point}' left {left.describe()}; outer said: {said[-1500:]}"
