"""Subnet leases: which node holds which pod subnet, and where its VTEP is.

One lease per node, kept in the store under ``/cnilab/<cluster>/subnets/<net>-<len>`` (the key *is*
the subnet, so two nodes can never hold one: a lease is created by a transaction that succeeds only
while the key does not exist). Its value says whose it is and where to send the node's pods'
frames: ``{"node": ..., "publicIP": <underlay address>, "vtepMAC": <the VTEP's MAC>}``. In etcd the key
is bound to an etcd lease with a TTL that the node's agent keeps alive: a node that dies stops
refreshing it, etcd deletes the key, and every other agent removes what pointed at that node.

Anything may be written into a store by anyone: ``parse`` turns a key and value into a ``Lease`` or
says in one sentence why it is not one (``BadLease``), and the agent never applies what it rejects.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field

MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")


class BadLease(ValueError):
    """A store entry that is not a valid lease; the message says why."""


@dataclass(frozen=True)
class Lease:
    """A node's pod subnet and its VTEP: what a peer needs for its route, ARP and FDB entries
    (stage 06's ``route_to`` reads ``subnet``, ``vtep_ip``, ``vtep_mac`` and ``ip``)."""

    subnet: str                              # "10.244.3.0/24"
    ip: str                                  # the node's underlay address: the VTEP's outer address
    vtep_mac: str
    node: str = field(default="", compare=False)

    @property
    def vtep_ip(self) -> str:
        """flannel's convention: a node's VTEP answers on its subnet's network address (x.y.z.0/32)."""
        return str(ipaddress.IPv4Network(self.subnet).network_address)

    def value(self) -> str:
        return json.dumps({"node": self.node, "publicIP": self.ip, "vtepMAC": self.vtep_mac}, sort_keys=True)


def prefix(cluster: str) -> str:
    return f"/cnilab/{cluster}/subnets/"


def key(cluster: str, subnet: str) -> str:
    net = ipaddress.IPv4Network(subnet)
    return f"{prefix(cluster)}{net.network_address}-{net.prefixlen}"


def subnets(cidr: str, plen: int = 24) -> list[str]:
    """The node subnets of the cluster CIDR, the first left out (flannel's SubnetMin: x.y.0.0/24 is
    often the cluster's own infrastructure range)."""
    return [str(s) for s in ipaddress.IPv4Network(cidr).subnets(new_prefix=plen)][1:]


def parse(cluster: str, cidr: str, raw_key: str, raw_value: bytes | str, plen: int = 24) -> Lease:
    """The lease a store entry describes, or ``BadLease`` saying why it is none."""
    name = raw_key.removeprefix(prefix(cluster))
    try:
        net = ipaddress.IPv4Network(name.replace("-", "/"))
    except ValueError:
        raise BadLease(f"its key names no subnet ({name!r})") from None
    if not net.subnet_of(ipaddress.IPv4Network(cidr)):
        raise BadLease(f"its subnet {net} is outside the cluster CIDR {cidr}")
    if net.prefixlen != plen:
        raise BadLease(f"its subnet {net} is a /{net.prefixlen}, the cluster gives each node a /{plen}")
    try:
        data = json.loads(raw_value)
    except (ValueError, UnicodeDecodeError):
        raise BadLease("its value is not JSON") from None
    if not isinstance(data, dict):
        raise BadLease("its value is not a JSON object")
    node, ip, mac = data.get("node"), data.get("publicIP"), data.get("vtepMAC")
    if not isinstance(node, str) or not NAME.match(node):
        raise BadLease(f"its node name {node!r} is not a node name")
    try:
        addr = ipaddress.IPv4Address(ip)
    except (ValueError, TypeError):
        raise BadLease(f"its publicIP {ip!r} is not an IPv4 address") from None
    if addr in ipaddress.IPv4Network(cidr) or not (addr.is_private or addr.is_global) or addr.is_loopback:
        raise BadLease(f"its publicIP {ip} cannot be a node's underlay address")
    if not isinstance(mac, str) or not MAC.match(mac.lower()) or int(mac[:2], 16) & 1 or mac == "00:00:00:00:00:00":
        raise BadLease(f"its vtepMAC {mac!r} is not a unicast MAC address")
    return Lease(str(net), str(addr), mac.lower(), node)
