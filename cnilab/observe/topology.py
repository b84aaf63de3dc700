"""The live lab as a graph, read from kernel state: what ``cnilab show`` draws.

Namespaces are boxes, interfaces are the nodes inside them, and the edges
are what joins them in the kernel: the two ends of a veth, a bridge and its
ports, two VXLAN devices whose forwarding tables point at each other. A NAT
rule is a mark on the interface it leaves through. Nothing comes from the
recipes: a lab built by hand is drawn the same way, so the picture is a
check of what was built, not a copy of what was meant.

Names are shown without the run prefix, so the pictures of two runs of the
same stage are the same picture.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .snapshot import Snapshot
from ..core.errors import LabError
from ..core.names import PREFIX_RE

if TYPE_CHECKING:
    from ..core.lab import Lab

Key = tuple[str, str]  # (namespace, interface), both without the run prefix

KIND_STYLE = {  # graphviz node attributes per link kind
    "bridge": {"shape": "box3d", "style": "filled", "fillcolor": "#cfe2ff"},
    "vxlan": {"shape": "hexagon", "style": "filled", "fillcolor": "#ffe5b4"},
    "veth": {"shape": "box", "style": "rounded,filled", "fillcolor": "#ffffff"},
}
EDGE_STYLE = {
    "veth": {"penwidth": "2"},
    "port": {"style": "dashed", "color": "#4a6fa5"},
    "vxlan": {"style": "bold,dashed", "color": "#e07b00", "fontcolor": "#e07b00", "constraint": "false"},
}


@dataclass(frozen=True)
class Iface:
    ns: str
    name: str
    kind: str
    up: bool
    addrs: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()   # e.g. "VXLAN vni 1, UDP 4789", "NAT: MASQUERADE 10.0.3.0/24"

    @property
    def key(self) -> Key:
        return (self.ns, self.name)


@dataclass(frozen=True)
class Edge:
    kind: str        # veth | port | vxlan
    a: Key
    b: Key
    label: str = ""


@dataclass
class Topology:
    prefix: str
    namespaces: list[str] = field(default_factory=list)
    ifaces: dict[Key, Iface] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    routes: dict[str, list[str]] = field(default_factory=dict)  # per namespace, as `ip route` prints them

    # -- reading the kernel -------------------------------------------------------
    @classmethod
    def of(cls, lab: "Lab") -> "Topology":
        snap = Snapshot.of(list(lab))
        short = lambda name: name.removeprefix(lab.prefix)  # noqa: E731
        topo = cls(lab.prefix, [short(ns.name) for ns in snap.namespaces])
        raw = {ns.name: ns.routes() for ns in snap.namespaces}
        for ns in snap.namespaces:
            topo.routes[short(ns.name)] = [
                " ".join([r["dst"], *(["via", r["gateway"]] if r["gateway"] else []), *(["dev", short(r["dev"])] if r["dev"] else [])])
                for r in raw[ns.name]]
        nat = {ns.name: _nat_or_none(snap, ns.name) for ns in snap.namespaces}
        for (ns_name, index), st in snap.links.items():
            cidrs = tuple(c for c in snap.cidrs.get((ns_name, index), []) if not c.startswith("127."))
            alone = sum(1 for k in snap.links if k[0] == ns_name) == 1
            if st.name == "lo" and not cidrs and not alone:
                continue  # every namespace has lo: draw it only when it is all there is, or holds an address
            notes = []
            if (ns_name, index) in snap.vteps:
                v = snap.vteps[(ns_name, index)]
                notes.append(f"VXLAN vni {v['vni']}, UDP {v['port']}, local {v['local']}")
            notes += [f"NAT: MASQUERADE {src}" for out, src in nat[ns_name] if out == st.name]
            iface = Iface(short(ns_name), short(st.name), st.kind or ("loopback" if st.name == "lo" else ""),
                          st.up, cidrs, tuple(notes))
            topo.ifaces[iface.key] = iface
        keyof = lambda k: (short(k[0]), short(snap.links[k].name))  # noqa: E731
        seen: set[frozenset] = set()
        for k, st in snap.links.items():
            peer = snap.peer(k)
            if peer in snap.links and frozenset((k, peer)) not in seen:
                seen.add(frozenset((k, peer)))
                topo.edges.append(Edge("veth", keyof(k), keyof(peer)))
            if st.master and (k[0], st.master) in snap.links:
                topo.edges.append(Edge("port", keyof(k), keyof((k[0], st.master))))
        for k, v in snap.vteps.items():
            for other, w in snap.vteps.items():
                pair = frozenset((k, other))
                if other == k or pair in seen or v["vni"] != w["vni"]:
                    continue
                if any(dst == w["local"] for _, dst in v["fdb"]) or any(dst == v["local"] for _, dst in w["fdb"]):
                    seen.add(pair)
                    leases = [*_leases(raw, snap, k, other), *_leases(raw, snap, other, k)]
                    topo.edges.append(Edge("vxlan", keyof(k), keyof(other), f"VXLAN {v['vni']} / UDP {v['port']}"
                                           + "".join(f"\n{short(owner)}: {subnet}" for owner, subnet in leases)))
        return topo

    # -- questions a test asks ---------------------------------------------------
    def has(self, kind: str, a: Key, b: Key) -> bool:
        """Is there an edge of ``kind`` between ``a`` and ``b`` (either way round)?"""
        return any(e.kind == kind and {e.a, e.b} == {a, b} for e in self.edges)

    def edges_of(self, kind: str) -> list[Edge]:
        return [e for e in self.edges if e.kind == kind]

    # -- drawing ----------------------------------------------------------------
    def dot(self, title: str = ""):
        """The picture as a ``graphviz.Graph``: a box per namespace, an edge per kernel connection."""
        import graphviz

        g = graphviz.Graph("cnilab", graph_attr={"rankdir": "LR", "fontname": "Helvetica", "label": title,
                                                 "labelloc": "t", "newrank": "true"},
                           node_attr={"fontname": "Helvetica", "fontsize": "10"},
                           edge_attr={"fontname": "Helvetica", "fontsize": "9"})
        for ns in self.namespaces:
            with g.subgraph(name=f"cluster_{ns}") as box:
                box.attr(label=ns, style="rounded", color="#888888")
                members = [i for i in self.ifaces.values() if i.ns == ns]
                if not members:
                    box.node(_id((ns, "")), label="(empty)", shape="plaintext")
                for i in members:
                    style = dict(KIND_STYLE.get(i.kind, {"shape": "box"}))
                    if any(n.startswith("NAT") for n in i.notes):
                        style.update(style="filled", fillcolor="#ffd6d6")
                    if not i.up:
                        style["color"] = "#aaaaaa"
                    box.node(_id(i.key), label=_label(i), **style)
        for e in self.edges:
            g.edge(_id(e.a), _id(e.b), label=e.label, **EDGE_STYLE[e.kind])
        return g

    def render(self, out_dir: Path, stem: str, title: str = "") -> list[Path]:
        """Write ``stem.svg`` and ``stem.png`` into ``out_dir``; return their paths."""
        import graphviz  # its import is paid by pictures only

        out_dir.mkdir(parents=True, exist_ok=True)
        g = self.dot(title)
        paths = []
        for fmt in ("svg", "png"):
            try:
                g.render(outfile=str(out_dir / f"{stem}.{fmt}"), format=fmt, cleanup=True)
            except graphviz.ExecutableNotFound:
                raise LabError("Drawing needs graphviz's `dot`: install it with `apt-get install -y graphviz`.") from None
            paths.append(out_dir / f"{stem}.{fmt}")
        gv = out_dir / stem  # graphviz leaves the DOT source beside the outputs
        if gv.exists():
            gv.unlink()
        return paths

    def signature(self, ns: str) -> tuple:
        """Everything shown of one namespace: a demo redraws only the namespaces whose signature changed."""
        return (tuple(i for i in self.ifaces.values() if i.ns == ns), tuple(self.routes.get(ns, ())),
                tuple(e for e in self.edges if ns in (e.a[0], e.b[0])))

    def tree(self, title: str = "", only: set[str] | None = None):
        """The same picture as a ``rich`` tree for the terminal (``only``: these namespaces)."""
        from rich.tree import Tree

        root = Tree(f"[bold]{title or 'lab ' + self.prefix}")
        joined: dict[Key, list[str]] = {}
        for e in self.edges:
            for here, there in ((e.a, e.b), (e.b, e.a)):
                if e.kind == "port" and here == e.b:
                    continue  # a bridge lists its ports below; the port names its bridge
                what = {"veth": "veth peer", "port": "port of", "vxlan": "VXLAN to"}[e.kind]
                where = there[1] if there[0] == here[0] else f"{there[0]}/{there[1]}"
                lease = [line.split(": ", 1)[1] for line in e.label.split("\n")[1:] if line.startswith(f"{there[0]}: ")]
                where += f" (lease {', '.join(lease)})" if lease else ""
                joined.setdefault(here, []).append(f"[dim]{what}[/] {where}")
        for ns in self.namespaces:
            if only is not None and ns not in only:
                continue
            branch = root.add(f"[bold cyan]{ns}[/]")
            for i in sorted((i for i in self.ifaces.values() if i.ns == ns), key=lambda i: (i.kind != "bridge", i.name)):
                state = "" if i.up else " [red]down[/]"
                text = f"[bold]{i.name}[/] [dim]{i.kind}[/]{state} {' '.join(i.addrs)}"
                extra = joined.get(i.key, []) + [f"[yellow]{n}[/]" for n in i.notes]
                branch.add(text + ("  " + ", ".join(extra) if extra else ""))
            if self.routes.get(ns):
                branch.add("[dim]routes:[/] " + "; ".join(self.routes[ns]))
        return root


def _leases(raw: dict, snap: Snapshot, via: Key, to: Key) -> list[tuple[str, str]]:
    """The pod subnets ``via``'s namespace routes through its VTEP to ``to``'s VTEP address: ``to``'s lease
    (stage 08), as (the namespace that holds it, the subnet)."""
    addrs = {c.split("/")[0] for c in snap.cidrs.get(to, [])}
    name = snap.links[via].name
    return [(to[0], r["dst"]) for r in raw.get(via[0], []) if r["dev"] == name and r["gateway"] in addrs]


def _id(key: Key) -> str:
    return f"{key[0]}/{key[1]}"


def _label(i: Iface) -> str:
    lines = [i.name + ("" if i.up else " (down)"), *i.addrs, *i.notes]
    if i.kind and i.kind not in ("veth",):
        lines.insert(1, i.kind)
    return "\n".join(lines)


def _nat_or_none(snap: Snapshot, name: str) -> list[tuple[str, str]]:
    """A picture is still worth drawing where the NAT rules cannot be read (no iptables): without NAT marks."""
    try:
        return snap.source_nat(name)
    except (LabError, OSError):
        return []


def lab_prefixes() -> list[str]:
    """Prefixes of the labs that are up now (their namespaces exist)."""
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return []
    return sorted({m.group(0) for m in map(PREFIX_RE.match, names) if m})


def pick_prefix(prefix: str | None) -> str:
    """The lab to look at: ``prefix``, or the only one that is up; else a one-line error saying what to do."""
    up = lab_prefixes()
    if prefix:
        prefix = prefix if prefix.endswith("-") else prefix + "-"
        if prefix not in up:
            raise LabError(f"No lab {prefix} is up (up: {', '.join(up) or 'none'}): pass a prefix printed by --keep.")
        return prefix
    if not up:
        raise LabError("No lab is up: keep one with `pytest -k stage03 --keep` or `cnilab demo 3 --keep`, then run this again.")
    if len(up) > 1:
        raise LabError(f"{len(up)} labs are up ({', '.join(up)}): choose one with --prefix.")
    return up[0]

