"""Processes a lab starts: stopping them (TERM, a grace period, then KILL) and running a nested run
(a demo, a workbook's pytest, `cnilab conformance`) so that Ctrl-C gives it the time to tear down."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any, Sequence

#: how long a nested run may take to tear its lab down after Ctrl-C before it is killed
TEARDOWN_GRACE = 60.0


def stop(proc: subprocess.Popen, *, group: bool = False, grace: float = 3.0) -> None:
    """SIGTERM ``proc`` (its whole process group with ``group``), wait ``grace`` s, then SIGKILL; close its pipes."""

    def send(sig: int) -> None:
        try:
            os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
        except ProcessLookupError:
            pass  # it ended by itself

    if proc.poll() is None:
        send(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
            proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream:
            stream.close()


def run_nested(argv: Sequence[str], *, timeout: float | None = None, grace: float = TEARDOWN_GRACE,
               **kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run`` for a child that owns a lab, safe against Ctrl-C.

    ``subprocess.run`` kills its child when the caller is interrupted -- in the middle of the child's
    own teardown, which leaves its lab behind. Here the child gets SIGINT (if the terminal's did not
    reach it already) and up to ``grace`` seconds to finish; then the interrupt goes on.
    """
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    if kwargs.pop("capture_output", False):
        kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc = subprocess.Popen(list(argv), **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except KeyboardInterrupt:
        try:
            proc.send_signal(signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            proc.communicate(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # a hung child still tears its lab down
        try:
            proc.communicate(timeout=grace)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
