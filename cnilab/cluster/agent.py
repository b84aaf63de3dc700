"""The node agent (``cnilab agent``): one per node, the way flannel's flanneld works.

It leases a pod subnet for its node from the store, makes the node's VTEP, writes the node's CNI
conflist for that subnet (atomically, as a DaemonSet's installer does) and then keeps the node's
routed VXLAN equal to the store's leases: per peer one route, one permanent ARP entry and one
permanent FDB entry, nothing for a lease that went. How each of those is made is not written here:
the agent runs the stage recipes' steps (``Steps``: stage 06's ``make_vtep`` and ``route_to``, stage
08's ``forget_peer``, ``masquerade_leaving`` and ``pod_conflist``), so the lab, its tests, its demo and
a student's workbook all run the same code.

It reconciles: it compares what the kernel has with what the leases want and changes only the
difference, so a restarted agent changes nothing that is already right (no route flaps), and a
store that stops answering changes nothing at all (the datapath keeps working, the agent says so).
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..core.errors import LabError, Todo
from ..core.step import is_gone
from .leases import Lease
from .probe import arp_answers
from .store import Store, StoreDown

RESYNC = 1.0        # seconds between full looks at the store, events or not


@dataclass
class Steps:
    """The recipe steps the agent runs (see the module docstring)."""

    make_vtep: Callable[..., Any]
    route_to: Callable[..., Any]
    forget_peer: Callable[..., Any]
    masquerade_leaving: Callable[..., Any]
    pod_conflist: Callable[..., dict]


@dataclass
class Config:
    name: str                       # the node's name in the cluster
    cidr: str = "10.244.0.0/16"
    vni: int = 1
    port: int = 4789
    conflist: Path | None = None    # where the runtime reads its network config (conf_dir/10-cnilab.conflist)
    ipam_dir: Path | None = None
    underlay: str = "eth0"


class LocalNode:
    """This node as stage 06's steps see a node: ``ns``, ``ip`` (underlay), ``subnet``, ``vtep``."""

    def __init__(self, ns: Any, ip: str):
        self.ns, self.ip = ns, ip
        self.subnet: str | None = None
        self.vtep: Any = None

    @property
    def vtep_ip(self) -> str:
        return str(ipaddress.IPv4Network(self.subnet).network_address)

    @property
    def vtep_mac(self) -> str:
        return self.vtep.state().mac


class Agent:
    def __init__(self, config: Config, store: Store, steps: Steps, ns: Any, log: Callable[[str], None] = print):
        self.config, self.store, self.steps = config, store, steps
        self.node = LocalNode(ns, ns.ip(config.underlay))
        self._log = log
        self._said: set[str] = set()
        self._answered: set[tuple[str, str]] = set()
        self.wake, self.stop = threading.Event(), threading.Event()
        self.store_down: str | None = None

    # -- saying things ----------------------------------------------------------
    def say(self, text: str) -> None:
        self._log(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {self.config.name}: {text}")

    def say_once(self, key: str, text: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.say(text)

    # -- start ------------------------------------------------------------------
    def start(self) -> None:
        """Lease a subnet (or take back this node's lease after a restart), VTEP, NAT, conflist."""
        mtu = self.node.ns.link(self.config.underlay).state().mtu - 50
        vtep_name = self.node.ns.lab.name("flannel1")
        mine = self.store.mine(self.config.name)
        if mine is not None:
            self.node.subnet = mine.subnet
            self.node.vtep = self.node.ns.link(vtep_name)
            if not self.node.vtep.exists():
                self.node.vtep = self.steps.make_vtep(self.node, vni=self.config.vni, port=self.config.port, mtu=mtu)
            if self.node.vtep_mac != mine.vtep_mac or self.node.ip != mine.ip:
                self.store.update(self._lease())
            self.say(f"kept its lease {mine.subnet} (restart: nothing to change)")
        else:
            self._claim(mtu, vtep_name)
        if not any(self.node.subnet in r and "MASQUERADE" in r for r in self.node.ns.iptables_rules("nat")):
            self.steps.masquerade_leaving(self.node, self.config.cidr)
        self._write_conflist(mtu)

    def _lease(self) -> Lease:
        return Lease(self.node.subnet, self.node.ip, self.node.vtep_mac, self.config.name)

    def _claim(self, mtu: int, vtep_name: str) -> None:
        """Try the free subnets in order -- first the one this node's VTEP already has (a lease that expired
        while the agent was away), so nothing here changes; a transaction lost to another node means: the next one."""
        vtep = self.node.ns.link(vtep_name)
        had = [str(ipaddress.IPv4Network(a, strict=False).supernet(new_prefix=getattr(self.store, "plen", 24))) for a in vtep.addresses()] if vtep.exists() else []
        free = self.store.candidates(self.config.name)
        for subnet in [s for s in had if s in free] + [s for s in free if s not in had]:
            self.node.subnet = subnet
            if vtep.exists() and subnet in had:
                self.node.vtep = vtep
            else:
                if vtep.exists():  # its address is another subnet's
                    vtep.delete()
                self.node.vtep = self.steps.make_vtep(self.node, vni=self.config.vni, port=self.config.port, mtu=mtu)
            if self.store.claim(self._lease()):
                self.say(f"leased {subnet} (VTEP {self.node.vtep_ip} {self.node.vtep_mac} at {self.node.ip})")
                return
            self.say(f"{subnet} was taken by another node just now: trying the next one")
        raise LabError(f"{self.config.name} found no subnet to lease: {self.store.no_subnet()}.")

    def _write_conflist(self, mtu: int) -> None:
        if self.config.conflist is None:
            return
        text = json.dumps(self.steps.pod_conflist(self.node, mtu, str(self.config.ipam_dir)), indent=1, sort_keys=True)
        path = Path(self.config.conflist)
        if path.exists() and path.read_text() == text:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)  # the runtime sees the old file or the new one, never half of one
        self.say(f"wrote {path} (pods get addresses from {self.node.subnet})")

    # -- reconcile ----------------------------------------------------------------
    def installed(self) -> dict[str, Lease]:
        """What the kernel has on the VTEP, as leases: subnet -> (gateway, its ARP MAC, that MAC's VTEP)."""
        ns, vtep = self.node.ns, self.node.vtep
        neigh = {ip: mac for ip, mac, state in ns.neighbours(vtep) if state & 0x80}  # NUD_PERMANENT
        fdb = {mac: dst for mac, dst in ns.fdb(vtep) if dst}
        found = {}
        for r in ns.routes():
            if r["dev"] == vtep.name and r["gateway"]:
                mac = neigh.pop(r["gateway"], None)
                found[r["dst"]] = Lease(r["dst"], fdb.pop(mac, None) if mac else None, mac)
        for ip, mac in neigh.items():    # entries no route uses: leftovers of a peer half removed
            found[f"arp {ip}"] = Lease(f"{ip}/32", fdb.pop(mac, None), mac)
        for mac, dst in fdb.items():
            found[f"fdb {mac}"] = Lease("0.0.0.0/32", dst, mac)
        return found

    def wanted(self) -> dict[str, Lease]:
        leases, bad = self.store.leases()
        for raw_key, reason in bad:
            self.say_once(f"bad {raw_key} {reason}", f"ignored {raw_key}: {reason}")
        peers: dict[str, Lease] = {}
        seen: dict[str, str] = {}
        for lease in sorted(leases, key=lambda l: ipaddress.IPv4Network(l.subnet)):
            if lease.subnet == self.node.subnet or lease.node == self.config.name:
                continue
            why = self.unusable(lease, seen)
            if why:
                self.say_once(f"skip {lease} {why}", f"ignored the lease of {lease.node or '?'} for {lease.subnet}: {why}")
                continue
            seen[lease.ip], seen[lease.vtep_mac] = lease.subnet, lease.subnet
            peers[lease.subnet] = lease
        return peers

    def unusable(self, lease: Lease, seen: dict[str, str]) -> str | None:
        """Why a well-formed lease must still not be applied, or None."""
        if ipaddress.IPv4Network(lease.subnet).overlaps(ipaddress.IPv4Network(self.node.subnet)):
            return f"it overlaps this node's subnet {self.node.subnet}"
        if lease.ip == self.node.ip:
            return "its VTEP address is this node's own"
        for value in (lease.ip, lease.vtep_mac):
            if value in seen:
                return f"{value} is already the VTEP of {seen[value]}"
        if (lease.ip, lease.vtep_mac) in self._answered:
            return None
        route = self.node.ns.route_get(lease.ip)
        underlay = self.node.ns.link(self.config.underlay)
        if route is None or route["gateway"] or route["dev_index"] != underlay.index:
            return f"its VTEP address {lease.ip} is not on this node's underlay ({self.config.underlay})"
        if not arp_answers(underlay.name, lease.ip):
            return f"its VTEP {lease.ip} does not answer on the underlay"
        self._answered.add((lease.ip, lease.vtep_mac))
        return None

    def reconcile(self) -> int:
        """Make the kernel's peer entries equal to the leases; return how many peers changed."""
        want = self.wanted()
        have = self.installed()
        changed = 0
        for subnet, entry in have.items():
            if want.get(subnet) != entry:
                self._forget(subnet, entry)
                changed += 1
        for subnet, lease in want.items():
            if have.get(subnet) != lease:
                self.steps.route_to(self.node, lease)
                self.say(f"{lease.node} leased {subnet} -> route via {lease.vtep_ip}, ARP {lease.vtep_mac}, FDB to {lease.ip}")
                changed += 1
        self._answered &= {(l.ip, l.vtep_mac) for l in want.values()}
        self.node.ns.lab.registry.clear()  # a long-lived process: nothing of this is undone at exit
        return changed

    def _forget(self, subnet: str, entry: Lease) -> None:
        try:
            self.steps.forget_peer(self.node, entry)
        except Exception as exc:  # noqa: BLE001 -- said, and tried again at the next resync
            if not is_gone(exc):
                self.say(f"could not remove the entries for {subnet}: {exc}")
                return
        self.say(f"{subnet} is gone from the store -> its route, ARP and FDB entries removed")

    # -- the loop -----------------------------------------------------------------
    def run(self) -> None:
        """Start, then reconcile on every store event and every RESYNC seconds, until ``stop``."""
        while True:  # an agent may start before its store: it waits, saying so once
            try:
                self.start()
                break
            except StoreDown as exc:
                self.say_once("waiting", f"{exc}: waiting for it before leasing a subnet")
                if self.stop.wait(0.05):
                    return
        watcher = threading.Thread(target=self.store.watch, args=(self.wake, self.stop), daemon=True, name="watch")
        watcher.start()
        next_keepalive = 0.0
        while not self.stop.is_set():
            try:
                if time.monotonic() >= next_keepalive:
                    if not self.store.keepalive():
                        self._lease_lost()
                    next_keepalive = time.monotonic() + max(0.5, getattr(self.store, "ttl", 9) / 3)
                self.reconcile()
                if self.store_down:
                    self.say(f"the store answers again: caught up ({self.store_down} is over)")
                    self.store_down = None
            except StoreDown as exc:
                if not self.store_down:
                    self.say(f"{exc}: keeping the datapath as it is (pods keep talking); retrying")
                self.store_down = str(exc)
            except Todo:
                raise  # a workbook step not written yet: the agent stops, saying which
            except LabError as exc:  # a step the kernel refused: said once, tried again at the next resync
                self.say_once(f"error {exc}", f"a reconcile step failed, will retry: {exc}")
            self.wake.wait(RESYNC if not self.store_down else 0.5)
            self.wake.clear()

    def leave(self) -> None:
        """The node leaves the cluster for good: its lease, its peers' entries, its VTEP, its NAT rule and
        its conflist go (its peers remove their entries for it when they see the lease gone)."""
        self.store.release()
        for subnet, entry in self.installed().items():
            self._forget(subnet, entry)
        ns = self.node.ns
        for rule in ns.iptables_rules("nat"):
            if self.node.subnet in rule.split() and "MASQUERADE" in rule:
                ns.run(["iptables", "-w", "-t", "nat", "-D", *rule.split()[1:]])
        if self.node.vtep is not None and self.node.vtep.exists():
            self.node.vtep.delete()
        if self.config.conflist is not None and Path(self.config.conflist).exists():
            Path(self.config.conflist).unlink()
        self.say(f"left the cluster: {self.node.subnet} given back, its VTEP, NAT rule and conflist removed")

    def _lease_lost(self) -> None:
        """The lease expired while the store was away: take the same subnet again if it is still free."""
        if self.store.claim(self._lease()):
            self.say(f"its lease had expired: leased {self.node.subnet} again")
            return
        raise LabError(f"{self.config.name} lost its subnet {self.node.subnet} to another node while the store was away: "
                       "restart the agent to lease a new one (its pods must be recreated).")
