"""The lab's links, addresses and VXLAN devices, read once over netlink: what a diagnosis walks.

``Snapshot`` also knows the lab's L2 graph -- veth peers across namespaces, bridge ports, VXLAN
peers -- and what blocks a frame on each edge, so a diagnosis and ``cnilab show`` read the same facts.
"""

from __future__ import annotations

import os
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from ..core.netns import Link
from ..core.step import ip_cmd

if TYPE_CHECKING:
    from ..core.netns import LinkState, Namespace


@dataclass
class Snapshot:
    """The lab's links and addresses, read once for one diagnosis."""

    namespaces: list["Namespace"]
    links: dict[tuple[str, int], "LinkState"] = field(default_factory=dict)
    addrs: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    cidrs: dict[tuple[str, int], list[str]] = field(default_factory=dict)  # the same, with prefix lengths
    vteps: dict[tuple[str, int], dict] = field(default_factory=dict)  # VXLAN devices: vni, local, learning, fdb
    _nsids: dict[str, dict[int, str]] = field(default_factory=dict)
    _nat: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def of(cls, namespaces: list["Namespace"]) -> "Snapshot":
        snap = cls([ns for ns in namespaces if os.path.exists(f"/run/netns/{ns.name}")])
        for ns in snap.namespaces:
            for st in ns.link_states():
                snap.links[(ns.name, st.index)] = st
                if st.kind == "vxlan":
                    link = Link(ns, st.name)
                    snap.vteps[(ns.name, st.index)] = {**ns.vxlan_info(link), "fdb": ns.fdb(link)}
            for a in ns.ipr.get_addr(family=socket.AF_INET):
                snap.addrs.setdefault((ns.name, a["index"]), []).append(a.get("IFA_ADDRESS"))
                snap.cidrs.setdefault((ns.name, a["index"]), []).append(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
        return snap

    def source_nat(self, name: str) -> list[tuple[str, str]]:
        """(outgoing interface, source) of each source-NAT rule of namespace ``name``; none where it does not
        forward (only a router translates, and sparing the others the iptables call keeps a diagnosis quick).
        A missing iptables is a ``LabError``, never read as "no rules"."""
        if name not in self._nat:
            ns = self.ns(name)
            self._nat[name] = ns.source_nat() if ns.sysctl("net.ipv4.ip_forward").strip() == "1" else []
        return self._nat[name]

    def ns(self, name: str) -> "Namespace":
        return next(n for n in self.namespaces if n.name == name)

    def owner(self, ip: str) -> tuple[str, int] | None:
        """(namespace, ifindex) holding address ``ip``."""
        return next((key for key, ips in self.addrs.items() if ip in ips), None)

    def peer(self, key: tuple[str, int]) -> tuple[str, int] | None:
        """The other end of a veth, across namespaces (via the netns ids the kernel assigned)."""
        st = self.links[key]
        if st.kind != "veth" or not st.peer_index:
            return None
        if st.peer_nsid is None:
            return (key[0], st.peer_index)
        ns_name = self._nsid_map(key[0]).get(st.peer_nsid)
        return (ns_name, st.peer_index) if ns_name else None

    def _nsid_map(self, ns_name: str) -> dict[int, str]:
        if ns_name not in self._nsids:
            here, ids = self.ns(ns_name), {}
            for other in self.namespaces:
                fd = os.open(f"/run/netns/{other.name}", os.O_RDONLY)
                try:
                    nsid = here.ipr.get_netnsid(fd=fd).get("nsid")
                finally:
                    os.close(fd)
                if nsid is not None and nsid >= 0:
                    ids[nsid] = other.name
            self._nsids[ns_name] = ids
        return self._nsids[ns_name]

    def ports(self, ns_name: str, bridge_index: int) -> list[tuple[str, int]]:
        return [k for k, st in self.links.items() if k[0] == ns_name and st.master == bridge_index]

    def bridges(self, ns_name: str) -> list["LinkState"]:
        return [st for k, st in self.links.items() if k[0] == ns_name and st.kind == "bridge"]

    def label(self, key: tuple[str, int]) -> str:
        return f"{self.links[key].name} in {key[0]}"

    def neighbours(self, key: tuple[str, int], via_tunnel: bool = False) -> Iterator[tuple[tuple[str, int], str | None]]:
        """L2 neighbours of a link and, for each, what blocks the frame (None when nothing does).

        A frame that arrived through a VXLAN tunnel is never sent into another tunnel (``via_tunnel``).
        """
        st = self.links[key]
        ns_name = key[0]
        peer = self.peer(key)
        if peer and peer in self.links:
            pst = self.links[peer]
            yield peer, None if pst.up else f"{pst.name} in {peer[0]} is down (`{ip_cmd(peer[0], 'link', 'set', pst.name, 'up')}`)"
        if st.master:
            br = (ns_name, st.master)
            bst = self.links.get(br)
            if bst:
                yield br, None if bst.up else f"bridge {bst.name} in {ns_name} is down (`{ip_cmd(ns_name, 'link', 'set', bst.name, 'up')}`)"
        if key in self.vteps and not via_tunnel:
            yield from self._vxlan_peers(key)
        if st.kind == "bridge":
            for port in self.ports(ns_name, key[1]):
                pst = self.links[port]
                yield port, None if pst.up else f"bridge port {pst.name} in {ns_name} is down (`{ip_cmd(ns_name, 'link', 'set', pst.name, 'up')}`)"

    def _vxlan_peers(self, key: tuple[str, int]) -> Iterator[tuple[tuple[str, int], str | None]]:
        """VTEPs of the same VNI elsewhere: reachable when this device's FDB sends frames to their address."""
        me = self.vteps[key]
        st = self.links[key]
        for other, them in self.vteps.items():
            if other == key or (them["vni"], them["port"]) != (me["vni"], me["port"]) or them["local"] == me["local"]:
                continue
            # a bridged VTEP reaches a peer's pods only if ARP broadcasts get there: a flood (all-zeros)
            # entry; a routed VTEP (no learning, no flooding) needs the entry for the peer VTEP's own MAC
            mac = "00:00:00:00:00:00" if me["learning"] else self.links[other].mac
            if (mac, them["local"]) in me["fdb"]:
                yield other, None
                continue
            verb = "append" if me["learning"] else "add"
            yield other, (f"VXLAN device {st.name} in {key[0]} has no FDB entry sending frames to the VTEP "
                          f"{them['local']} of {other[0]} (`bridge -n {key[0]} fdb {verb} {mac} dev {st.name} "
                          f"dst {them['local']} self permanent`)")

    def segment(self, start: tuple[str, int]) -> tuple[set[tuple[str, int]], dict[tuple[str, int], str]]:
        """Links reachable at L2 from ``start``; and, for links reachable only past a blocker, that blocker."""
        seen, blocked = {start}, {}
        queue = deque([(start, False)])
        while queue:
            key, via_tunnel = queue.popleft()
            for nxt, blocker in self.neighbours(key, via_tunnel):
                if nxt in seen:
                    continue
                if blocker:
                    blocked.setdefault(nxt, blocker)
                    continue
                seen.add(nxt)
                queue.append((nxt, key in self.vteps and nxt in self.vteps))
        return seen, blocked
