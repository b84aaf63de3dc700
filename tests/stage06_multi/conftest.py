"""Stage 06 -- several nodes joined by a VXLAN overlay.

Each node (a namespace standing for a machine) has the bridge and pods of
stage 03 and a cable to a shared underlay switch. VXLAN wraps a pod's
Ethernet frame in UDP (port 4789) between the nodes' underlay addresses, so
pods on different nodes talk as if they shared a wire. Two ways to use it:

* ``p2p`` (the seed): the VXLAN device is a port of each node's bridge: one L2
  segment spans the nodes; frames to unknown MACs are replicated to every peer.
* ``routed`` (flannel's vxlan backend): the VXLAN device is a router interface
  with a /32; per peer node exactly one route (its pod subnet via its VTEP),
  one permanent ARP entry and one permanent FDB entry -- no flooding, no learning.

The wrapper costs 50 bytes, so pods get MTU = underlay MTU - 50.
"""

from dataclasses import dataclass, field

import pytest

from cnilab.core.netns import Link, Namespace, ip_of
from cnilab.runtime import nodes
from cnilab.observe.probes import assert_ping
from cnilab.teach.recipe import Recipe
from cnilab.observe.trace import Trace, captured

recipe = Recipe(6, "several nodes joined by a VXLAN overlay (UDP 4789)", base=3, here=__file__)

HINTS = [
    "MTU: a VXLAN frame carries 50 bytes of wrapping, so both ends of each pod's veth get POD_MTU (`link.set_mtu`).",
    "p2p: `node.ns.vxlan(\"vxlan0\", VNI[\"p2p\"], local=node.ip, port=VXLAN_PORT, dev=node.ns.link(\"eth0\"))`, "
    "then set_mtu, set_master(node.bridge), up.",
    "p2p flooding without multicast: `ns.add_fdb(vtep, ZERO_MAC, peer_ip, append=True)` once per peer, on both sides.",
    "make_vtep: `node.ns.vxlan(\"flannel1\", vni, local=node.ip, port=port, dev=node.ns.link(\"eth0\"), learning=False)`, "
    "then set_mtu(mtu), add_address(f\"{node.vtep_ip}/32\"), up; join_routed: for each peer route_to(peer, node) and route_to(node, peer).",
    "route_to: `add_route(peer.subnet, via=peer.vtep_ip, dev=node.vtep, onlink=True)`, "
    "`add_neighbour(peer.vtep_ip, peer.vtep_mac, node.vtep)`, `add_fdb(node.vtep, peer.vtep_mac, peer.ip)`.",
]
make_bridge, plug = recipe.step("make_bridge"), recipe.step("plug")

NODES = 3
PODS_PER_NODE = 2
UNDERLAY_MTU = 1500
VXLAN_OVERHEAD = 50          # outer Ethernet 14 + IP 20 + UDP 8 + VXLAN 8
POD_MTU = UNDERLAY_MTU - VXLAN_OVERHEAD
VXLAN_PORT = 4789
VNI = {"p2p": 42, "routed": 1}
ZERO_MAC = "00:00:00:00:00:00"
DEMO = {"mode": "p2p"}       # `cnilab demo 6` builds the seed's overlay; `--set mode=routed` the other


@dataclass
class Node:
    """One simulated machine of the cluster."""

    n: int
    ns: Namespace
    ip: str                          # underlay address
    bridge: Link
    vtep: Link | None = None
    pods: dict[str, tuple[Namespace, str]] = field(default_factory=dict)  # name -> (namespace, ip)
    ports: dict[str, Link] = field(default_factory=dict)  # name -> the host end of the pod's cable

    @property
    def subnet(self) -> str:
        return f"10.244.{self.n}.0/24"

    @property
    def vtep_ip(self) -> str:
        return f"10.244.{self.n}.0"

    @property
    def vtep_mac(self) -> str:
        return self.vtep.state().mac


def pod_cidr(mode, n, k):
    # p2p: one L2 segment, so one subnet (/16) across nodes; routed: a /24 per node
    return f"10.6.{n}.{10 + k}/16" if mode == "p2p" else f"10.244.{n}.{10 + k}/24"


def gateway_cidr(mode, n):
    return f"10.6.{n}.1/16" if mode == "p2p" else f"10.244.{n}.1/24"


@recipe.fixture
def underlay(lab):
    """Name: underlay. Scope: function. Depends: lab.

    The machines' shared network: a switch (bridge `ul0`) in namespace `wire`.
    """
    wire = lab.netns("wire")
    return wire.bridge("ul0").up()


@recipe.helper
def add_node(lab, underlay, n, mode, cluster, kind="netns"):
    """Node `n` (a namespace, or a Docker container's namespace): a cable to the underlay (198.18.0.n),
    forwarding on, a bridge `cni0` with pods, and a VXLAN device joined to every node already in
    `cluster` (and they to it)."""
    node_ns, ip, port = cable(lab, underlay, n, kind)
    node = Node(n, node_ns, ip, make_bridge(lab, node_ns, gateway_cidr(mode, n), name="cni0"))
    for k in range(1, PODS_PER_NODE + 1):
        name, cidr = f"n{n}p{k}", pod_cidr(mode, n, k)
        pod, node.ports[name] = plug(lab, node_ns, node.bridge, name, cidr)
        # BEGIN SOLUTION: set the MTU of both ends of the pod's veth (node.ports[name] and the pod's eth0) to POD_MTU; in routed mode give the pod a default route via the node's gateway
        node.ports[name].set_mtu(POD_MTU)
        pod.link("eth0").set_mtu(POD_MTU)
        if mode == "routed":
            pod.add_route("default", via=ip_of(gateway_cidr(mode, n)))
        # END SOLUTION
        node.pods[name] = (pod, ip_of(cidr))
    keep_flows_in_order(node, port)
    (join_p2p if mode == "p2p" else join_routed)(lab, node, cluster)
    cluster.append(node)
    return node


@recipe.helper
def cable(lab, underlay, n, kind="netns", machine=None):
    """Machine `n` (a namespace, or a Docker container's namespace; or the namespace `machine` given)
    cabled to the underlay switch: `eth0` with 198.18.0.n/24, forwarding on. Returns (its namespace,
    its underlay address, its switch port)."""
    node_ns = machine or nodes.node(lab, f"node{n}", kind)
    eth, port = node_ns.veth("eth0", underlay.ns, f"ul-n{n}")
    port.set_master(underlay).up()
    ip = f"198.18.0.{n}"
    eth.add_address(f"{ip}/24").up()
    node_ns.set_sysctl("net.ipv4.ip_forward", 1)
    return node_ns, ip, port


@recipe.helper
def keep_flows_in_order(node, port):
    """Flow steering (RPS) on the receiving end of every cable of the node: its pods' and its own veths,
    and its port on the switch. Real machines get this from the NIC, which hands a flow to one receive
    queue; a veth receives each packet on the CPU that sent it, and a TCP sender sends from two CPUs (its
    own, and the one that handles the ACKs): the flow arrives out of order and is retransmitted."""
    node.ns.steer_flows(node.ns.link("eth0"), *node.ports.values())
    for pod, _ in node.pods.values():
        pod.steer_flows(pod.link("eth0"))
    port.ns.steer_flows(port)


@recipe.helper
def join_p2p(lab, node, cluster):
    """The seed's way: a VXLAN port on the bridge; each peer's VTEP on the flood list (unicast)."""
    # BEGIN SOLUTION: create the VXLAN device vxlan0 (VNI, port 4789, local = node.ip, dev eth0), MTU POD_MTU, as a port of the node's bridge; add each peer's underlay IP to the flood list (all-zeros MAC), both ways
    eth = node.ns.link("eth0")
    node.vtep = node.ns.vxlan("vxlan0", VNI["p2p"], local=node.ip, port=VXLAN_PORT, dev=eth)
    node.vtep.set_mtu(POD_MTU).set_master(node.bridge).up()
    for peer in cluster:
        node.ns.add_fdb(node.vtep, ZERO_MAC, peer.ip, append=True)
        peer.ns.add_fdb(peer.vtep, ZERO_MAC, node.ip, append=True)
    # END SOLUTION


@recipe.helper
def join_routed(lab, node, cluster):
    """flannel's way: a routed VTEP (/32, no learning); three entries per peer, in both directions."""
    node.vtep = make_vtep(node)
    # BEGIN SOLUTION: route_to() in both directions for every peer already in the cluster
    for peer in cluster:
        route_to(peer, node)
        route_to(node, peer)
    # END SOLUTION


@recipe.helper
def make_vtep(node, vni=VNI["routed"], port=VXLAN_PORT, mtu=POD_MTU):
    """The node's routed VTEP `flannel1`: VXLAN `vni` to UDP `port` from the node's underlay address, no
    learning, MTU `mtu`, the address node.vtep_ip/32, up. Returns the device."""
    # BEGIN SOLUTION: create the VXLAN device flannel1 (vni, port, local = node.ip, dev eth0, no learning), MTU mtu, address VTEP_IP/32, up
    eth = node.ns.link("eth0")
    vtep = node.ns.vxlan("flannel1", vni, local=node.ip, port=port, dev=eth, learning=False)
    vtep.set_mtu(mtu).add_address(f"{node.vtep_ip}/32").up()
    # END SOLUTION
    return vtep


@recipe.helper
def route_to(node, peer):
    """On `node`: the route to `peer`'s pods, the ARP entry for its VTEP, the FDB entry to its underlay IP."""
    # BEGIN SOLUTION: on `node`: a route to peer.subnet via peer.vtep_ip onlink on the VTEP, a permanent ARP entry for peer.vtep_ip, and a permanent FDB entry sending peer.vtep_mac to peer.ip
    node.ns.add_route(peer.subnet, via=peer.vtep_ip, dev=node.vtep, onlink=True)
    node.ns.add_neighbour(peer.vtep_ip, peer.vtep_mac, node.vtep)
    node.ns.add_fdb(node.vtep, peer.vtep_mac, peer.ip)
    # END SOLUTION


@pytest.fixture(params=["p2p", "routed"])
def mode(request):
    """Name: mode. Scope: function. The overlay flavour under test (a parameter, not a build step)."""
    return request.param


@recipe.fixture
def cluster(lab, underlay, mode, node_kind):
    """Name: cluster. Scope: function. Depends: lab, underlay, mode, node_kind.

    NODES nodes (of `node_kind`) with PODS_PER_NODE pods each, joined by the overlay of `mode`.
    """
    nodes = []
    for n in range(1, NODES + 1):
        add_node(lab, underlay, n, mode, nodes, node_kind)
    return nodes


@recipe.trace
def vxlan_wrap(lab):
    """A pod on node1 pings a pod on node2. On the underlay switch the pods' frame travels inside
    Ethernet / IP between the two nodes / UDP to port 4789 / VXLAN with the VNI."""
    src, dst, wire = lab.get("n1p1"), lab.get("n2p1"), lab.get("wire")
    ping, views = captured(lambda: assert_ping(src, dst.ip("eth0"), count=2), (wire, "ul0"))
    from scapy.layers.inet import UDP

    return Trace(ping.command, ping.output, views, result=ping,
                 only=lambda p: UDP in p and p[UDP].dport == VXLAN_PORT)
