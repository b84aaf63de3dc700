"""Stage 01 -- network namespaces.

A network namespace is a separate copy of the kernel's network stack: its own
links, addresses, routes, neighbour tables, sysctls and firewall rules. A
container's network is nothing more than a namespace. Here you create two.
"""

from cnilab.observe.probes import ping
from cnilab.teach.recipe import Recipe
from cnilab.observe.trace import Trace

recipe = Recipe(1, "network namespaces isolate links, routes and firewall rules", here=__file__)

HINTS = [
    "A network namespace is one call on the lab: `lab.netns(\"host\")`. It runs `ip netns add <prefix>host`.",
    "The lab puts its run prefix in front of every name, so two runs never collide; you only choose the short name.",
    "Return the Namespace: the tests read its links, routes and rules over netlink.",
]


@recipe.fixture
def host(lab):
    """Name: host. Scope: function. Depends: lab.

    The lab's stand-in for the machine: a namespace, so the real machine is never touched.
    """
    # BEGIN SOLUTION: create the namespace `host` (lab.netns) and return it
    return lab.netns("host")
    # END SOLUTION


@recipe.fixture
def pod(lab):
    """Name: pod. Scope: function. Depends: lab.

    A second namespace: what a container runtime creates for each pod.
    """
    # BEGIN SOLUTION: create the namespace `pod` and return it
    return lab.netns("pod")
    # END SOLUTION


@recipe.trace
def loopback_is_per_namespace(lab):
    """A new namespace cannot even reach itself: its own `lo` is down. The pod pings 127.0.0.1, brings
    its `lo` up, pings again -- and the host's `lo` is still down: each namespace has its own."""
    pod = lab.get("pod")
    before = ping(pod, "127.0.0.1", count=1, wait=0.5)
    pod.link("lo").up()
    after = ping(pod, "127.0.0.1", count=1)
    return Trace(f"{before.command} ; ip -n {pod.name} link set lo up ; {after.command}",
                 before.output + after.output, result=(before, after))
