"""Stage 02 proofs: the cable exists, carries traffic both ways, and every ingredient matters."""

from cnilab.core.netns import ip_of
from cnilab.observe.probes import assert_no_ping
from cnilab.teach.recipe import stage_module

stage = stage_module(__file__)

HOST_IP, POD_IP = ip_of(stage.HOST_IP), ip_of(stage.POD_IP)


def test_each_end_lives_in_its_namespace_and_names_its_peer(veth, host, pod):
    host_end, pod_end = veth
    h, p = host_end.state(), pod_end.state()
    assert (h.kind, p.kind) == ("veth", "veth")
    assert host_end.name in host.links() and host_end.name not in pod.links()
    assert pod_end.name in pod.links() and pod_end.name not in host.links()
    assert h.peer_index == p.index and p.peer_index == h.index, "the two ends are not each other's peer"
    assert h.peer_nsid is not None, "the peer should be in another namespace"


def test_addresses_and_links_are_up(veth):
    host_end, pod_end = veth
    assert host_end.addresses() == [f"{HOST_IP}/24"]
    assert pod_end.addresses() == [f"{POD_IP}/24"]
    for end in veth:
        st = end.state()
        assert st.up and st.lower_up, f"{end} should be up with carrier, is {st.operstate}"


def test_ping_both_ways(lab, veth):
    there, back = stage.ping_both_ways(lab).result
    assert (there.src, there.dst, back.src, back.dst) == ("host", POD_IP, "pod", HOST_IP)
    assert there.received == there.sent == 3 and back.received == back.sent == 3


def test_deleting_one_end_deletes_the_peer(veth, pod):
    host_end, pod_end = veth
    host_end.delete()
    assert not host_end.exists()
    assert not pod_end.exists(), "a veth end cannot exist alone: the peer should be gone too"


def test_link_down_means_no_ping(veth, pod):
    """Negative proof: the host end down -> the pod end loses carrier and nothing passes."""
    host_end, pod_end = veth
    host_end.down()
    assert not pod_end.state().lower_up
    assert_no_ping(pod, HOST_IP)


def test_no_address_means_no_ping(veth, pod):
    """Negative proof: without an address the pod has no route into the subnet."""
    _, pod_end = veth
    pod_end.del_address(f"{POD_IP}/24")
    assert_no_ping(pod, HOST_IP)
