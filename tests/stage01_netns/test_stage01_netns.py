"""Stage 01 proofs: a new namespace starts empty, and namespaces do not see each other."""

import os

from cnilab.observe.probes import assert_no_ping, assert_ping
from cnilab.teach.recipe import stage_module

stage = stage_module(__file__)


def test_namespace_is_a_kernel_object(host, pod):
    """`ip netns add` bind-mounts a namespace at /run/netns/NAME; each is a distinct kernel namespace."""
    for ns, name in ((host, "host"), (pod, "pod")):
        assert ns.short == name, f"the `{name}` fixture made a namespace called {ns.short!r}: later stages ask for {name!r}"
    inodes = {os.stat(f"/run/netns/{ns.name}").st_ino for ns in (host, pod)}
    assert len(inodes) == 2, "host and pod are the same namespace"
    assert os.stat("/proc/self/ns/net").st_ino not in inodes, "a lab namespace is the machine's own namespace"


def test_new_namespace_holds_only_lo_and_it_is_down(pod):
    links = pod.link_states()
    assert [link.name for link in links] == ["lo"], f"a new namespace should hold only lo, found {[l.name for l in links]}"
    assert not links[0].up, "lo starts down in a new namespace"


def test_new_namespace_has_no_routes_and_no_firewall_rules(pod):
    assert pod.routes() == [], f"a new namespace has an empty routing table, found {pod.routes()}"
    for table in ("filter", "nat"):
        assert pod.iptables_rules(table) == [], f"a new namespace has no {table} rules"


def test_loopback_is_per_namespace(lab, host, pod):
    """Even 127.0.0.1 needs `lo` up -- in each namespace separately."""
    before, after = stage.loopback_is_per_namespace(lab).result
    assert before.received == 0 and after.ok, (str(before), str(after))
    assert not host.link("lo").state().up, "bringing the pod's lo up left the host's alone"


def test_link_made_in_host_is_invisible_in_pod_and_back(host, pod):
    made_in_host, _ = host.veth("vh")   # both ends in host
    made_in_pod, _ = pod.veth("vp")
    assert made_in_host.name in host.links(), f"{made_in_host.name} is missing from host, where it was made"
    assert made_in_host.name not in pod.links(), f"{made_in_host.name}, made in host, is visible in pod"
    assert made_in_pod.name in pod.links(), f"{made_in_pod.name} is missing from pod, where it was made"
    assert made_in_pod.name not in host.links(), f"{made_in_pod.name}, made in pod, is visible in host"


def test_the_same_address_can_exist_in_both(host, pod):
    """Two namespaces have separate address spaces: the same IP in each, no conflict, no contact."""
    for ns in (host, pod):
        end, other = ns.veth("v0")
        end.add_address("10.0.1.1/24").up()
        other.up()
        assert ns.owns("10.0.1.1"), f"{ns.short} should hold 10.0.1.1 although the other namespace holds it too"
    host.link("v0p").add_address("10.0.1.2/24")
    assert host.owns("10.0.1.2") and not pod.owns("10.0.1.2"), "10.0.1.2 was added in host only"
    host.link("lo").up()  # a namespace reaches even its own addresses only through its lo
    assert_ping(host, "10.0.1.2", count=1)  # the positive: in host the address answers
    assert_no_ping(pod, "10.0.1.2")


def test_firewall_rule_stays_in_its_namespace(host, pod):
    host.iptables("-A", "INPUT", "-p", "icmp", "-j", "DROP")
    assert any("icmp" in rule and "DROP" in rule for rule in host.iptables_rules()), (
        f"the rule just added is missing from host: {host.iptables_rules()}")
    assert pod.iptables_rules() == [], "a rule added in host leaked into pod"
