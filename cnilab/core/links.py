"""Links inside a lab namespace: what the kernel says about one (``LinkState``) and the handle that
changes it (``Link``), every change a ``Step`` through the lab; and the small parsers they share
(addresses with prefix lengths, the kernel's CPU bitmaps)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from .errors import LabError
from .names import check_ifname
from .step import Step, ip_cmd

if TYPE_CHECKING:
    from .netns import Namespace

AF_INET = socket.AF_INET
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000


def cpu_mask(cpus: Iterable[int]) -> str:
    """The kernel's CPU bitmap syntax (hex, a comma every 32 CPUs): {0, 1} -> "3", {0, 33} -> "2,00000001"."""
    digits = f"{sum(1 << cpu for cpu in set(cpus)):x}"
    return ",".join(digits[max(0, end - 8):end] for end in range(len(digits) % 8 or 8, len(digits) + 1, 8))


def _rps_path(link: "Link") -> str:
    return f"/sys/class/net/{link.name}/queues/rx-0/rps_cpus"


def ip_of(cidr: str) -> str:
    """The address of ``10.0.2.1/24`` (or of a bare ``10.0.2.1``): ``10.0.2.1``."""
    return str(ipaddress.ip_interface(cidr).ip)


def _cidr(value: str) -> ipaddress.IPv4Interface:
    try:
        iface = ipaddress.IPv4Interface(value)
    except ValueError as exc:
        raise LabError(f"{value!r} is not an IPv4 address with prefix length ({exc}): write it like `10.0.2.1/24`.") from None
    if "/" not in value:
        raise LabError(f"Address {value!r} has no prefix length: write it like `{value}/24` so the kernel adds the subnet route.")
    return iface


@dataclass(frozen=True)
class LinkState:
    """What the kernel says about one link."""

    name: str
    index: int
    kind: str
    up: bool            # administratively up (IFF_UP)
    lower_up: bool      # carrier present (IFF_LOWER_UP): for a veth, its peer is up
    operstate: str
    mtu: int
    mac: str
    master: int | None  # ifindex of the bridge it is attached to
    peer_index: int | None
    peer_nsid: int | None


class Link:
    """One network interface inside a lab namespace."""

    def __init__(self, ns: "Namespace", name: str):
        self.ns = ns
        self.name = name

    # -- reading ----------------------------------------------------------------
    @property
    def index(self) -> int:
        found = self.ns.ipr.link_lookup(ifname=self.name)
        if not found:
            raise LabError(f"There is no link {self.name} in namespace {self.ns.name}: create it first (or check the name).")
        return found[0]

    def exists(self) -> bool:
        return bool(self.ns.ipr.link_lookup(ifname=self.name))

    def state(self) -> LinkState:
        return self.ns.link_state(self.index)

    def addresses(self) -> list[str]:
        return [f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}" for a in self.ns.ipr.get_addr(family=AF_INET, index=self.index)]

    # -- changing ---------------------------------------------------------------
    def up(self) -> "Link":
        self.ns.lab.apply(Step(ip_cmd(self.ns.name, "link", "set", self.name, "up"),
                               do=lambda: self.ns.ipr.link("set", index=self.index, state="up")))
        return self

    def down(self) -> "Link":
        self.ns.lab.apply(Step(ip_cmd(self.ns.name, "link", "set", self.name, "down"),
                               do=lambda: self.ns.ipr.link("set", index=self.index, state="down")))
        return self

    def add_address(self, cidr: str) -> "Link":
        return self._address("add", cidr)

    def del_address(self, cidr: str) -> "Link":
        return self._address("del", cidr)

    def _address(self, verb: str, cidr: str) -> "Link":
        iface = _cidr(cidr)
        self.ns.lab.apply(Step(
            ip_cmd(self.ns.name, "addr", verb, cidr, "dev", self.name),
            do=lambda: self.ns.ipr.addr(verb, index=self.index, address=str(iface.ip), prefixlen=iface.network.prefixlen),
        ))
        return self

    def set_mtu(self, mtu: int) -> "Link":
        if not 68 <= int(mtu) <= 65535:
            raise LabError(f"MTU {mtu} is out of range: IPv4 needs 68 to 65535 bytes.")
        self.ns.lab.apply(Step(ip_cmd(self.ns.name, "link", "set", self.name, "mtu", mtu),
                               do=lambda: self.ns.ipr.link("set", index=self.index, mtu=int(mtu))))
        return self

    def set_mac(self, mac: str) -> "Link":
        """Give the link another hardware address (``ip link set X address MAC``)."""
        self.ns.lab.apply(Step(ip_cmd(self.ns.name, "link", "set", self.name, "address", mac),
                               do=lambda: self.ns.ipr.link("set", index=self.index, address=mac)))
        return self

    def set_master(self, bridge: "Link") -> "Link":
        """Attach this link to ``bridge`` as a port (``ip link set X master BR``)."""
        if bridge.ns is not self.ns:
            raise LabError(f"{self.name} is in {self.ns.name} but bridge {bridge.name} is in {bridge.ns.name}: a bridge port must live in the bridge's namespace.")
        self.ns.lab.apply(Step(ip_cmd(self.ns.name, "link", "set", self.name, "master", bridge.name),
                               do=lambda: self.ns.ipr.link("set", index=self.index, master=bridge.index)))
        return self

    def nomaster(self) -> "Link":
        """Detach this link from its bridge."""
        self.ns.lab.apply(Step(ip_cmd(self.ns.name, "link", "set", self.name, "nomaster"),
                               do=lambda: self.ns.ipr.link("set", index=self.index, master=0)))
        return self

    def rename(self, new: str) -> "Link":
        """Give the link another name (it must be down, as the kernel requires); returns the renamed link."""
        check_ifname(new)
        self.ns.lab.apply(Step(ip_cmd(self.ns.name, "link", "set", self.name, "name", new),
                               do=lambda: self.ns.ipr.link("set", index=self.index, ifname=new)))
        return Link(self.ns, new)

    def delete(self) -> None:
        self.ns.lab.apply(Step(ip_cmd(self.ns.name, "link", "del", self.name),
                               do=lambda: self.ns.ipr.link("del", index=self.index)))

    def __repr__(self) -> str:
        return f"Link({self.ns.name}:{self.name})"


def state_of(m: Any) -> LinkState:
    """A LinkState from one RTM_NEWLINK message."""
    return LinkState(
        name=m.get("IFLA_IFNAME"),
        index=m["index"],
        kind=m.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or "",
        up=bool(m["flags"] & IFF_UP),
        lower_up=bool(m["flags"] & IFF_LOWER_UP),
        operstate=m.get("IFLA_OPERSTATE") or "",
        mtu=m.get("IFLA_MTU"),
        mac=m.get("IFLA_ADDRESS") or "",
        master=m.get("IFLA_MASTER"),
        peer_index=m.get("IFLA_LINK"),
        peer_nsid=m.get("IFLA_LINK_NETNSID"),
    )
