"""Diagnosis messages: each broken topology is explained by its missing step (needs root)."""

from cnilab.observe.diagnose import why_unreachable
from cnilab.observe.probes import assert_ping

POD1, POD2, GW = "10.0.3.11", "10.0.3.12", "10.0.3.1"


def test_healthy_path_has_no_culprit(bridged):
    assert_ping(bridged["pods"]["pod1"], POD2, count=1)
    assert "all look right" in why_unreachable(bridged["pods"]["pod1"], POD2)


def test_no_address(lab):
    host, pod = lab.netns("host"), lab.netns("pod")
    a, b = host.veth("v0", pod, "v1")
    a.add_address("10.0.2.1/24").up()
    b.up()
    assert "pod has no IPv4 address" in why_unreachable(pod, "10.0.2.1")


def test_own_link_down(bridged):
    pod1 = bridged["pods"]["pod1"]
    pod1.link("eth0").down()
    msg = why_unreachable(pod1, POD2)
    assert "eth0 in pod1 is down" in msg and "link set" in msg and "up" in msg


def test_veth_peer_down(bridged):
    bridged["host"].link("h-pod1").down()
    msg = why_unreachable(bridged["pods"]["pod1"], POD2)
    assert "no carrier" in msg and "h-pod1" in msg


def test_far_port_down(bridged):
    bridged["host"].link("h-pod2").down()
    msg = why_unreachable(bridged["pods"]["pod1"], POD2)
    assert "h-pod2" in msg and "down" in msg


def test_bridge_down(bridged):
    bridged["bridge"].down()
    assert "bridge" in why_unreachable(bridged["pods"]["pod1"], POD2)


def test_port_not_attached(bridged):
    bridged["host"].link("h-pod2").nomaster()
    msg = why_unreachable(bridged["pods"]["pod1"], POD2)
    assert "h-pod2" in msg and "not attached to bridge" in msg and "master" in msg


def test_no_route_outside_the_subnet(bridged):
    msg = why_unreachable(bridged["pods"]["pod1"], "203.0.113.10")
    assert "no route to 203.0.113.10" in msg and "default" in msg


def test_gateway_address_missing(bridged):
    pod1 = bridged["pods"]["pod1"]
    pod1.add_route("default", via=GW)
    bridged["bridge"].del_address(f"{GW}/24")
    assert f"gateway address {GW}" in why_unreachable(pod1, "203.0.113.10")


def _routed(bridged):
    """pod1 -> host (router) -> far namespace on a second veth: two subnets."""
    lab, host, pod1 = bridged["lab"], bridged["host"], bridged["pods"]["pod1"]
    far = lab.netns("far")
    h, f = host.veth("h-far", far, "eth0")
    h.add_address("10.0.9.1/24").up()
    f.add_address("10.0.9.2/24").up()
    pod1.add_route("default", via=GW)
    return host, pod1, far


def test_forwarding_off(bridged):
    host, pod1, far = _routed(bridged)
    msg = why_unreachable(pod1, "10.0.9.2")
    assert "does not forward" in msg and "net.ipv4.ip_forward=1" in msg


def test_no_route_back(bridged):
    host, pod1, far = _routed(bridged)
    host.set_sysctl("net.ipv4.ip_forward", 1)
    msg = why_unreachable(pod1, "10.0.9.2")
    assert "far has no route back to 10.0.3.11" in msg
    far.add_route("default", via="10.0.9.1")
    assert_ping(pod1, "10.0.9.2", count=1)
