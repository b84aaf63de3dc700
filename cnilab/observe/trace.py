"""Packet views: a probe, the captures taken while it ran, and each packet printed layer by layer.

A stage declares its traces in its ``conftest.py`` with ``@recipe.trace``: a
function of the ``lab`` that finds its namespaces by short name, sends
something (a ping, a TCP exchange) and returns a ``Trace``. The stage's tests
assert on the captured packets; ``cnilab demo`` prints them; ``cnilab trace``
runs them again on a lab kept with ``--keep``. One scenario, three uses.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .capture import capture

if TYPE_CHECKING:
    from scapy.packet import Packet

    from ..core.netns import Namespace


@dataclass
class View:
    """The packets one capture point saw."""

    where: str                 # e.g. "pod3 eth0"
    packets: list["Packet"]

    def matching(self, predicate: Callable[["Packet"], bool]) -> list["Packet"]:
        return [p for p in self.packets if predicate(p)]

    def summary(self) -> str:
        return "\n".join(p.summary() for p in self.packets) or "(no packets)"


@dataclass
class Trace:
    """What a trace did (``probe``, its ``output``) and what the capture points saw."""

    probe: str
    output: str
    views: list[View] = field(default_factory=list)
    log: list[str] = field(default_factory=list)   # other evidence, e.g. the CNI plugin's log lines
    result: Any = None                             # the probe's own value (a PingResult, echoed bytes...)
    only: Callable[["Packet"], bool] | None = None  # which packets are worth printing (the rest is chatter)

    def view(self, where: str) -> View:
        return next(v for v in self.views if v.where == where)


def captured(action: Callable[[], Any], *points: tuple["Namespace", str]) -> tuple[Any, list[View]]:
    """Run ``action`` with a capture open on each (namespace, interface); return its value and the views."""
    with contextlib.ExitStack() as stack:
        caps = [stack.enter_context(capture(ns, ifname)) for ns, ifname in points]
        value = action()
    return value, [View(f"{ns.short} {ifname}", cap.packets) for (ns, ifname), cap in zip(points, caps)]


# -- printing, layer by layer ------------------------------------------------------

def describe(layer: "Packet") -> str | None:
    """One line for one protocol layer (None for padding)."""
    name = layer.name
    f = layer.fields
    if name == "Ethernet":
        return f"Ethernet  {f.get('src')} -> {f.get('dst')}  type 0x{f.get('type', 0):04x}"
    if name == "ARP":
        op = {1: "who-has", 2: "is-at"}.get(f.get("op"), f.get("op"))
        return (f"ARP {op} {f.get('pdst')} tell {f.get('psrc')}" if op == "who-has"
                else f"ARP {f.get('psrc')} is-at {f.get('hwsrc')}")
    if name == "IP":
        proto = {1: "icmp", 6: "tcp", 17: "udp"}.get(f.get("proto"), f.get("proto"))
        return f"IPv4  {f.get('src')} -> {f.get('dst')}  ttl {f.get('ttl')}  {proto}"
    if name == "ICMP":
        kind = {0: "echo-reply", 8: "echo-request", 3: "unreachable"}.get(f.get("type"), f"type {f.get('type')}")
        return f"ICMP {kind} id {f.get('id')} seq {f.get('seq')}"
    if name == "TCP":
        return f"TCP  {f.get('sport')} -> {f.get('dport')}  [{layer.sprintf('%TCP.flags%')}]  seq {f.get('seq')} ack {f.get('ack')}"
    if name == "UDP":
        return f"UDP  {f.get('sport')} -> {f.get('dport')}  len {f.get('len')}"
    if name == "VXLAN":
        return f"VXLAN  vni {f.get('vni')}"
    if name == "Raw":
        return f"payload {len(layer.load)} bytes"
    if name == "Padding":
        return None
    return f"{name} {layer.mysummary() if hasattr(layer, 'mysummary') else ''}".strip()


def layers(pkt: "Packet") -> list[str]:
    """The packet's layers, outermost first; one line each."""
    from scapy.packet import NoPayload

    out = []
    layer = pkt
    while layer is not None and not isinstance(layer, NoPayload):
        line = describe(layer)
        if line:
            out.append(line)
        layer = layer.payload
    return out


def render(trace: Trace, *, limit: int = 10, only: Callable[["Packet"], bool] | None = None):
    """A rich renderable: the probe, its output, then each view's packets as nested layer trees."""
    from rich.console import Group
    from rich.text import Text
    from rich.tree import Tree

    only = only or trace.only
    parts: list[Any] = [Text(f"$ {trace.probe}", style="bold green")]
    if trace.output.strip():
        parts.append(Text(trace.output.rstrip()))
    for view in trace.views:
        shown = [p for p in view.packets if only is None or only(p)]
        head = Tree(f"[bold magenta]captured on {view.where}[/]: {len(view.packets)} packet(s)"
                    + (f", first {limit} shown" if len(shown) > limit else ""))
        for n, pkt in enumerate(shown[:limit], 1):
            lines = layers(pkt)
            node = head.add(f"[bold]#{n}[/] {lines[0]}" if lines else f"#{n}")
            for line in lines[1:]:
                node = node.add(line)  # each layer nests in the one that carries it
        parts.append(head)
    if trace.log:
        log = Tree("[bold magenta]plugin log[/]")
        for line in trace.log:
            log.add(line)
        parts.append(log)
    return Group(*parts)
