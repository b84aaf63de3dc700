"""Probes: ping, TCP round trips, listening sockets.

Each probe answers a question about the lab from inside a namespace. The
``assert_*`` helpers turn a failed reachability check into an explanation
built from kernel state (see ``diagnose``).
"""

from __future__ import annotations

import re
import errno
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyroute2 import DiagSocket

from ..core.errors import LabError
from ..core.step import ns_cmd
from ..core.wait import wait_for

if TYPE_CHECKING:
    from ..core.netns import Namespace

_PING_SUMMARY = re.compile(rb"(\d+) packets transmitted, (\d+) (?:packets )?received")
TCP_LISTEN = 10


@dataclass(frozen=True)
class PingResult:
    src: str
    dst: str
    sent: int
    received: int
    error: str = ""
    command: str = ""   # the shell form of what ran
    output: str = ""    # what ping printed

    @property
    def loss(self) -> float:
        """Fraction of echo requests without a reply (1.0 when none came back)."""
        return 1.0 if self.sent == 0 else 1 - self.received / self.sent

    @property
    def ok(self) -> bool:
        return self.sent > 0 and self.received == self.sent

    def __str__(self) -> str:
        return f"ping {self.src} -> {self.dst}: {self.received}/{self.sent} replies ({self.loss:.0%} loss){' ' + self.error if self.error else ''}"


def ping(ns: "Namespace", dst: str, *, count: int = 2, interval: float = 0.01, wait: float = 1.0,
         size: int | None = None, dont_fragment: bool = False) -> PingResult:
    """Send ``count`` ICMP echo requests from ``ns`` to ``dst`` with iputils' ``ping``.

    ``wait`` is how long to wait for each reply (``-W``), so a lost reply
    costs at most that long. ``dont_fragment`` sets DF (``-M do``) for MTU proofs.
    """
    # no -q: iputils then keeps quiet about local errors (EMSGSIZE "message too long", ...) too
    argv = ["ping", "-n", "-c", str(count), "-i", f"{interval:g}", "-W", f"{wait:g}"]
    if size is not None:
        argv += ["-s", str(size)]
    if dont_fragment:
        argv += ["-M", "do"]
    argv.append(dst)
    done = ns.run(argv, check=False, timeout=count * (interval + wait) + 5)
    ns.lab.transcript.append(ns_cmd(ns.name, argv))
    if done.returncode == 255 or b"invalid argument" in done.stderr or b"usage" in done.stderr:
        # `ip netns exec` (255) or ping itself refused to run: that is no answer about the network
        raise LabError(f"`{ns_cmd(ns.name, argv)}` could not run: {done.stderr.decode(errors='replace').strip()}")
    m = _PING_SUMMARY.search(done.stdout)
    if m:
        sent, received = int(m.group(1)), int(m.group(2))
    else:
        sent, received = count, 0
    error = done.stderr.decode(errors="replace").strip().splitlines()
    return PingResult(ns.short, dst, sent, received, error[-1] if error else "", ns_cmd(ns.name, argv),
                      (done.stdout + done.stderr).decode(errors="replace"))


def assert_ping(src: "Namespace", dst: str, **kwargs) -> PingResult:
    """Ping must succeed, else fail with a diagnosis of why ``dst`` is unreachable."""
    result = ping(src, dst, **kwargs)
    if not result.ok:
        from .diagnose import why_unreachable
        raise AssertionError(f"{result}.\n{why_unreachable(src, dst)}")
    return result


def assert_no_ping(src: "Namespace", dst: str, **kwargs) -> PingResult:
    """Ping must fail completely (a negative proof)."""
    kwargs.setdefault("count", 1)
    kwargs.setdefault("wait", 0.5)
    result = ping(src, dst, **kwargs)
    assert result.received == 0, f"{result}: expected no reply at all, yet {dst} answered."
    return result


# -- TCP ----------------------------------------------------------------------

def listening_ports(ns: "Namespace") -> set[int]:
    """TCP ports with a socket in LISTEN state in ``ns``, read with sock_diag (like ``ss -ltn``)."""

    def read() -> set[int]:
        with DiagSocket() as diag:
            diag.bind()
            # both families: a dual-stack server (iperf3) listens on AF_INET6 `::`
            return {s["idiag_sport"] for family in (socket.AF_INET, socket.AF_INET6)
                    for s in diag.get_sock_stats(family=family, states=1 << TCP_LISTEN)}

    return ns.call(read)


class EchoServer:
    """A TCP echo server in a thread inside a namespace; it listens before the constructor returns."""

    def __init__(self, ns: "Namespace", port: int, host: str = "0.0.0.0"):
        self.ns, self.port = ns, port
        self.sock: socket.socket = ns.call(self._listen, host, port)
        self.accepted = 0
        self.peers: list[str] = []  # the source address of each connection, as this end sees it
        self._thread = threading.Thread(target=self._serve, name=f"echo:{ns.name}:{port}", daemon=True)
        self._thread.start()
        ns.lab.transcript.append(ns_cmd(ns.name, ["socat", f"TCP-LISTEN:{port},reuseaddr,fork", "EXEC:cat"]) + " &")
        ns.lab.defer(f"stop echo server {ns.name}:{port}", self.stop)

    @staticmethod
    def _listen(host: str, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(16)
        return sock

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return  # closed by stop()
            self.accepted += 1
            self.peers.append(peer[0])
            with conn:
                while chunk := conn.recv(65536):
                    conn.sendall(chunk)

    def stop(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(timeout=2)


def tcp_roundtrip(ns: "Namespace", dst: str, port: int, payload: bytes, *, timeout: float = 3.0) -> bytes:
    """Connect from ``ns`` to ``dst:port``, send ``payload``, half-close, and return all bytes echoed back."""

    def talk() -> bytes:
        with socket.create_connection((dst, port), timeout=timeout) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    ns.lab.transcript.append(ns_cmd(ns.name, ["socat", "-", f"TCP:{dst}:{port}"]))
    try:
        return ns.call(talk)
    except ConnectionRefusedError:
        raise ConnectionRefusedError(errno.ECONNREFUSED, refused(ns, dst, port)) from None
    except TimeoutError:
        from .diagnose import why_unreachable
        raise TimeoutError(f"{ns.short} -> {dst}:{port}: no answer within {timeout:g} s, not even a refusal. "
                           f"{why_unreachable(ns, dst)}") from None


def refused(ns: "Namespace", dst: str, port: int) -> str:
    """Why a connection was refused, said with the lab's listeners: who holds ``dst`` and where ``port`` listens."""
    owner = next((other for other in ns.lab.namespaces.values() if other.owns(dst)), None)
    where = sorted(other.short for other in ns.lab.namespaces.values() if port in listening_ports(other))
    text = (f"connection from {ns.short} to {dst}:{port} refused: nothing listens on TCP port {port} in "
            f"{owner.short if owner else 'the namespace holding ' + dst}")
    if owner is not None:
        theirs = sorted(listening_ports(owner))
        text += f" (it listens on {', '.join(map(str, theirs)) or 'no port'})"
    if where:
        text += f"; port {port} listens in {', '.join(where)} instead"
    return text + "."


def socat_server(ns: "Namespace", port: int):
    """The seed's way: ``socat TCP-LISTEN:PORT,reuseaddr,fork EXEC:cat``; returns once it listens."""
    proc = ns.spawn(["socat", f"TCP-LISTEN:{port},reuseaddr,fork", "EXEC:cat"])

    def listening() -> bool:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            raise LabError(f"socat exited before listening on port {port}: {err or 'is socat installed? `apt-get install -y socat`'}.")
        return port in listening_ports(ns)

    wait_for(listening, timeout=5, what=f"socat to listen on {ns.name}:{port}")
    return proc


def socat_roundtrip(ns: "Namespace", dst: str, port: int, payload: bytes, *, timeout: float = 5.0) -> bytes:
    """The seed's client: ``echo PAYLOAD | socat - TCP:DST:PORT``; returns what came back."""
    done = ns.run(["socat", "-t", "2", "-", f"TCP:{dst}:{port}"], input=payload, timeout=timeout, check=False)
    ns.lab.transcript.append(ns_cmd(ns.name, ["socat", "-", f"TCP:{dst}:{port}"]))
    if done.returncode != 0:
        raise AssertionError(f"socat client in {ns.name} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout
