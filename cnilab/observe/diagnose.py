"""Explain, from kernel state, why one namespace cannot reach an address.

When a reachability assertion fails, ``why_unreachable`` walks the path the
packet would take -- source address, route, egress link, the L2 segment
(veth peers, bridge ports), the next hop's owner, forwarding, the way back --
and names the first missing ingredient together with the command that adds
it. Everything is read over netlink and /proc/sys of the lab's namespaces.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from ..core.step import ip_cmd, ns_cmd

NUD_INCOMPLETE, NUD_FAILED = 0x01, 0x20

from ..core.netns import Link

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
            if other == key or them["vni"] != me["vni"] or them["local"] == me["local"]:
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


def why_unreachable(src: "Namespace", dst: str, *, _depth: int = 0) -> str:
    """One or two sentences: the likely missing step on the way from ``src`` to ``dst``."""
    snap = Snapshot.of(list(src.lab.namespaces.values()))
    return "Diagnosis: " + (_diagnose(snap, src, dst, _depth) or
                            "addresses, links, bridge ports, routes and forwarding all look right; "
                            f"capture to see where packets stop (`{ns_cmd(src.name, ['tcpdump', '-ni', 'any'])}`).")


def _diagnose(snap: Snapshot, src: "Namespace", dst: str, depth: int) -> str | None:
    try:
        ipaddress.IPv4Address(dst)
    except ValueError:
        return f"{dst!r} is not an IPv4 address."
    mine = [(k, ips) for k, ips in snap.addrs.items() if k[0] == src.name and snap.links[k].name != "lo"]
    if not mine:
        return f"{src.short} has no IPv4 address: the step that assigns one (`{ip_cmd(src.name, 'addr', 'add', 'ADDR/LEN', 'dev', 'IF')}`) is missing."
    for key, _ in mine:
        st = snap.links[key]
        if not st.up:
            return f"link {st.name} in {src.short} is down: bring it up (`{ip_cmd(src.name, 'link', 'set', st.name, 'up')}`)."

    route = src.route_get(dst)
    if route is None:
        return (f"{src.short} has no route to {dst}: it is outside every subnet of {src.short} and there is no default route "
                f"(`{ip_cmd(src.name, 'route', 'add', 'default', 'via', 'GATEWAY')}`).")
    if route["type"] == 2:  # RTN_LOCAL: the destination is this namespace itself
        return None
    egress = (src.name, route["dev_index"])
    est = snap.links[egress]
    if not est.lower_up:
        peer = snap.peer(egress)
        if peer and peer in snap.links:
            pst = snap.links[peer]
            return f"{est.name} in {src.short} has no carrier because its veth peer {pst.name} in {peer[0]} is down (`{ip_cmd(peer[0], 'link', 'set', pst.name, 'up')}`)."
        return f"{est.name} in {src.short} has no carrier (its other end is down or missing)."

    hop = route["gateway"] or dst
    role = "gateway" if route["gateway"] else "destination"
    owner = snap.owner(hop)
    if owner is None:
        return (f"no namespace of the lab holds the {role} address {hop}: the step that assigns it is missing"
                + (" (the gateway address usually lives on the bridge)." if route["gateway"] else "."))

    reach, blocked = snap.segment(egress)
    if owner not in reach:
        if owner in blocked:
            return f"{src.short} and {owner[0]} share no working L2 path: {blocked[owner]}."
        for key in blocked:
            # the first blocker met on the way out from the source
            return f"the L2 path from {est.name} in {src.short} to the {role} {hop} is cut: {blocked[key]}."
        return _missing_l2_edge(snap, egress, owner, hop, role)

    vtep = snap.vteps.get(egress)
    if vtep and not vtep["learning"] and route["gateway"]:
        # no learning, no flooding: ARP for the next hop cannot be answered, the entry must be there
        usable = {ip for ip, _, state in src.neighbours(src.link(est.name)) if state & ~(NUD_INCOMPLETE | NUD_FAILED)}
        if hop not in usable:
            return (f"{est.name} in {src.short} has no permanent ARP entry for the next hop {hop} "
                    f"(`{ip_cmd(src.name, 'neigh', 'add', hop, 'lladdr', snap.links[owner].mac, 'dev', est.name, 'nud', 'permanent')}`).")

    if route["gateway"] and owner[0] != src.name:
        router = snap.ns(owner[0])
        if snap.owner(dst) is None or snap.owner(dst)[0] != router.name:
            if router.sysctl("net.ipv4.ip_forward") != "1":
                return (f"{router.short} is the gateway but does not forward packets (ip_forward is 0): "
                        f"`{ns_cmd(router.name, ['sysctl', '-w', 'net.ipv4.ip_forward=1'])}`.")
            if depth < 3:
                onward = _diagnose(snap, router, dst, depth + 1)
                if onward:
                    return f"past the gateway {router.short}: {onward}"

    target = snap.owner(dst)
    if target and target[0] != src.name:
        back = snap.ns(target[0])
        src_ip = route["src"]
        if src_ip and back.route_get(src_ip) is None:
            reason = (f"{back.short} has no route back to {src_ip}: the reply cannot return "
                      f"(`{ip_cmd(back.name, 'route', 'add', 'default', 'via', 'GATEWAY')}`)")
            router = snap.owner(route["gateway"]) if route["gateway"] else None
            if router and router[0] != back.name and not snap.source_nat(router[0]):
                reason += (f"; for a private source, the gateway {router[0]} should MASQUERADE it instead "
                           f"(`{ns_cmd(router[0], ['iptables', '-t', 'nat', '-A', 'POSTROUTING', '-s', 'SUBNET', '-o', 'UPLINK', '-j', 'MASQUERADE'])}`)")
            return reason + "."
    return None



def _missing_l2_edge(snap: Snapshot, egress: tuple[str, int], owner: tuple[str, int], hop: str, role: str) -> str:
    """No path even ignoring link states: find the veth end that should be a bridge port."""
    for side in (owner, egress):
        far_reach, _ = snap.segment(side)
        for key in far_reach:
            st = snap.links[key]
            if st.kind == "veth" and not st.master:
                peer = snap.peer(key)
                here = key[0]
                bridges = snap.bridges(here)
                if bridges and (peer is None or peer[0] != here):
                    br = bridges[0].name
                    return (f"{st.name} in {here} is not attached to bridge {br}, so {hop} is cut off "
                            f"(`{ip_cmd(here, 'link', 'set', st.name, 'master', br)}`).")
    return (f"{snap.label(egress)} and the {role} {hop} ({snap.label(owner)}) are on different L2 segments: "
            "no veth or bridge joins them.")
