"""Stage 02 proofs: the cable exists, carries traffic both ways, and every ingredient matters."""

from cnilab.core.netns import ip_of
from cnilab.observe.probes import assert_no_ping, assert_ping
from cnilab.teach.recipe import stage_module

stage = stage_module(__file__)

HOST_IP, POD_IP = ip_of(stage.HOST_IP), ip_of(stage.POD_IP)


def test_each_end_lives_in_its_namespace_and_names_its_peer(veth, host, pod):
    host_end, pod_end = veth
    for end, name in ((host_end, "veth0"), (pod_end, "veth1")):
        assert end.name == host.lab.name(name), f"the {'host' if end is host_end else 'pod'} end is called {end.name}: it must be {name}"
    for end, home, other in ((host_end, host, pod), (pod_end, pod, host)):
        assert end.name in home.links(), (
            f"{end.name} should be in {home.short}; it is in {other.short if end.name in other.links() else 'neither'}: "
            f"create the pair with the peer born in the pod (`host.veth(\"veth0\", pod, \"veth1\")`)")
        assert end.name not in other.links(), f"{end.name} is in {other.short} as well as in {home.short}"
    h, p = host_end.state(), pod_end.state()
    assert (h.kind, p.kind) == ("veth", "veth"), f"both ends must be veths, are {h.kind} and {p.kind}"
    assert h.peer_index == p.index and p.peer_index == h.index, "the two ends are not each other's peer"
    assert h.peer_nsid is not None, "the peer should be in another namespace"


def test_addresses_and_links_are_up(veth):
    host_end, pod_end = veth
    for end, role, want in ((host_end, "host end", stage.HOST_IP), (pod_end, "pod end", stage.POD_IP)):
        assert end.addresses() == [want], f"{end.name} (the {role}) should hold {want}, holds {end.addresses() or 'nothing'}"
    for end, role in ((host_end, "host end"), (pod_end, "pod end")):
        assert end.state().up, f"{end.name} (the {role}) is down: bring it up (`.up()`)"
    for end, peer in ((host_end, pod_end), (pod_end, host_end)):
        st = end.state()
        assert st.lower_up, f"{end.name} is up but has no carrier ({st.operstate}): its peer {peer.name} is down"


def test_ping_both_ways(lab, veth):
    there, back = stage.ping_both_ways(lab).result
    assert (there.src, there.dst, back.src, back.dst) == ("host", POD_IP, "pod", HOST_IP), "the trace pinged the wrong way"
    assert there.received == there.sent == 3 and back.received == back.sent == 3, f"replies lost: {there}; {back}"


def test_deleting_one_end_deletes_the_peer(veth, pod):
    host_end, pod_end = veth
    assert pod_end.exists(), f"{pod_end.name} should exist before the test takes its peer away"
    host_end.delete()
    assert not host_end.exists(), f"{host_end.name} is still there after its deletion"
    assert not pod_end.exists(), "a veth end cannot exist alone: the peer should be gone too"


def test_link_down_means_no_ping(veth, pod):
    """Negative proof: first the ping works in this lab; then, with the host end down, the pod end loses
    carrier and nothing passes."""
    host_end, pod_end = veth
    assert_ping(pod, HOST_IP, count=1)
    host_end.down()
    assert not pod_end.state().lower_up, f"{pod_end.name} kept its carrier although its peer is down"
    assert_no_ping(pod, HOST_IP)


def test_no_address_means_no_ping(veth, pod):
    """Negative proof: first the ping works; without its address the pod has no route into the subnet."""
    _, pod_end = veth
    assert_ping(pod, HOST_IP, count=1)
    pod_end.del_address(stage.POD_IP)
    assert_no_ping(pod, HOST_IP)
