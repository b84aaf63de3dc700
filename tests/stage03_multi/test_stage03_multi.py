"""Stage 03 proofs: one L2 segment for all pods, flooding and learning, and what breaks it."""

from itertools import permutations

from cnilab.core.netns import ip_of
from cnilab.observe.probes import assert_no_ping, assert_ping, ping
from cnilab.observe.diagnose import where_is, why_unreachable
from cnilab.teach.recipe import stage_module

stage = stage_module(__file__)

IP = {**{name: ip_of(cidr) for name, cidr in stage.POD_IPS.items()}, "gateway": ip_of(stage.GATEWAY)}
AF_BRIDGE = 7


def test_bridge_holds_the_gateway_and_every_pod_port(bridge, ports):
    st = bridge.state()
    assert st.kind == "bridge", f"{bridge.name} is a {st.kind or 'plain'} link, not a bridge"
    assert st.up, f"bridge {bridge.name} is down: bring it up (`ip -n {bridge.ns.name} link set {bridge.name} up`)"
    assert bridge.addresses() == [stage.GATEWAY], (
        f"the bridge must hold the gateway {stage.GATEWAY}; it holds {bridge.addresses() or 'nothing'}, and the "
        f"gateway is {where_is(bridge.ns.lab, ip_of(stage.GATEWAY))}")
    for name, port in ports.items():
        assert port.state().master == st.index, (
            f"{port.name} (pod {name}) is not a port of {bridge.name}: set its master "
            f"(`ip -n {bridge.ns.name} link set {port.name} master {bridge.name}`)")


def test_make_bridge_builds_the_bridge_it_is_asked_for(lab, host):
    """Stage 06 asks make_bridge for `cni0`: the name and the gateway are parameters, not constants."""
    other = stage.make_bridge(lab, host, "10.0.9.1/24", name="brx")
    assert other.name == lab.name("brx"), f"make_bridge(name='brx') made {other.name}: use its `name` argument"
    assert other.addresses() == ["10.0.9.1/24"], f"make_bridge(gateway='10.0.9.1/24') gave it {other.addresses()}"


def test_all_pairs_ping(host, bridge, pods):
    members = {**pods, "gateway": host}
    failures = []
    for src, dst in permutations(members, 2):
        result = ping(members[src], IP[dst], count=1)
        if not result.ok:
            failures.append(f"{src} -> {dst}: {why_unreachable(members[src], IP[dst])}")
    assert not failures, "\n".join(failures)


def test_arp_request_is_flooded_to_other_pods(lab, pods):
    """pod1 asks "who has pod2?" as a broadcast: the bridge floods it, so pod3 hears it too."""
    from scapy.layers.l2 import ARP

    seen = stage.arp_flood(lab).view("pod3 eth0")
    asks = seen.matching(lambda p: ARP in p and p[ARP].op == 1 and p[ARP].pdst == IP["pod2"] and p[ARP].psrc == IP["pod1"])
    assert asks, f"pod3 did not see pod1's ARP request for pod2; it saw:\n{seen.summary()}"


def test_bridge_fdb_learns_each_pod_mac_on_its_port(host, bridge, pods, ports):
    for name in pods:
        assert_ping(pods[name], IP["gateway"], count=1)
    learned = {}
    for entry in host.ipr.fdb("dump", master=bridge.index):
        learned.setdefault(entry["ifindex"], set()).add(entry.get("NDA_LLADDR"))
    for name, pod in pods.items():
        mac = pod.link("eth0").state().mac
        port = ports[name]
        assert mac in learned.get(port.index, set()), f"the bridge did not learn {name}'s MAC {mac} on port {port.name}"


def test_detached_port_isolates_its_pod(pods, ports):
    """Negative proof: pod3 reaches pod1 and the gateway; then, off the bridge, neither."""
    assert_ping(pods["pod3"], IP["pod1"], count=1)
    assert_ping(pods["pod3"], IP["gateway"], count=1)
    ports["pod3"].nomaster()
    assert_no_ping(pods["pod3"], IP["pod1"])
    assert_no_ping(pods["pod3"], IP["gateway"])
    assert_ping(pods["pod1"], IP["pod2"], count=1)
    msg = why_unreachable(pods["pod3"], IP["pod1"])
    assert "not attached to bridge" in msg, msg


def test_bridge_down_cuts_every_pod(bridge, pods):
    """Negative proof: pod1 reaches pod2; then, with the switch down, it does not."""
    assert_ping(pods["pod1"], IP["pod2"], count=1)
    bridge.down()
    assert_no_ping(pods["pod1"], IP["pod2"])
    msg = why_unreachable(pods["pod1"], IP["pod2"])
    assert "bridge" in msg and "down" in msg, msg
