"""Stage 05 proofs: pods reach the internet, only ever seen as the host, and each ingredient is needed."""

import os

import pytest

from cnilab.observe.capture import capture
from cnilab.observe.diagnose import why_unreachable
from cnilab.observe.probes import assert_no_ping, assert_ping, tcp_roundtrip
from cnilab.core.netns import ip_of
from cnilab.teach.recipe import load_conftest, stage_module

stage = stage_module(__file__)

SERVER, PORT = stage.SERVER_IP, stage.SERVER_PORT
UPLINK, POD1 = ip_of(stage.UPLINK_IP), ip_of(load_conftest(stage.recipe.base.path).POD_IPS["pod1"])


def ip_packets(cap):
    from scapy.layers.inet import IP
    return [p[IP] for p in cap.packets if IP in p]


def test_pod_reaches_the_internet_by_ping_and_tcp(egress, internet):
    for pod in egress.values():
        assert_ping(pod, SERVER, count=2)
    payload = os.urandom(4096)
    assert tcp_roundtrip(egress["pod2"], SERVER, PORT, payload) == payload, "the server's echo came back changed"


def test_internet_sees_only_the_uplink_address(lab, egress, internet):
    trace = stage.source_rewrite(lab)
    before, after = ip_packets(trace.view("host br0")), ip_packets(trace.view("inet eth0"))
    assert any(p.src == POD1 and p.dst == SERVER for p in before), "on the bridge the pod's own address is the source"
    inbound = [p for p in after if p.dst == SERVER]
    assert inbound, f"no packet reached the internet:\n{trace.view('inet eth0').summary()}"
    assert {p.src for p in inbound} == {UPLINK}, f"the internet saw sources {sorted({p.src for p in inbound})}"
    assert not [p for p in after if POD1 in (p.src, p.dst)], "a pod's private address leaked to the internet"
    with capture(internet, "eth0") as cap:  # TCP is rewritten the same way
        tcp_roundtrip(egress["pod1"], SERVER, PORT, b"who am I?")
    tcp_sources = {p.src for p in ip_packets(cap) if p.dst == SERVER}
    assert tcp_sources == {UPLINK}, f"TCP to the server left with sources {sorted(tcp_sources)}, not only {UPLINK}"


def test_conntrack_holds_the_translated_flow(egress, host, internet):
    from pyroute2 import Conntrack

    tcp_roundtrip(egress["pod1"], SERVER, PORT, b"remember me")

    def flows():
        with Conntrack() as ct:
            return [((e.tuple_orig.saddr, e.tuple_orig.daddr), (e.tuple_reply.saddr, e.tuple_reply.daddr))
                    for e in ct.dump_entries()]

    entries = host.call(flows)
    assert ((POD1, SERVER), (SERVER, UPLINK)) in entries, (
        f"expected orig {POD1}->{SERVER} with reply {SERVER}->{UPLINK} (the NAT), found {entries}")
    assert not internet.call(flows), "the internet namespace does no NAT and tracks nothing of the pod"


def test_without_forwarding_nothing_is_forwarded(egress, host, internet):
    """Negative proof: the pod reaches the server; then, with forwarding off, nothing crosses the host."""
    assert_ping(egress["pod1"], SERVER, count=1)
    host.set_sysctl("net.ipv4.ip_forward", 0)
    with capture(internet, "eth0") as cap:
        assert_no_ping(egress["pod1"], SERVER)
    assert not [p for p in ip_packets(cap) if p.dst == SERVER], "a packet crossed a host that does not forward"
    msg = why_unreachable(egress["pod1"], SERVER)
    assert "ip_forward" in msg, msg


def test_without_masquerade_the_internet_sees_the_private_source_and_replies_never_return(egress, host, masquerade, internet):
    """Negative proof: the pod reaches the server; then, without the MASQUERADE rule, the request arrives
    with the pod's private source and no reply returns."""
    assert_ping(egress["pod1"], SERVER, count=1)
    host.iptables("-D", *masquerade, table="nat")
    from scapy.layers.inet import ICMP

    with capture(internet, "eth0") as cap:
        assert_no_ping(egress["pod1"], SERVER)
    seen = ip_packets(cap)
    assert any(p.src == POD1 and p.dst == SERVER for p in seen), f"the request should arrive untranslated:\n{cap.summary()}"
    assert not any(p.dst == POD1 and ICMP in p and p[ICMP].type == 0 for p in seen), "an echo reply found its way back"
    msg = why_unreachable(egress["pod1"], SERVER)
    assert "MASQUERADE" in msg, msg


def test_without_a_default_route_the_pod_cannot_leave(egress, internet):
    """Negative proof: pod1 reaches the server; then, without its default route, it cannot even send."""
    assert_ping(egress["pod1"], SERVER, count=1)
    egress["pod1"].del_route("default")
    with pytest.raises(OSError) as err:
        tcp_roundtrip(egress["pod1"], SERVER, PORT, b"x", timeout=1)
    assert err.value.errno == 101, f"expected ENETUNREACH, got {err.value!r}"  # Network is unreachable
    assert_no_ping(egress["pod1"], SERVER)
    msg = why_unreachable(egress["pod1"], SERVER)
    assert "default route" in msg, msg
    assert_ping(egress["pod2"], SERVER, count=1)


def test_rules_are_tagged_and_live_only_in_the_host_namespace(egress, host, lab, internet):
    rules = host.iptables_rules("nat")
    assert any("MASQUERADE" in r and lab.prefix.rstrip("-") in r for r in rules), (
        f"no MASQUERADE rule tagged with the lab's prefix {lab.prefix.rstrip('-')} in host's nat table: {rules}")
    for ns in (*egress.values(), internet):
        assert ns.iptables_rules("nat") == [], f"{ns.short} has nat rules, only the host should: {ns.iptables_rules('nat')}"
