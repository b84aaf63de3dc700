"""An agent as the lab runs it: ``cnilab agent`` in a node's namespace, its log in a file.

The lab can kill it (SIGKILL: a node dying), stop it (SIGTERM: the agent leaves its lease and its
datapath as they are, for the next agent on that node) and start it again; teardown stops it.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..core import processes
from ..core.wait import wait_for

if TYPE_CHECKING:
    from ..core.netns import Namespace


class AgentProcess:
    def __init__(self, ns: "Namespace", name: str, args: list[str], log: Path):
        self.ns, self.name, self.args, self.log = ns, name, args, Path(log)
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        ns.lab.defer(f"stop the agent of {name}", self.stop)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "cnilab.cli", "agent", "--name", self.name, "--netns", self.ns.name,
                "--prefix", self.ns.lab.prefix, *self.args]

    def start(self) -> "AgentProcess":
        self.ns.lab.transcript.append(f"ip netns exec {self.ns.name} cnilab agent --name {self.name} {' '.join(self.args)} &")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.ns.name}", *self.argv()],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.starts += 1
        if self.ns.lab.on_event is not None and not getattr(self, "_tail", None):
            self._tail = threading.Thread(target=self._follow, daemon=True, name=f"agent-log:{self.name}")
            self._tail.start()
        return self

    def _follow(self) -> None:
        """Hand each new log line to the lab's event hook (a demo prints the agent's decisions as they happen)."""
        shown = 0
        while self.ns.lab.on_event is not None and not self.ns.lab._closed:
            lines = self.lines()
            for line in lines[shown:]:
                self.ns.lab.on_event(line)
            shown = len(lines)
            threading.Event().wait(0.05)  # a log file has no readiness to wait for: look again shortly

    def said(self, pattern: str, since: int = 0) -> list[str]:
        """Log lines (from line ``since`` on) matching the regular expression ``pattern``."""
        lines = self.lines()[since:]
        return [line for line in lines if re.search(pattern, line)]

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines() if self.log.exists() else []

    def wait_said(self, pattern: str, timeout: float = 10, since: int = 0) -> str:
        def found() -> bool:
            if self.proc is not None and self.proc.poll() is not None and not self.said(pattern, since):
                raise AssertionError(f"the agent of {self.name} exited ({self.proc.returncode}) before saying "
                                     f"/{pattern}/; its log:\n" + "\n".join(self.lines()[-15:]))
            return bool(self.said(pattern, since))

        try:
            wait_for(found, timeout=timeout, what=f"the agent of {self.name} to say /{pattern}/", poll=0.01)
        except AssertionError:
            raise AssertionError(f"the agent of {self.name} did not say /{pattern}/ within {timeout:g} s; it said last:\n"
                                 + "\n".join(self.lines()[since:][-8:])) from None
        return self.said(pattern, since)[0]

    def kill(self) -> float:
        """SIGKILL, as a node that dies; returns the moment (time.monotonic())."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return time.monotonic()

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc, group=True, grace=5)
            self.proc = None

    def leave(self) -> None:
        """SIGUSR1: the node leaves the cluster (the agent removes its lease and everything it made), then exits."""
        self.proc.send_signal(signal.SIGUSR1)
        try:
            self.proc.wait(timeout=10)
        finally:
            self.stop()

    def restart(self) -> "AgentProcess":
        self.stop()
        return self.start()
