"""Stage 05 -- egress: pods reach "the internet" through the host.

Pods on the bridge have private addresses nobody outside routes back to. To
get out they need three things: a default route via the bridge gateway, a
host that forwards packets between its links (ip_forward), and a host that
rewrites the pods' source address to its own uplink address on the way out
(iptables MASQUERADE) -- and back on the replies (conntrack remembers).

The internet here is one more namespace, on documentation addresses: the
host's uplink 192.0.2.1 faces the ISP router 192.0.2.254, and the server
203.0.113.10 lives behind it. Nothing leaves the lab.
"""

from cnilab.core.netns import ip_of
from cnilab.observe.probes import EchoServer, assert_ping
from cnilab.teach.recipe import Recipe
from cnilab.observe.trace import Trace, captured

recipe = Recipe(5, "egress: default route, forwarding and MASQUERADE to a simulated internet", base=3, here=__file__)

HINTS = [
    "pod_routes: each pod needs `pod.add_route(\"default\", via=GATEWAY_IP)`: everything off-subnet goes to the bridge.",
    "forwarding: `host.set_sysctl(\"net.ipv4.ip_forward\", 1)` -- in the host namespace, never the machine's.",
    "masquerade: `host.iptables(\"-A\", *rule, table=\"nat\")` with rule = (\"POSTROUTING\", \"-s\", POD_SUBNET, "
    "\"-o\", uplink.name, \"-j\", \"MASQUERADE\"); return the rule so a test can delete it.",
]
host, bridge, pods = recipe.reuse("host", "bridge", "pods")

POD_SUBNET = "10.0.3.0/24"
GATEWAY_IP = "10.0.3.1"
UPLINK_IP, ISP_IP = "192.0.2.1/24", "192.0.2.254/24"
SERVER_IP = "203.0.113.10"
SERVER_PORT = 80


@recipe.fixture
def internet(lab):
    """Name: internet. Scope: function. Depends: lab.

    The outside world: a namespace holding the server address SERVER_IP and an echo server on SERVER_PORT.
    """
    inet = lab.netns("inet")
    inet.link("lo").add_address(f"{SERVER_IP}/32").up()
    EchoServer(inet, SERVER_PORT)
    return inet


@recipe.fixture
def uplink(lab, host, internet):
    """Name: uplink. Scope: function. Depends: lab, host, internet.

    The host's cable to the internet: `up0` (UPLINK_IP) in host <-> `eth0` (ISP_IP) in internet,
    and the host's own default route via the ISP. Returns the host end.
    """
    up, isp = host.veth("up0", internet, "eth0")
    up.add_address(UPLINK_IP).up()
    isp.add_address(ISP_IP).up()
    host.add_route("default", via=ip_of(ISP_IP))
    return up


@recipe.fixture
def pod_routes(lab, pods, bridge):
    """Name: pod_routes. Scope: function. Depends: lab, pods, bridge.

    Every pod sends what is not on its subnet to the gateway on the bridge.
    """
    # BEGIN SOLUTION: give every pod a default route via GATEWAY_IP
    for pod in pods.values():
        pod.add_route("default", via=GATEWAY_IP)
    # END SOLUTION
    return pods


@recipe.fixture
def forwarding(lab, host):
    """Name: forwarding. Scope: function. Depends: lab, host.

    The host routes packets between its links (net.ipv4.ip_forward=1, in the host namespace only).
    """
    # BEGIN SOLUTION: turn on IPv4 forwarding (net.ipv4.ip_forward) in the host namespace
    host.set_sysctl("net.ipv4.ip_forward", 1)
    # END SOLUTION
    return host


@recipe.fixture
def masquerade(lab, host, uplink):
    """Name: masquerade. Scope: function. Depends: lab, host, uplink.

    Pods' traffic leaving through the uplink gets the uplink's address as its source.
    Returns the rule (chain and match), so a test can take it away again with `-D`.
    """
    # BEGIN SOLUTION: MASQUERADE what comes from POD_SUBNET and leaves through the uplink (nat table, POSTROUTING); return the rule
    rule = ("POSTROUTING", "-s", POD_SUBNET, "-o", uplink.name, "-j", "MASQUERADE")
    host.iptables("-A", *rule, table="nat")
    # END SOLUTION
    return rule


@recipe.fixture
def egress(lab, pod_routes, forwarding, masquerade):
    """Name: egress. Scope: function. Depends: pod_routes, forwarding, masquerade (all three ingredients)."""
    return pod_routes


@recipe.trace
def source_rewrite(lab):
    """pod1 pings the server. On the bridge, before the host routes it, the packet carries pod1's private
    address; on the internet side, after MASQUERADE, it carries the host's uplink address -- and the
    reply comes back to the uplink, where conntrack turns it back towards pod1."""
    pod1, host, inet = lab.get("pod1"), lab.get("host"), lab.get("inet")
    ping, views = captured(lambda: assert_ping(pod1, SERVER_IP, count=1), (host, "br0"), (inet, "eth0"))
    from scapy.layers.inet import ICMP

    return Trace(ping.command, ping.output, views, result=ping, only=lambda p: ICMP in p)
