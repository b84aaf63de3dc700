"""Stage 02 -- a veth pair connects the host to a pod.

A veth pair is a virtual cable: two interfaces, and whatever is sent into one
comes out of the other. Put one end in the host namespace and the other in
the pod namespace, give both an address in the same subnet, bring both up,
and the two namespaces can talk.
"""

from cnilab.core.netns import ip_of
from cnilab.observe.probes import assert_ping
from cnilab.teach.recipe import Recipe
from cnilab.observe.trace import Trace

recipe = Recipe(2, "a veth pair connects the host to a pod", base=1, here=__file__)

HINTS = [
    "`host.veth(\"veth0\", pod, \"veth1\")` creates the pair with veth1 born in pod and returns (host_end, pod_end).",
    "Addresses keep their prefix length: `host_end.add_address(HOST_IP)` with HOST_IP = \"10.0.2.1/24\" also adds the subnet route.",
    "Every new link starts down. `.up()` on both ends -- and add_address() returns the link, so you can chain.",
    "In shell: ip -n HOST link add veth0 type veth peer name veth1 netns POD; ip -n HOST addr add 10.0.2.1/24 dev veth0; "
    "ip -n HOST link set veth0 up (and the same for veth1 in POD).",
]
host, pod = recipe.reuse("host", "pod")

HOST_IP = "10.0.2.1/24"
POD_IP = "10.0.2.2/24"


@recipe.fixture
def veth(lab, host, pod):
    """Name: veth. Scope: function. Depends: lab, host, pod.

    Returns (host_end, pod_end): `veth0` in host with HOST_IP, `veth1` in pod with POD_IP, both up.
    """
    # BEGIN SOLUTION: create the veth pair veth0 (in host) <-> veth1 (in pod), give veth0 HOST_IP and veth1 POD_IP, bring both up
    host_end, pod_end = host.veth("veth0", pod, "veth1")
    host_end.add_address(HOST_IP).up()
    pod_end.add_address(POD_IP).up()
    # END SOLUTION
    return host_end, pod_end


@recipe.trace
def ping_both_ways(lab):
    """The host pings the pod, then the pod pings the host: the cable carries traffic both ways."""
    host, pod = lab.get("host"), lab.get("pod")
    there = assert_ping(host, ip_of(POD_IP), count=3)
    back = assert_ping(pod, ip_of(HOST_IP), count=3)
    return Trace(f"{there.command} && {back.command}", there.output + back.output, result=(there, back))
