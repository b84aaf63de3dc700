"""Explain, from kernel state, why one namespace cannot reach an address.

When a reachability assertion fails, ``why_unreachable`` walks the path the
packet would take -- source address, route, egress link, the L2 segment
(veth peers, bridge ports), the next hop's owner, forwarding, the way back --
and names the first missing ingredient together with the command that adds
it. Everything is read over netlink and /proc/sys of the lab's namespaces.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from ..core.step import ip_cmd, ns_cmd

NUD_INCOMPLETE, NUD_FAILED = 0x01, 0x20
RTN_LOCAL = 2  # a route to an address of this namespace itself (rtnetlink.h)

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


@dataclass
class Trip:
    """One packet's way from ``src`` to ``dst``, as far as the checks have looked (route, egress, next hop)."""

    snap: Snapshot
    src: "Namespace"
    dst: str
    depth: int

    @functools.cached_property
    def route(self) -> dict | None:
        return self.src.route_get(self.dst)

    @property
    def egress(self) -> tuple[str, int]:
        return (self.src.name, self.route["dev_index"])

    @property
    def egress_state(self) -> "LinkState":
        return self.snap.links[self.egress]

    @property
    def hop(self) -> str:
        return self.route["gateway"] or self.dst

    @property
    def role(self) -> str:
        return "gateway" if self.route["gateway"] else "destination"

    @property
    def owner(self) -> tuple[str, int] | None:
        return self.snap.owner(self.hop)


#: a check found nothing wrong and nothing further needs a look (the destination is the source itself)
ARRIVED = ""


def _dst_is_ipv4(t: Trip) -> str | None:
    try:
        ipaddress.IPv4Address(t.dst)
    except ValueError:
        return f"{t.dst!r} is not an IPv4 address."
    return None


def _source_has_an_address(t: Trip) -> str | None:
    mine = [k for k in t.snap.addrs if k[0] == t.src.name and t.snap.links[k].name != "lo"]
    if not mine:
        return (f"{t.src.short} has no IPv4 address: the step that assigns one "
                f"(`{ip_cmd(t.src.name, 'addr', 'add', 'ADDR/LEN', 'dev', 'IF')}`) is missing.")
    for key in mine:
        st = t.snap.links[key]
        if not st.up:
            return f"link {st.name} in {t.src.short} is down: bring it up (`{ip_cmd(t.src.name, 'link', 'set', st.name, 'up')}`)."
    return None


def _a_route_leads_there(t: Trip) -> str | None:
    if t.route is None:
        return (f"{t.src.short} has no route to {t.dst}: it is outside every subnet of {t.src.short} and there is no "
                f"default route (`{ip_cmd(t.src.name, 'route', 'add', 'default', 'via', 'GATEWAY')}`).")
    return ARRIVED if t.route["type"] == RTN_LOCAL else None


def _egress_has_carrier(t: Trip) -> str | None:
    est = t.egress_state
    if est.lower_up:
        return None
    peer = t.snap.peer(t.egress)
    if peer and peer in t.snap.links:
        pst = t.snap.links[peer]
        return (f"{est.name} in {t.src.short} has no carrier because its veth peer {pst.name} in {peer[0]} is down "
                f"(`{ip_cmd(peer[0], 'link', 'set', pst.name, 'up')}`).")
    return f"{est.name} in {t.src.short} has no carrier (its other end is down or missing)."


def _next_hop_exists(t: Trip) -> str | None:
    if t.owner is None:
        return (f"no namespace of the lab holds the {t.role} address {t.hop}: the step that assigns it is missing"
                + (" (the gateway address usually lives on the bridge)." if t.route["gateway"] else "."))
    return None


def _l2_path_to_next_hop(t: Trip) -> str | None:
    reach, blocked = t.snap.segment(t.egress)
    if t.owner in reach:
        return None
    if t.owner in blocked:
        return f"{t.src.short} and {t.owner[0]} share no working L2 path: {blocked[t.owner]}."
    for key in blocked:  # the first blocker met on the way out from the source
        return f"the L2 path from {t.egress_state.name} in {t.src.short} to the {t.role} {t.hop} is cut: {blocked[key]}."
    return _missing_l2_edge(t.snap, t.egress, t.owner, t.hop, t.role)


def _tunnel_knows_next_hop(t: Trip) -> str | None:
    vtep = t.snap.vteps.get(t.egress)
    if not (vtep and not vtep["learning"] and t.route["gateway"]):
        return None
    # no learning, no flooding: ARP for the next hop cannot be answered, the entry must be there
    est = t.egress_state
    usable = {ip for ip, _, state in t.src.neighbours(t.src.link(est.name)) if state & ~(NUD_INCOMPLETE | NUD_FAILED)}
    if t.hop in usable:
        return None
    return (f"{est.name} in {t.src.short} has no permanent ARP entry for the next hop {t.hop} "
            f"(`{ip_cmd(t.src.name, 'neigh', 'add', t.hop, 'lladdr', t.snap.links[t.owner].mac, 'dev', est.name, 'nud', 'permanent')}`).")


def _gateway_forwards_onward(t: Trip) -> str | None:
    if not t.route["gateway"] or t.owner[0] == t.src.name:
        return None
    router = t.snap.ns(t.owner[0])
    target = t.snap.owner(t.dst)
    if target is not None and target[0] == router.name:
        return None
    if router.sysctl("net.ipv4.ip_forward") != "1":
        return (f"{router.short} is the gateway but does not forward packets (ip_forward is 0): "
                f"`{ns_cmd(router.name, ['sysctl', '-w', 'net.ipv4.ip_forward=1'])}`.")
    if t.depth < 3:
        onward = _diagnose(t.snap, router, t.dst, t.depth + 1)
        if onward:
            return f"past the gateway {router.short}: {onward}"
    return None


def _reply_comes_back(t: Trip) -> str | None:
    target = t.snap.owner(t.dst)
    if not target or target[0] == t.src.name:
        return None
    back = t.snap.ns(target[0])
    src_ip = t.route["src"]
    if not src_ip or back.route_get(src_ip) is not None:
        return None
    reason = (f"{back.short} has no route back to {src_ip}: the reply cannot return "
              f"(`{ip_cmd(back.name, 'route', 'add', 'default', 'via', 'GATEWAY')}`)")
    router = t.snap.owner(t.route["gateway"]) if t.route["gateway"] else None
    if router and router[0] != back.name and not t.snap.source_nat(router[0]):
        reason += (f"; for a private source, the gateway {router[0]} should MASQUERADE it instead "
                   f"(`{ns_cmd(router[0], ['iptables', '-t', 'nat', '-A', 'POSTROUTING', '-s', 'SUBNET', '-o', 'UPLINK', '-j', 'MASQUERADE'])}`)")
    return reason + "."


#: the checklist, in the order a packet meets the steps: the first that finds something wrong speaks
CHECKS = (_dst_is_ipv4, _source_has_an_address, _a_route_leads_there, _egress_has_carrier, _next_hop_exists,
          _l2_path_to_next_hop, _tunnel_knows_next_hop, _gateway_forwards_onward, _reply_comes_back)


def _diagnose(snap: Snapshot, src: "Namespace", dst: str, depth: int) -> str | None:
    trip = Trip(snap, src, dst, depth)
    for check in CHECKS:
        found = check(trip)
        if found is not None:
            return found or None
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
