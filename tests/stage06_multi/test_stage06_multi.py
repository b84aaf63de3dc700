"""Stage 06 proofs: pods talk across nodes through VXLAN, the wire shows the wrapping, MTU and FDB matter."""

import os

import pytest

from cnilab.observe.diagnose import why_unreachable
from cnilab.observe.probes import EchoServer, assert_no_ping, assert_ping, ping, tcp_roundtrip
from cnilab.teach.recipe import stage_module

stage = stage_module(__file__)
NODES, POD_MTU, VNI, VXLAN_PORT, ZERO_MAC = stage.NODES, stage.POD_MTU, stage.VNI, stage.VXLAN_PORT, stage.ZERO_MAC
add_node = stage.add_node


def pod(cluster, n, k):
    return cluster[n - 1].pods[f"n{n}p{k}"]


def test_pods_talk_across_nodes_by_ping_and_tcp(cluster, mode):
    pairs = [((1, 1), (2, 1)), ((2, 2), (3, 1)), ((3, 2), (1, 2))]
    for (a, b) in pairs:
        (src, _), (_, dst_ip) = pod(cluster, *a), pod(cluster, *b)
        assert_ping(src, dst_ip, count=2)
    (server, server_ip), (client, _) = pod(cluster, 3, 1), pod(cluster, 1, 1)
    EchoServer(server, 8080)
    payload = os.urandom(64 * 1024)
    assert tcp_roundtrip(client, server_ip, 8080, payload) == payload, "the echo across nodes came back changed"


def test_underlay_carries_vxlan_between_pod_addresses(lab, cluster, mode, underlay):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.vxlan import VXLAN

    (_, src_ip), (_, dst_ip) = pod(cluster, 1, 1), pod(cluster, 2, 1)
    cap = stage.vxlan_wrap(lab).view("wire ul0")
    wrapped = [p for p in cap.packets if UDP in p and p[UDP].dport == VXLAN_PORT and VXLAN in p]
    ports = sorted({node.ns.vxlan_info(node.vtep)["port"] for node in cluster})
    assert wrapped, (f"no VXLAN on UDP port {VXLAN_PORT} on the underlay (the nodes' VXLAN devices send to UDP port "
                     f"{', '.join(map(str, ports))}):\n{cap.summary()}")
    vnis = {p[VXLAN].vni for p in wrapped}
    assert vnis == {VNI[mode]}, f"the underlay carries VNI {sorted(vnis)}, the overlay's VNI is {VNI[mode]}"
    # the ping itself; other frames (IPv6 link-local chatter flooded in p2p mode) may come from any node
    ping = [p for p in wrapped if IP in p[VXLAN].payload and {p[VXLAN].payload[IP].src, p[VXLAN].payload[IP].dst} == {src_ip, dst_ip}]
    assert ping, f"no inner packet between {src_ip} and {dst_ip}:\n{cap.summary()}"
    nodes = (cluster[0].ip, cluster[1].ip)
    assert {(p[IP].src, p[IP].dst) for p in ping} == {nodes, nodes[::-1]}, \
        "the outer addresses of the ping must be exactly the two nodes' underlay addresses"
    assert not [p for p in cap.packets if IP in p and not (UDP in p) and p[IP].src == src_ip], \
        "a pod address appeared unwrapped on the underlay"


def test_vxlan_device_reads_back_over_netlink(cluster, mode):
    for node in cluster:
        info = node.ns.vxlan_info(node.vtep)
        want = {"vni": VNI[mode], "port": VXLAN_PORT, "local": node.ip}
        assert {k: info[k] for k in want} == want, f"{node.vtep.name} in {node.ns.short}: VNI/UDP port/local are {info}, want {want}"
        assert info["learning"] is (mode == "p2p"), (
            f"{node.vtep.name} in {node.ns.short}: learning is {'on' if info['learning'] else 'off'}; a bridged (p2p) VTEP "
            "learns, a flannel-style routed one has learning off (`nolearning`, learning=False): its entries are permanent")


@pytest.mark.parametrize("mode", ["routed"], indirect=True)
def test_every_cable_end_a_node_receives_on_steers_each_flow_to_one_cpu(cluster, underlay, mode):
    cpus = os.sched_getaffinity(0)
    for node in cluster:
        ends = [(node.ns, node.ns.link("eth0")), (underlay.ns, underlay.ns.link(f"ul-n{node.n}"))]
        ends += [(node.ns, port) for port in node.ports.values()]
        ends += [(pod_ns, pod_ns.link("eth0")) for pod_ns, _ in node.pods.values()]
        for ns, link in ends:
            assert ns.flow_steering(link) == cpus, f"{link.name} in {ns.short}: RPS is not on every CPU"


def test_mtu_is_underlay_minus_50_and_df_ping_fits_exactly(cluster, mode):
    (src, _), (_, dst_ip) = pod(cluster, 1, 1), pod(cluster, 2, 1)
    underlay_mtu = cluster[0].ns.link("eth0").state().mtu
    assert POD_MTU == underlay_mtu - 50, f"POD_MTU is {POD_MTU}: it must be the underlay's MTU {underlay_mtu} - 50 (VXLAN's overhead)"
    for node in cluster:
        for name, port in node.ports.items():
            pod_ns = node.pods[name][0]
            for end, where in ((pod_ns.link("eth0"), f"the pod's eth0 in {pod_ns.short}"), (port, f"its host end {port.name}")):
                mtu = end.state().mtu
                assert mtu == POD_MTU, (f"the MTU of {where} is {mtu}: both ends of a pod's veth need MTU {POD_MTU} "
                                        f"(underlay {underlay_mtu} - 50 for VXLAN), or big packets are lost in the tunnel")
    largest = POD_MTU - 28  # IP 20 + ICMP 8
    assert_ping(src, dst_ip, count=1, size=largest, dont_fragment=True)
    assert_no_ping(src, dst_ip, size=largest + 1, dont_fragment=True)


def test_a_pod_mtu_above_the_overlay_mtu_loses_big_packets(cluster, mode):
    """Negative proof: a pod left at the underlay's 1500 sends frames the VXLAN device cannot carry."""
    (src, _), (_, dst_ip) = pod(cluster, 1, 1), pod(cluster, 2, 1)
    cluster[0].ports["n1p1"].set_mtu(1500)
    src.link("eth0").set_mtu(1500)
    assert_ping(src, dst_ip, count=1, size=POD_MTU - 28, dont_fragment=True)
    assert_no_ping(src, dst_ip, size=1500 - 28, dont_fragment=True)


@pytest.mark.parametrize("mode", ["p2p"], indirect=True)
def test_p2p_floods_unknown_frames_to_every_peer_by_unicast(cluster, mode):
    for node in cluster:
        flood = sorted(dst for mac, dst in node.ns.fdb(node.vtep) if mac == ZERO_MAC)
        want = sorted(peer.ip for peer in cluster if peer is not node)
        assert flood == want, f"{node.vtep.name} in {node.ns.short} floods to {flood} (FDB all-zeros entries), want every peer: {want}"


def overlay_entries(node):
    routes = [r for r in node.ns.routes() if r["dev"] == node.vtep.name]
    neigh = [n for n in node.ns.neighbours(node.vtep) if n[2] == 0x80]  # NUD_PERMANENT
    fdb = [e for e in node.ns.fdb(node.vtep) if e[1]]
    return routes, neigh, fdb


@pytest.mark.parametrize("mode", ["routed"], indirect=True)
def test_routed_adding_a_node_adds_exactly_three_entries_on_each_node(lab, cluster, underlay, mode, node_kind):
    before = [overlay_entries(node) for node in cluster]
    for node, (routes, neigh, fdb) in zip(cluster, before):
        assert (len(routes), len(neigh), len(fdb)) == (NODES - 1,) * 3, (
            f"{node.ns.short} has {len(routes)} routes, {len(neigh)} permanent ARP entries and {len(fdb)} FDB entries on "
            f"its VTEP: one of each per peer ({NODES - 1}) is needed")
        assert all(mac != ZERO_MAC for mac, _ in fdb), "routed mode must not flood"
    new = add_node(lab, underlay, NODES + 1, mode, cluster, node_kind)
    for node, old in zip(cluster[:NODES], before):
        routes, neigh, fdb = overlay_entries(node)
        added = [r for r in routes if r not in old[0]]
        assert added == [{"dst": new.subnet, "gateway": new.vtep_ip, "dev": node.vtep.name}], f"{node.ns.short} added routes {added}"
        added = [n[:2] for n in neigh if n not in old[1]]
        assert added == [(new.vtep_ip, new.vtep.state().mac)], f"{node.ns.short} added permanent ARP entries {added}"
        added = [e for e in fdb if e not in old[2]]
        assert added == [(new.vtep.state().mac, new.ip)], f"{node.ns.short} added FDB entries {added}, want the new VTEP's MAC -> {new.ip}"
    (src, _), (_, dst_ip) = pod(cluster, 1, 1), pod(cluster, NODES + 1, 2)
    assert_ping(src, dst_ip, count=1)


@pytest.mark.parametrize("mode", ["routed"], indirect=True)
def test_routed_removing_a_peers_fdb_entry_breaks_exactly_that_peer(cluster, mode):
    node1, node2 = cluster[0], cluster[1]
    mac2 = node2.vtep.state().mac
    node1_reaches_node2(cluster)
    node1.ns.del_fdb(node1.vtep, mac2, node2.ip)
    assert_node2_cut_off_from_node1(cluster, "no FDB entry", node2.ip)
    assert_ping(pod(cluster, 1, 1)[0], pod(cluster, 3, 1)[1], count=1)


def node1_reaches_node2(cluster):
    """The positive a negative proof starts from: in this very lab, node1's pod reaches node2's pod."""
    assert_ping(pod(cluster, 1, 1)[0], pod(cluster, 2, 1)[1], count=1)


def assert_node2_cut_off_from_node1(cluster, *explained_by):
    """node1's pod cannot reach node2's pod, and the diagnosis names the missing entry."""
    src, dst_ip = pod(cluster, 1, 1)[0], pod(cluster, 2, 1)[1]
    assert_no_ping(src, dst_ip)
    msg = why_unreachable(src, dst_ip)
    assert all(word in msg for word in explained_by), msg


@pytest.mark.parametrize("mode", ["p2p"], indirect=True)
def test_p2p_without_the_flood_entry_to_a_peer_its_pods_are_cut_off_and_the_diagnosis_says_why(cluster, mode):
    node1, node2 = cluster[0], cluster[1]
    node1_reaches_node2(cluster)
    node1.ns.del_fdb(node1.vtep, ZERO_MAC, node2.ip)
    # what the positive ping taught node1 (the pod's MAC behind node2, learned by the VTEP; its ARP answer)
    # would carry the next ping without the flood entry: forget it, as a fresh segment has nothing learned
    for mac, dst in node1.ns.fdb(node1.vtep):
        if mac != ZERO_MAC and dst == node2.ip:
            node1.ns.del_fdb(node1.vtep, mac, dst)
    src = pod(cluster, 1, 1)[0]
    src.flush_neighbours(src.link("eth0"))
    assert_node2_cut_off_from_node1(cluster, "no FDB entry", node2.ip)


@pytest.mark.parametrize("mode", ["routed"], indirect=True)
def test_routed_without_the_permanent_arp_entry_the_diagnosis_names_it(cluster, mode):
    node1, node2 = cluster[0], cluster[1]
    node1_reaches_node2(cluster)
    node1.ns.del_neighbour(node2.vtep_ip, node1.vtep)
    assert_node2_cut_off_from_node1(cluster, "permanent ARP entry", node2.vtep_ip)


@pytest.mark.parametrize("mode", ["routed"], indirect=True)
def test_routed_node_learns_the_pod_mtu_instead_of_losing_big_packets(cluster, mode):
    """Both veth ends carry POD_MTU: then the node's bridge has it too, and a node sending a too-big
    packet to its own pod gets told (EMSGSIZE), instead of the pod's end silently dropping it."""
    node = cluster[0]
    _, pod_ip = node.pods["n1p1"]
    assert node.bridge.state().mtu == POD_MTU, "the bridge takes the smallest MTU of its ports"
    assert_ping(node.ns, pod_ip, count=1, size=POD_MTU - 28, dont_fragment=True)
    too_big = ping(node.ns, pod_ip, count=1, size=1500 - 28, dont_fragment=True, wait=0.5)
    assert too_big.received == 0 and "too long" in too_big.error, too_big
