"""Stage 01 -- network namespaces.

A network namespace is a separate copy of the kernel's network stack: its own
links, addresses, routes, neighbour tables, sysctls and firewall rules. A
container's network is nothing more than a namespace. Here you create two.
"""

from cnilab.recipe import Recipe

recipe = Recipe(1, "network namespaces isolate links, routes and firewall rules")

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
