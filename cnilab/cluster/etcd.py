"""The cluster's store: an etcd server inside a lab namespace, its data in a temporary directory.

Debian's ``etcd-server`` (3.4) runs as a child of the lab, bound to the namespace's underlay address
only, so the nodes reach it over the lab's wire and nothing of it touches the machine's namespace.
``stop()`` and ``start()`` again (same data directory) is how a test takes the store away and gives
it back; the lab's finalizer stops it and removes the directory.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..core import processes
from ..core.errors import LabError
from ..core.wait import wait_for

if TYPE_CHECKING:
    from ..core.netns import Namespace

CLIENT_PORT = 2379


def unavailable() -> str | None:
    """Why an etcd cannot run here, or None."""
    if shutil.which("etcd") is None:
        return "`etcd` is missing: apt-get install -y etcd-server (./lab.sh installs it)"
    try:
        import etcd3gw  # noqa: F401
    except ImportError:
        return "the etcd client is missing: .venv/bin/pip install etcd3gw (./lab.sh installs it)"
    return None


class Etcd:
    """One etcd member in ``ns``, listening on ``ip``:2379 (clients) and on loopback (peers)."""

    def __init__(self, ns: "Namespace", ip: str):
        why = unavailable()
        if why:
            raise LabError(f"The cluster store cannot start: {why}.")
        self.ns, self.ip = ns, ip
        self.url = f"http://{ip}:{CLIENT_PORT}"
        self.data = Path(tempfile.mkdtemp(prefix=f"{ns.name}-etcd-"))
        self.proc: subprocess.Popen | None = None
        ns.lab.defer(f"rm -r {self.data}", lambda: shutil.rmtree(self.data, ignore_errors=True))
        ns.lab.defer(f"stop etcd in {ns.name}", self.stop)

    def argv(self) -> list[str]:
        return ["etcd", "--name", self.ns.short, "--data-dir", str(self.data / "member"),
                "--listen-client-urls", f"{self.url},http://127.0.0.1:{CLIENT_PORT}",
                "--advertise-client-urls", self.url,
                "--listen-peer-urls", "http://127.0.0.1:2380",
                "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                "--initial-cluster", f"{self.ns.short}=http://127.0.0.1:2380",
                "--log-outputs", str(self.data / "etcd.log"), "--logger", "zap"]

    def start(self, wait: bool = True) -> "Etcd":
        """Start (or restart, on the same data); return once it answers (``wait``), or at once: its clients
        (the agents) wait for it themselves, so a cluster's nodes are built while etcd comes up."""
        self.ns.lab.transcript.append(f"ip netns exec {self.ns.name} {' '.join(self.argv())} &")
        self.proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.ns.name}", *self.argv()],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        if wait:
            wait_for(self.answers, timeout=15, what=f"etcd at {self.url}")
        return self

    def answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise LabError(f"etcd exited ({self.proc.returncode}); its log: {self.data / 'etcd.log'}")
        return self.ns.call(_healthy)

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc, group=True, grace=5)
            self.proc = None

    def do(self, fn):
        """``fn(client)`` with an etcd v3 client whose sockets live in etcd's namespace (the test process's
        own namespace has no route to the underlay): how a test reads or plants keys."""
        from etcd3gw.client import Etcd3Client

        wait_for(self.answers, timeout=15, what=f"etcd at {self.url}")
        return self.ns.call(lambda: fn(Etcd3Client(host="127.0.0.1", port=CLIENT_PORT, timeout=2)))


def _healthy() -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{CLIENT_PORT}/health", timeout=0.5) as answer:
            return b'"true"' in answer.read()
    except OSError:
        return False
