"""Packet capture inside a namespace, decoded by scapy.

The capture socket (AF_PACKET, via scapy's ``L2listen``) is opened in the
namespace before the traffic starts, and the kernel queues every frame to it
synchronously as the frame crosses the interface. Reading is a non-blocking
drain at the end, so no sniffer thread has to be waited for and nothing
depends on timing.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Callable, Iterable

from ..core.step import ns_cmd

if TYPE_CHECKING:
    from scapy.packet import Packet
    from ..core.netns import Namespace

RCVBUF = 8 << 20


class Capture:
    """``with capture(ns, "br0") as cap: ...`` then ``cap.packets`` (scapy packets, in order)."""

    def __init__(self, ns: "Namespace", ifname: str | None, *, lfilter: Callable[["Packet"], bool] | None = None,
                 promisc: bool = True):
        # promiscuous like tcpdump: on a bridge device it is what shows frames forwarded between ports
        self.ns, self.ifname, self.lfilter, self.promisc = ns, ifname, lfilter, promisc
        self._sock = None
        self._packets: list["Packet"] = []

    def __enter__(self) -> "Capture":
        # scapy costs ~0.7 s to import: only captures pay it
        import scapy.layers.inet  # noqa: F401 -- registers IP/TCP/ICMP so frames decode fully
        import scapy.layers.l2  # noqa: F401
        import scapy.layers.vxlan  # noqa: F401 -- binds VXLAN to UDP 4789, so overlay frames decode inside
        from scapy.arch.linux import L2ListenSocket

        def open_socket():
            sock = L2ListenSocket(iface=self.ifname, promisc=self.promisc)
            sock.ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            return sock

        self._sock = self.ns.call(open_socket)
        self.ns.lab.transcript.append(ns_cmd(self.ns.name, ["tcpdump", "-eni", self.ifname or "any"]) + " &")
        return self

    def _drain(self) -> None:
        if self._sock is None:
            return
        self._sock.ins.setblocking(False)
        while True:
            try:
                pkt = self._sock.recv()
            except (BlockingIOError, InterruptedError):
                break
            if pkt is None:
                break
            if self.lfilter is None or self.lfilter(pkt):
                self._packets.append(pkt)

    @property
    def packets(self) -> list["Packet"]:
        """Every frame seen so far (reading drains what the kernel queued)."""
        self._drain()
        return list(self._packets)

    def matching(self, predicate: Callable[["Packet"], bool]) -> list["Packet"]:
        return [p for p in self.packets if predicate(p)]

    def __exit__(self, *exc) -> None:
        self._drain()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def summary(self, packets: Iterable["Packet"] | None = None) -> str:
        return "\n".join(p.summary() for p in (self._packets if packets is None else packets)) or "(no packets)"


def capture(ns: "Namespace", ifname: str, **kwargs) -> Capture:
    """A capture on ``ifname`` of ``ns`` (its short or full name; "any": every interface of the namespace)."""
    return Capture(ns, ns.link(ifname).name if ifname != "any" else None, **kwargs)
