"""Network namespaces and the links inside them.

A ``Namespace`` is a lab's stand-in for a machine (the "host", a pod, a node).
It makes every change through ``Lab.apply`` so each one is narrated,
recorded and undone; it reads state back over netlink (pyroute2), never by
parsing ``ip`` output.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import subprocess
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from pyroute2 import IPRoute, netns as pyr_netns
from pyroute2.netlink.exceptions import NetlinkError

from . import nsexec, processes
from .advice import TOOL_PACKAGES, iptables_explained  # noqa: F401 -- TOOL_PACKAGES: also this module's API
from .errors import LabError
from .links import IFF_LOWER_UP, IFF_UP, Link, LinkState, _rps_path, cpu_mask, ip_of, state_of  # noqa: F401 -- also this module's API
from .names import check_ifname
from .wait import wait_for
from .step import Step, ip_cmd, ns_cmd, shell

if TYPE_CHECKING:
    from .lab import Lab

AF_INET = socket.AF_INET
RT_TABLE_MAIN = 254  # the table `ip route` shows (rtnetlink.h)
NUD_PERMANENT = 0x80


class Namespace:
    """A network namespace of a lab (``ip netns add``); its netlink handle opens lazily."""

    def __init__(self, lab: "Lab", name: str):
        self.lab = lab
        self.name = name
        self._ipr: IPRoute | None = None

    @property
    def short(self) -> str:
        return self.name.removeprefix(self.lab.prefix)

    @property
    def ipr(self) -> IPRoute:
        if self._ipr is None:
            self._ipr = IPRoute(netns=self.name)
        return self._ipr

    def close(self) -> None:
        """Drop the netlink handle; it pins the namespace while open."""
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    def create(self) -> None:
        self.lab.apply(Step(shell("ip", "netns", "add", self.name), do=self._create,
                            undo=self._remove, undo_command=shell("ip", "netns", "del", self.name)))

    def _create(self) -> None:
        try:
            pyr_netns.create(self.name)
        except BaseException:  # its helper process died halfway: the mount may exist, unregistered
            if os.path.exists(nsexec.netns_path(self.name)):
                pyr_netns.remove(self.name)
            raise

    def _remove(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- a handle an interrupt broke is discarded anyway
            self._ipr = None
        nsexec.remove(self.name)

    def attach(self, pid: int) -> None:
        """Name the network namespace of process ``pid`` (a container) as this namespace (``ip netns attach``)."""
        self.lab.apply(Step(shell(*attach_cmd(self.name, pid)), do=lambda: run_attach(self.name, pid),
                            undo=self._remove, undo_command=shell("ip", "netns", "del", self.name)))

    def delete(self) -> None:
        """Delete this namespace now (``ip netns del``); its links and their veth peers go with it."""
        step = next(s for s in self.lab.registry if s.undo_command == shell("ip", "netns", "del", self.name))
        self.lab.transcript.append(step.undo_command)
        step.undo()
        self.lab.registry.remove(step)
        del self.lab.namespaces[self.name]

    # -- links ------------------------------------------------------------------
    def link(self, name: str) -> Link:
        """The link called ``name`` (or the lab-prefixed ``name``) in this namespace."""
        if self.ipr.link_lookup(ifname=name):
            return Link(self, name)
        return Link(self, self.lab.name(name))

    def links(self) -> list[str]:
        return [m.get("IFLA_IFNAME") for m in self.ipr.get_links()]

    def link_state(self, index: int) -> LinkState:
        return state_of(self.ipr.get_links(index)[0])

    def link_states(self) -> list[LinkState]:
        """Every link, from one dump: a link the kernel frees meanwhile is simply not in it."""
        return [state_of(m) for m in self.ipr.get_links()]

    def veth(self, name: str, peer: "Namespace | None" = None, peer_name: str | None = None) -> tuple[Link, Link]:
        """Create a veth pair: ``name`` here, ``peer_name`` in ``peer`` (default: here too).

        The peer is born in its namespace (no create-then-move), as
        ``ip link add A type veth peer name B netns NS`` does.
        """
        peer = peer or self
        full, peer_full = self.lab.name(name), self.lab.name(peer_name or f"{name}p")
        check_ifname(full), check_ifname(peer_full)
        argv: list[Any] = ["link", "add", full, "type", "veth", "peer", "name", peer_full]
        if peer is not self:
            argv += ["netns", peer.name]
        self.lab.apply(Step(
            ip_cmd(self.name, *argv),
            do=lambda: self.ipr.link("add", ifname=full, kind="veth",
                                     peer={"ifname": peer_full, **({"net_ns_fd": peer.name} if peer is not self else {})}),
            note="a veth pair is a virtual cable: what enters one end leaves the other",
        ))
        return Link(self, full), Link(peer, peer_full)

    def bridge(self, name: str) -> Link:
        """Create a Linux bridge (a virtual L2 switch) called ``name``."""
        full = check_ifname(self.lab.name(name))
        self.lab.apply(Step(ip_cmd(self.name, "link", "add", full, "type", "bridge"),
                            do=lambda: self.ipr.link("add", ifname=full, kind="bridge")))
        return Link(self, full)

    def vxlan(self, name: str, vni: int, *, local: str, port: int = 4789, remote: str | None = None,
              learning: bool = True, dev: Link | None = None) -> Link:
        """Create a VXLAN device: Ethernet frames in UDP to ``port`` (IANA 4789; Linux would default to 8472)."""
        full = check_ifname(self.lab.name(name))
        if not 0 < int(vni) < 1 << 24:
            raise LabError(f"VNI {vni} is out of range: a VXLAN network identifier is 1 to 16777215.")
        argv: list[Any] = ["link", "add", full, "type", "vxlan", "id", vni, "dstport", port, "local", local]
        spec: dict[str, Any] = {"vxlan_id": int(vni), "vxlan_port": int(port), "vxlan_local": local,
                                "vxlan_learning": int(learning)}
        if remote:
            argv += ["remote", remote]
            spec["vxlan_group"] = remote
        if dev is not None:
            argv += ["dev", dev.name]
        if not learning:
            argv.append("nolearning")
        self.lab.apply(Step(ip_cmd(self.name, *argv), do=lambda: self.ipr.link(
            "add", ifname=full, kind="vxlan", **spec, **({"vxlan_link": dev.index} if dev is not None else {}))))
        return Link(self, full)

    def vxlan_info(self, link: Link) -> dict[str, Any]:
        """VNI, UDP port, local address and learning flag of a VXLAN device, read over netlink."""
        data = self.ipr.get_links(link.index)[0].get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
        return {"vni": data.get("IFLA_VXLAN_ID"), "port": data.get("IFLA_VXLAN_PORT"),
                "local": data.get("IFLA_VXLAN_LOCAL"), "learning": bool(data.get("IFLA_VXLAN_LEARNING"))}

    # -- addresses, routes, neighbours ------------------------------------------
    def addresses(self) -> list[tuple[str, str]]:
        """(link name, "ip/len") for every IPv4 address here."""
        names = {m["index"]: m.get("IFLA_IFNAME") for m in self.ipr.get_links()}
        return [(names.get(a["index"], "?"), f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}") for a in self.ipr.get_addr(family=AF_INET)]

    def ip(self, ifname: str = "eth0") -> str:
        """The (first) IPv4 address of ``ifname``, without prefix length, as the kernel has it now."""
        found = self.link(ifname).addresses()
        if not found:
            raise LabError(f"{ifname} in {self.name} has no IPv4 address: add one (`ip -n {self.name} addr add ... dev {ifname}`).")
        return ip_of(found[0])

    def owns(self, ip: str) -> bool:
        return any(ip_of(cidr) == ip for _, cidr in self.addresses())

    def add_route(self, dst: str, via: str | None = None, dev: Link | None = None, onlink: bool = False) -> None:
        """Add a route (``ip route add DST [via GW] [dev DEV] [onlink]``); ``dst`` may be ``default``."""
        argv: list[Any] = ["route", "add", dst]
        spec: dict[str, Any] = {"dst": "0.0.0.0/0" if dst == "default" else dst}
        if via:
            argv += ["via", via]
            spec["gateway"] = via
        if dev is not None:
            argv += ["dev", dev.name]
        if onlink:
            argv.append("onlink")
            spec["flags"] = 4  # RTNH_F_ONLINK
        if dst != "default":
            try:
                ipaddress.IPv4Network(dst, strict=False)
            except ValueError:
                raise LabError(f"Route destination {dst!r} is not a network: write it like `10.0.5.0/24` or `default`.") from None
        self.lab.apply(Step(ip_cmd(self.name, *argv),
                            do=lambda: self.ipr.route("add", **spec, **({"oif": dev.index} if dev is not None else {}))))

    def del_route(self, dst: str) -> None:
        spec = {"dst": "0.0.0.0/0" if dst == "default" else dst}
        self.lab.apply(Step(ip_cmd(self.name, "route", "del", dst), do=lambda: self.ipr.route("del", **spec)))

    def routes(self) -> list[dict[str, Any]]:
        """The main-table IPv4 routes: dicts with dst ("default" or cidr), gateway, dev."""
        names = {m["index"]: m.get("IFLA_IFNAME") for m in self.ipr.get_links()}
        out = []
        for r in self.ipr.get_routes(family=AF_INET, table=RT_TABLE_MAIN):
            dst = r.get("RTA_DST")
            out.append({
                "dst": f"{dst}/{r['dst_len']}" if dst else "default",
                "gateway": r.get("RTA_GATEWAY"),
                "dev": names.get(r.get("RTA_OIF")),
            })
        return out

    def route_get(self, dst: str) -> dict[str, Any] | None:
        """The kernel's route decision for ``dst`` (``ip route get``), or None when unreachable."""
        try:
            r = self.ipr.route("get", dst=dst)[0]
        except NetlinkError:
            return None
        return {"dev_index": r.get("RTA_OIF"), "gateway": r.get("RTA_GATEWAY"), "type": r["type"], "src": r.get("RTA_PREFSRC")}

    def add_neighbour(self, ip: str, mac: str, dev: Link) -> None:
        """A permanent ARP entry (``ip neigh add IP lladdr MAC dev DEV nud permanent``)."""
        self.lab.apply(Step(ip_cmd(self.name, "neigh", "add", ip, "lladdr", mac, "dev", dev.name, "nud", "permanent"),
                            do=lambda: self.ipr.neigh("add", dst=ip, lladdr=mac, ifindex=dev.index, state=NUD_PERMANENT)))

    def del_neighbour(self, ip: str, dev: Link) -> None:
        """Remove the ARP entry for ``ip`` on ``dev`` (``ip neigh del IP dev DEV``)."""
        self.lab.apply(Step(ip_cmd(self.name, "neigh", "del", ip, "dev", dev.name),
                            do=lambda: self.ipr.neigh("del", dst=ip, ifindex=dev.index)))

    def neighbours(self, dev: Link) -> list[tuple[str, str, int]]:
        """(ip, mac, NUD state) of the IPv4 neighbour entries on ``dev``."""
        return [(n.get("NDA_DST"), n.get("NDA_LLADDR"), n["state"])
                for n in self.ipr.get_neighbours(family=AF_INET, ifindex=dev.index)]

    def flush_neighbours(self, dev: Link) -> None:
        """Forget what ``dev`` learned by ARP (permanent entries stay): the next packet asks again."""
        def flush() -> None:
            for n in self.ipr.get_neighbours(family=AF_INET, ifindex=dev.index):
                if not n["state"] & NUD_PERMANENT:
                    try:
                        self.ipr.neigh("del", dst=n.get("NDA_DST"), ifindex=dev.index)
                    except NetlinkError as exc:
                        if exc.code != errno.ENOENT:  # it expired meanwhile, which is the goal
                            raise

        self.lab.apply(Step(ip_cmd(self.name, "neigh", "flush", "dev", dev.name), do=flush))

    def add_fdb(self, dev: Link, mac: str, dst: str, *, append: bool = False) -> None:
        """A permanent forwarding entry of a VXLAN device: frames for ``mac`` go to VTEP ``dst``.

        ``append`` adds one more destination for the same MAC (all-zeros MAC = flood list).
        """
        verb = "append" if append else "add"
        self.lab.apply(Step(shell("bridge", "-n", self.name, "fdb", verb, mac, "dev", dev.name, "dst", dst, "self", "permanent"),
                            do=lambda: self.ipr.fdb(verb, ifindex=dev.index, lladdr=mac, dst=dst, state=NUD_PERMANENT)))

    def del_fdb(self, dev: Link, mac: str, dst: str) -> None:
        self.lab.apply(Step(shell("bridge", "-n", self.name, "fdb", "del", mac, "dev", dev.name, "dst", dst, "self"),
                            do=lambda: self.ipr.fdb("del", ifindex=dev.index, lladdr=mac, dst=dst)))

    def fdb(self, dev: Link) -> list[tuple[str, str | None]]:
        """(mac, VTEP destination or None) of the forwarding entries of ``dev``."""
        return [(e.get("NDA_LLADDR"), e.get("NDA_DST")) for e in self.ipr.fdb("dump", ifindex=dev.index)
                if e["ifindex"] == dev.index]

    # -- sysctls ----------------------------------------------------------------
    def sysctl(self, key: str) -> str:
        """Read a sysctl of this namespace (``net.ipv4.ip_forward``)."""
        path = "/proc/sys/" + key.replace(".", "/")
        return nsexec.call_in(self.name, lambda: open(path).read().strip())

    def set_sysctl(self, key: str, value: Any) -> None:
        """Set a per-namespace sysctl; only ``net.*`` keys are per namespace."""
        if not key.startswith("net."):
            raise LabError(f"sysctl {key} is not per network namespace: the lab only sets net.* keys, never the machine's.")
        path = "/proc/sys/" + key.replace(".", "/")

        def write() -> None:
            with open(path, "w") as f:
                f.write(str(value))

        self.lab.apply(Step(ns_cmd(self.name, ["sysctl", "-w", f"{key}={value}"]),
                            do=lambda: nsexec.call_in(self.name, write)))

    # -- flow steering (RPS) ------------------------------------------------------
    def steer_flows(self, *links: Link, cpus: Iterable[int] | None = None) -> None:
        """Receive Packet Steering on ``links``: each flow is received on one CPU, picked by its hash
        among ``cpus`` (default: every CPU this process may use), as a NIC's receive queue would do.

        A veth has no queue of its own: a packet is received on whichever CPU sent it. A TCP sender
        transmits from two CPUs (its own, and the one handling the ACKs), the two per-CPU backlogs race,
        and the flow arrives out of order, which the sender takes for loss (retransmits, smaller window).
        There is no netlink attribute for it: it is the sysfs file ``queues/rx-0/rps_cpus``, written
        from a thread that sees this namespace's own /sys (``nsexec.own_sysfs``).
        """
        mask = cpu_mask(os.sched_getaffinity(0) if cpus is None else cpus)
        paths = [_rps_path(link) for link in links]

        def write() -> None:
            try:
                for path in paths:
                    with open(path, "w") as f:
                        f.write(mask)
            except OSError as exc:
                if exc.errno != errno.EROFS:
                    raise
                raise LabError(f"The sysfs of {self.name} is read-only (whoever made the namespace, e.g. a container "
                               "runtime, mounted it so), so flows cannot be steered: give that container a tmpfs "
                               "on /sys so the lab mounts the first, writable one.") from None

        self.lab.apply(Step(f"echo {mask} | " + ns_cmd(self.name, ["tee", *paths]),
                            do=lambda: nsexec.call_in(self.name, write, sysfs=True)))

    def flow_steering(self, link: Link) -> set[int]:
        """The CPUs that receive ``link``'s flows (empty: RPS off, each packet stays on its sender's CPU)."""
        path = _rps_path(link)
        mask = int(nsexec.call_in(self.name, lambda: open(path).read(), sysfs=True).strip().replace(",", ""), 16)
        return {cpu for cpu in range(mask.bit_length()) if mask >> cpu & 1}

    # -- firewall (iptables, nf_tables backend) ----------------------------------
    def iptables(self, *rule: str, table: str = "filter") -> None:
        """Append a rule in this namespace, tagged with the lab prefix (``-m comment``) so it can be found.

        ``rule`` starts with the action and chain, e.g. ``("-A", "FORWARD", "-j", "DROP")``.
        """
        argv = ["iptables", "-w", "-t", table, *rule, "-m", "comment", "--comment", self.lab.prefix.rstrip("-")]
        with iptables_explained(table, rule):
            self.lab.apply(Step(ns_cmd(self.name, argv), do=lambda: self._iptables(argv)))

    def _iptables(self, argv: Sequence[str]) -> str:
        return self.run(argv).stdout.decode()

    def iptables_rules(self, table: str = "filter") -> list[str]:
        """The rules (``-A ...`` lines of ``iptables -S``) of ``table`` in this namespace."""
        return [line for line in self._iptables(["iptables", "-w", "-t", table, "-S"]).splitlines() if line.startswith("-A")]

    def source_nat(self) -> list[tuple[str, str]]:
        """(outgoing interface, source match) of each MASQUERADE/SNAT rule here ("any" where a rule has none)."""
        found = []
        for rule in self.iptables_rules("nat"):
            argv = rule.split()
            if argv[:2] == ["-A", "POSTROUTING"] and any(t in argv for t in ("MASQUERADE", "SNAT")):
                opt = lambda flag: argv[argv.index(flag) + 1] if flag in argv else "any"  # noqa: E731
                found.append((opt("-o"), opt("-s")))
        return found

    # -- processes and Python code inside ---------------------------------------
    def run(self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 10, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command inside this namespace and wait for it (not registered: it ends by itself)."""
        try:
            done = subprocess.run(["ip", "netns", "exec", self.name, *argv], input=input, capture_output=True, timeout=timeout)
        except FileNotFoundError:
            raise LabError("The `ip` command is missing: install it with `apt-get install -y iproute2`.") from None
        if b'exec of "' in done.stderr and b"No such file or directory" in done.stderr:
            tool = argv[0]  # `ip netns exec` could not start it
            raise LabError(f"`{tool}` is missing: install it with `apt-get install -y {TOOL_PACKAGES.get(tool, tool)}`.")
        if check and done.returncode != 0:
            raise LabError(f"`{ns_cmd(self.name, argv)}` failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}")
        return done

    def spawn(self, argv: Sequence[str]) -> subprocess.Popen:
        """Start a long-running command inside this namespace; the lab kills it at teardown."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, *argv], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)

        self.lab.transcript.append(ns_cmd(self.name, argv) + " &")
        self.lab.defer(f"kill {shell(*argv)}", lambda: processes.stop(proc, group=True))
        # return only once the child runs inside the namespace, so what follows (and cleanup) sees it there
        target = os.stat(nsexec.netns_path(self.name)).st_ino

        def inside() -> bool:
            if proc.poll() is not None:
                return True  # it already ended; the caller reads its exit status
            try:
                return os.stat(f"/proc/{proc.pid}/ns/net").st_ino == target
            except FileNotFoundError:
                return True
        wait_for(inside, timeout=5, what=f"{argv[0]} to enter {self.name}")
        return proc

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a Python callable with this namespace as its network namespace."""
        return nsexec.call_in(self.name, fn, *args, **kwargs)

    def __repr__(self) -> str:
        return f"Namespace({self.name})"


def attach_cmd(name: str, pid: int) -> list[str]:
    return ["ip", "netns", "attach", name, str(pid)]


def run_attach(name: str, pid: int) -> None:
    done = subprocess.run(attach_cmd(name, pid), capture_output=True, text=True)
    if done.returncode != 0:
        raise LabError(f"`{shell(*attach_cmd(name, pid))}` failed: {done.stderr.strip()}")
