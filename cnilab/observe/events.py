"""Route changes as they happen in a namespace: the kernel's RTNLGRP_IPV4_ROUTE notifications.

A snapshot before and after cannot see a route deleted and added again in between (a flap); the
kernel's notifications can. The socket is read with a timeout so the watch stops when asked --
pyroute2's blocking ``get()`` would not -- and only the netlink header is decoded: the question is
*whether* a route changed, and the message type answers it.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import TYPE_CHECKING

from ..core import nsexec

if TYPE_CHECKING:
    from ..core.netns import Namespace

NETLINK_ROUTE, RTMGRP_IPV4_ROUTE = 0, 0x40
RTM_NEWROUTE, RTM_DELROUTE = 24, 25


class RouteChanges:
    """``with RouteChanges(ns) as seen:`` ... ``seen.changes`` lists "new"/"del" route notifications."""

    def __init__(self, ns: "Namespace"):
        self.ns = ns
        self.changes: list[str] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name=f"routes:{ns.name}")

    def _watch(self) -> None:
        nsexec.enter(self.ns.name)  # this thread only
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as sock:
            sock.bind((0, RTMGRP_IPV4_ROUTE))
            sock.settimeout(0.05)
            self._ready.set()
            while not self._stop.is_set():
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                offset = 0
                while offset + 16 <= len(data):
                    length, kind = struct.unpack_from("=IH", data, offset)
                    if kind in (RTM_NEWROUTE, RTM_DELROUTE):
                        self.changes.append("new" if kind == RTM_NEWROUTE else "del")
                    offset += max(16, (length + 3) & ~3)

    def __enter__(self) -> "RouteChanges":
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
