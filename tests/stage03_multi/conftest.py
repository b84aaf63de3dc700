"""Stage 03 -- a Linux bridge joins several pods.

One veth per pod is enough for one pod. For many, the host ends go into a
bridge: a virtual L2 switch that floods unknown frames, learns which MAC sits
behind which port, and -- with an address of its own -- is the pods' gateway.
"""

from cnilab.core.netns import ip_of
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


@recipe.helper
def plug(lab, host, bridge, name, cidr):
    """Create pod namespace `name` and wire it to `bridge`: a veth whose host end `h-NAME` is a bridge
    port and whose pod end `eth0` holds `cidr`. Returns the pod namespace."""
    # BEGIN SOLUTION: create the pod namespace `name`, a veth h-NAME (host) <-> eth0 (pod), make h-NAME a port of the bridge, give eth0 `cidr`, bring both ends up
    pod = lab.netns(name)
    host_end, pod_end = host.veth(f"h-{name}", pod, "eth0")
    host_end.set_master(bridge).up()
    pod_end.add_address(cidr).up()
    # END SOLUTION
    return pod


@recipe.fixture
def pods(lab, host, bridge):
    """Name: pods. Scope: function. Depends: lab, host, bridge.

    {name: namespace} for every pod of POD_IPS, each plugged into the bridge.
    """
    return {name: plug(lab, host, bridge, name, cidr) for name, cidr in POD_IPS.items()}


@recipe.trace
def arp_flood(lab):
    """pod1 pings pod2 for the first time: its ARP question "who has pod2?" is a broadcast, the bridge
    floods it out of every port, so pod3 -- not part of the conversation -- hears it too."""
    pod1, pod3 = lab.get("pod1"), lab.get("pod3")
    pod1.flush_neighbours(pod1.link("eth0"))  # a kept lab remembers pod2's MAC: make pod1 ask again
    ping, views = captured(lambda: assert_ping(pod1, ip_of(POD_IPS["pod2"]), count=1), (pod3, "eth0"))
    from scapy.layers.l2 import ARP

    return Trace(ping.command, ping.output, views, result=ping, only=lambda p: ARP in p)
