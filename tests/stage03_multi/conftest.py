"""Stage 03 -- a Linux bridge joins several pods.

One veth per pod is enough for one pod. For many, the host ends go into a
bridge: a virtual L2 switch that floods unknown frames, learns which MAC sits
behind which port, and -- with an address of its own -- is the pods' gateway.
"""

from typing import NamedTuple

from cnilab.core.netns import Link, Namespace, ip_of
from cnilab.observe.probes import assert_ping
from cnilab.teach.recipe import Recipe
from cnilab.observe.trace import Trace, captured

recipe = Recipe(3, "a bridge joins several pods (a virtual switch with a gateway)", base=1, here=__file__)

HINTS = [
    "make_bridge: `host.bridge(name)` creates a Linux bridge; the gateway address goes on the bridge itself; bring it up.",
    "plug: a pod is `lab.netns(name)` plus a veth whose host end h-NAME is in host and whose pod end eth0 is in the pod.",
    "A bridge port is a link with the bridge as master: `host_end.set_master(bridge)` -- and it must be up too.",
    "In shell: ip -n HOST link add br0 type bridge; ip -n HOST addr add 10.0.3.1/24 dev br0; "
    "ip -n HOST link set h-pod1 master br0 up.",
]
(host,) = recipe.reuse("host")

SUBNET = "10.0.3.0/24"
GATEWAY = "10.0.3.1/24"
POD_IPS = {"pod1": "10.0.3.11/24", "pod2": "10.0.3.12/24", "pod3": "10.0.3.13/24"}


@recipe.helper
def make_bridge(lab, host, gateway, name="br0"):
    """A bridge `name` in `host` holding the gateway address `gateway` (e.g. 10.0.3.1/24), up."""
    # BEGIN SOLUTION: create the bridge `name` in host, put the gateway address on it, bring it up
    br = host.bridge(name)
    br.add_address(gateway).up()
    # END SOLUTION
    return br


@recipe.fixture
def bridge(lab, host):
    """Name: bridge. Scope: function. Depends: lab, host.

    `br0` in host, holding the gateway address GATEWAY, up.
    """
    return make_bridge(lab, host, GATEWAY)


class Plugged(NamedTuple):
    """A pod plugged into a bridge: its namespace, and the host end of its cable (a port of the bridge)."""

    pod: Namespace
    port: Link


def port_name(pod: str) -> str:
    """The host end of pod POD's cable is called h-POD (the one place that says so)."""
    return f"h-{pod}"


@recipe.helper
def plug(lab, host, bridge, name, cidr):
    """Create pod namespace `name` and wire it to `bridge`: a veth whose host end `port_name(name)` (h-NAME)
    is a bridge port and whose pod end `eth0` holds `cidr`. Returns Plugged(pod, port)."""
    # BEGIN SOLUTION: create the pod namespace `name`, a veth port_name(name) (host) <-> eth0 (pod), make the host end a port of the bridge, give eth0 `cidr`, bring both ends up
    pod = lab.netns(name)
    host_end, pod_end = host.veth(port_name(name), pod, "eth0")
    host_end.set_master(bridge).up()
    pod_end.add_address(cidr).up()
    # END SOLUTION
    return Plugged(pod, host_end)


@recipe.fixture
def pods(lab, host, bridge):
    """Name: pods. Scope: function. Depends: lab, host, bridge.

    {name: namespace} for every pod of POD_IPS, each plugged into the bridge.
    """
    return {name: plug(lab, host, bridge, name, cidr).pod for name, cidr in POD_IPS.items()}


@recipe.fixture
def ports(host, pods):
    """Name: ports. Scope: function. Depends: host, pods.

    {name: the host end of the pod's cable}, each a port of the bridge.
    """
    return {name: host.link(port_name(name)) for name in pods}


@recipe.trace
def arp_flood(lab):
    """pod1 pings pod2 for the first time: its ARP question "who has pod2?" is a broadcast, the bridge
    floods it out of every port, so pod3 -- not part of the conversation -- hears it too."""
    pod1, pod3 = lab.get("pod1"), lab.get("pod3")
    pod1.flush_neighbours(pod1.link("eth0"))  # a kept lab remembers pod2's MAC: make pod1 ask again
    ping, views = captured(lambda: assert_ping(pod1, ip_of(POD_IPS["pod2"]), count=1), (pod3, "eth0"))
    from scapy.layers.l2 import ARP

    return Trace(ping.command, ping.output, views, result=ping, only=lambda p: ARP in p)
