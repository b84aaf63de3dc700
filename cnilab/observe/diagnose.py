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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.step import ip_cmd, ns_cmd
from .snapshot import Snapshot

NUD_INCOMPLETE, NUD_FAILED = 0x01, 0x20
RTN_LOCAL = 2  # a route to an address of this namespace itself (rtnetlink.h)

if TYPE_CHECKING:
    from ..core.netns import LinkState, Namespace


def why_unreachable(src: "Namespace", dst: str, *, _depth: int = 0) -> str:
    """One or two sentences: the likely missing step on the way from ``src`` to ``dst``."""
    snap = Snapshot.of(list(src.lab.namespaces.values()))
    return "Diagnosis: " + (_diagnose(snap, src, dst, _depth) or
                            "addresses, links, bridge ports, routes and forwarding all look right; "
                            f"capture to see where packets stop (`{ns_cmd(src.name, ['tcpdump', '-ni', 'any'])}`).")


def where_is(lab: Any, ip: str) -> str:
    """Where address ``ip`` sits in ``lab``, said for a student ("on h-pod1 in host, a port of bridge br0 ...")."""
    snap = Snapshot.of(list(lab.namespaces.values()))
    key = snap.owner(ip)
    if key is None:
        return "nowhere in the lab"
    st = snap.links[key]
    text = f"on {st.name} in {key[0]}"
    bridge = snap.links.get((key[0], st.master)) if st.master else None
    if bridge is not None:
        text += (f", a port of bridge {bridge.name}: an address on a bridge port never answers, put it on "
                 f"{bridge.name} itself")
    return text


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
        links = [st.name for k, st in t.snap.links.items() if k[0] == t.src.name and st.name != "lo"]
        if not links:
            return f"{t.src.short} has no link but lo{_stray_veths(t.snap, t.src)}"
        return (f"{t.src.short} has no IPv4 address on {', '.join(links)}: the step that assigns one "
                f"(`{ip_cmd(t.src.name, 'addr', 'add', 'ADDR/LEN', 'dev', links[0])}`) is missing"
                f"{_held_elsewhere(t.snap, t.src, links)}.")
    for key in mine:
        st = t.snap.links[key]
        if not st.up:
            return f"link {st.name} in {t.src.short} is down: bring it up (`{ip_cmd(t.src.name, 'link', 'set', st.name, 'up')}`)."
    return None


def _stray_veths(snap: Snapshot, ns: "Namespace") -> str:
    """A veth pair whose two ends share a namespace: the usual reason a pod has no link (its end never moved)."""
    for key, st in snap.links.items():
        peer = snap.peer(key)
        if st.kind == "veth" and peer and peer[0] == key[0] and peer in snap.links and key[0] != ns.name:
            other = snap.links[peer]
            return (f": the veth end {st.name} sits in {key[0]} beside its own peer {other.name}, so nothing reaches "
                    f"{ns.short}; create the pair with one end in {ns.short} "
                    f"(`{ip_cmd(key[0], 'link', 'add', other.name, 'type', 'veth', 'peer', 'name', st.name, 'netns', ns.name)}`).")
    return f": a veth end for it is missing (`{ip_cmd(None, 'link', 'add', 'A', 'type', 'veth', 'peer', 'name', 'B', 'netns', ns.name)}`)."


def _held_elsewhere(snap: Snapshot, ns: "Namespace", links: list[str]) -> str:
    """Where the source's address went, when its veth peer holds one: the pod's address put on the host end."""
    for key, st in snap.links.items():
        if key[0] == ns.name and st.name in links:
            peer = snap.peer(key)
            if peer and snap.cidrs.get(peer):
                return (f" -- the other end of {st.name}, {snap.links[peer].name} in {peer[0]}, holds "
                        f"{', '.join(snap.cidrs[peer])}: an address belongs on the end inside the namespace that uses it")
    return ""


def _a_route_leads_there(t: Trip) -> str | None:
    if t.route is None:
        mine = [(t.snap.links[k].name, c) for k, cs in t.snap.cidrs.items() if k[0] == t.src.name
                for c in cs if t.snap.links[k].name != "lo"]
        held = ", ".join(f"{c} on {name}" for name, c in mine)
        text = (f"{t.src.short} has no route to {t.dst}: it is outside every subnet of {t.src.short} (its addresses: "
                f"{held or 'none'}) and there is no default route "
                f"(`{ip_cmd(t.src.name, 'route', 'add', 'default', 'via', 'GATEWAY')}`)")
        if any(c.endswith("/32") for _, c in mine):
            text += "; a /32 address is a subnet of one: give it the subnet's prefix length (e.g. /24)"
        return text + "."
    if t.route["type"] != RTN_LOCAL:
        return None
    lo = next((st for k, st in t.snap.links.items() if k[0] == t.src.name and st.name == "lo"), None)
    if lo is not None and not lo.up:
        return (f"{t.dst} is an address of {t.src.short} itself, and its lo is down: a namespace reaches its own "
                f"addresses through lo (`{ip_cmd(t.src.name, 'link', 'set', 'lo', 'up')}`).")
    return ARRIVED


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


def _next_hop_is_not_a_bridge_port(t: Trip) -> str | None:
    st = t.snap.links[t.owner]
    bridge = t.snap.links.get((t.owner[0], st.master)) if st.master else None
    if bridge is None or bridge.kind != "bridge":
        return None
    return (f"the {t.role} address {t.hop} sits on {st.name}, a port of bridge {bridge.name} in {t.owner[0]}: a bridge "
            f"hands every frame of its ports to the bridge, so an address on a port never answers -- put it on "
            f"{bridge.name} (`{ip_cmd(t.owner[0], 'addr', 'del', t.hop, 'dev', st.name)}` and "
            f"`{ip_cmd(t.owner[0], 'addr', 'add', t.hop + '/LEN', 'dev', bridge.name)}`).")


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
    usable = {ip: mac for ip, mac, state in t.src.neighbours(t.src.link(est.name)) if state & ~(NUD_INCOMPLETE | NUD_FAILED)}
    right = t.snap.links[t.owner].mac
    add = ip_cmd(t.src.name, 'neigh', 'replace', t.hop, 'lladdr', right, 'dev', est.name, 'nud', 'permanent')
    if t.hop not in usable:
        return f"{est.name} in {t.src.short} has no permanent ARP entry for the next hop {t.hop} (`{add}`)."
    if usable[t.hop] != right:
        return (f"the permanent ARP entry for the next hop {t.hop} on {est.name} in {t.src.short} says {usable[t.hop]}, "
                f"but the VTEP holding {t.hop} ({t.snap.label(t.owner)}) has MAC {right} (`{add}`).")
    return None


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
    if not src_ip:
        return None
    if back.route_get(src_ip) is not None:  # the reply has a first hop: follow it (a route missing one way only)
        onward = _diagnose(t.snap, back, src_ip, t.depth + 1) if t.depth < 2 else None
        return f"the reply from {back.short} to {src_ip} cannot return: {onward}" if onward else None
    no_way_back = f"{back.short} has no route back to {src_ip}"
    router = t.snap.owner(t.route["gateway"]) if t.route["gateway"] else None
    if router and router[0] != back.name:
        nat = _masquerade_misses(t.snap, router[0], src_ip, t.dst)
        if nat:
            return f"{no_way_back}, a private address: {nat}"
    return f"{no_way_back}: the reply cannot return (`{ip_cmd(back.name, 'route', 'add', 'default', 'via', 'GATEWAY')}`)."


def _masquerade_misses(snap: Snapshot, name: str, src_ip: str, dst: str) -> str | None:
    """Why no source-NAT rule of router ``name`` rewrites ``src_ip -> dst``; None when one does."""
    router = snap.ns(name)
    out = router.route_get(dst)
    uplink = snap.links[(name, out["dev_index"])].name if out and (name, out["dev_index"]) in snap.links else "UPLINK"
    add = ns_cmd(name, ["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "SUBNET", "-o", uplink, "-j", "MASQUERADE"])
    rules = snap.source_nat(name)
    if not rules:
        return f"the gateway {router.short} should MASQUERADE it on the way out (`{add}`)."
    links = {st.name for key, st in snap.links.items() if key[0] == name}
    misses = []
    for iface, source in rules:
        if iface != "any" and iface not in links:
            misses.append(f"it matches `-o {iface}`, and {router.short} has no link named {iface} "
                          f"(packets to {dst} leave through its uplink {uplink})")
        elif iface != "any" and iface != uplink:
            misses.append(f"it matches `-o {iface}`, but packets to {dst} leave {router.short} through its uplink {uplink}")
        elif source != "any" and ipaddress.IPv4Address(src_ip) not in ipaddress.IPv4Network(source, strict=False):
            misses.append(f"it matches `-s {source}`, which does not contain the source {src_ip}")
        else:
            return None  # a rule applies: the reason lies elsewhere
    return (f"the MASQUERADE rule of {router.short} does not apply to it -- " + "; ".join(misses)
            + f" -- so {dst} sees the private source and cannot answer (`{add}`, with the pods' subnet).")


#: the checklist, in the order a packet meets the steps: the first that finds something wrong speaks
CHECKS = (_dst_is_ipv4, _source_has_an_address, _a_route_leads_there, _egress_has_carrier, _next_hop_exists,
          _next_hop_is_not_a_bridge_port, _l2_path_to_next_hop, _tunnel_knows_next_hop, _gateway_forwards_onward, _reply_comes_back)


def _diagnose(snap: Snapshot, src: "Namespace", dst: str, depth: int) -> str | None:
    trip = Trip(snap, src, dst, depth)
    for check in CHECKS:
        found = check(trip)
        if found is not None:
            return found or None
    return None


def _tunnel_mismatch(snap: Snapshot, egress: tuple[str, int], owner: tuple[str, int]) -> str | None:
    """Two VXLAN devices that should be one overlay but disagree, or a bridged VXLAN device left off its bridge."""
    near, far = snap.segment(egress)[0], snap.segment(owner)[0]
    for key, vtep in snap.vteps.items():  # a tunnel end that claims another machine's underlay address
        own = [ip for k, ips in snap.addrs.items() if k[0] == key[0] for ip in ips]
        if vtep["local"] and vtep["local"] not in own and key[0] in {k[0] for k in near | far}:
            return (f"VXLAN device {snap.label(key)} has local {vtep['local']}, which is not an address of {key[0]} "
                    f"(its addresses: {', '.join(ip for ip in own if ip != '127.0.0.1') or 'none'}): local must be the "
                    "node's own underlay address.")
    for a in (k for k in snap.vteps if k in near):
        for b in (k for k in snap.vteps if k in far):
            for field, said in (("vni", "VNI"), ("port", "UDP port")):
                if snap.vteps[a][field] != snap.vteps[b][field]:
                    return (f"VXLAN device {snap.label(a)} uses {said} {snap.vteps[a][field]}, but {snap.label(b)} uses "
                            f"{snap.vteps[b][field]}: the devices of one overlay must agree (one VNI, UDP port 4789).")
    sides = {k[0] for k in near | far}
    for key, vtep in snap.vteps.items():
        st, bridges = snap.links[key], snap.bridges(key[0])
        if key[0] in sides and vtep["learning"] and not st.master and bridges:
            return (f"VXLAN device {st.name} in {key[0]} is not a port of bridge {bridges[0].name}, so no frame of the "
                    f"pods reaches the tunnel (`{ip_cmd(key[0], 'link', 'set', st.name, 'master', bridges[0].name)}`).")
    return None


def _missing_l2_edge(snap: Snapshot, egress: tuple[str, int], owner: tuple[str, int], hop: str, role: str) -> str:
    """No path even ignoring link states: a tunnel that disagrees, or the veth end that should be a bridge port."""
    mismatch = _tunnel_mismatch(snap, egress, owner)
    if mismatch:
        return mismatch
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
