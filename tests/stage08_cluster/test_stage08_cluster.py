"""Stage 08 proofs: leases, the datapath between nodes, and what the agent does when nodes and the store come and go."""

import ipaddress
import json

from cnilab.observe.probes import EchoServer, assert_ping, tcp_roundtrip
from cnilab.observe.trace import captured
from cnilab.teach.recipe import stage_module

stage = stage_module(__file__)


def test_every_node_leases_its_own_subnet_inside_the_cluster_cidr(cluster, store, lab):
    subnets = [node.subnet for node in cluster]
    assert len(set(subnets)) == len(cluster), f"two nodes hold one subnet: {subnets}"
    for node, subnet in zip(cluster, subnets):
        assert ipaddress.ip_network(subnet).subnet_of(ipaddress.ip_network(stage.CLUSTER_CIDR)), \
            f"{node.name}'s subnet {subnet} is outside the cluster CIDR {stage.CLUSTER_CIDR}"
    keys = stage.stored_leases(store, lab)
    owners = {json.loads(v)["node"]: k.rsplit("/", 1)[1].replace("-", "/") for k, v in keys.items()}
    assert owners == {node.name: node.subnet for node in cluster}, \
        f"the store's leases {owners} are not the subnets the nodes' conflists use"


def test_a_pod_reaches_a_pod_on_another_node_inside_vxlan_with_its_own_address(cluster, pods, lab):
    src, dst = pods["n1p1"], pods["n3p1"]
    for pod, node in ((src, cluster[0]), (dst, cluster[2])):
        assert ipaddress.ip_address(pod.ip) in ipaddress.ip_network(node.subnet), \
            f"CRI reports {pod.name} at {pod.ip}, outside its node's lease {node.subnet}"
    server = EchoServer(dst.ns, 7000)
    ping, views = captured(lambda: assert_ping(src.ns, dst.ip, count=2), (lab.get("wire"), "ul0"))
    from scapy.layers.inet import IP, UDP
    from scapy.layers.vxlan import VXLAN

    wrapped = [p for p in views[0].packets if UDP in p and p[UDP].dport == stage.VXLAN_PORT and VXLAN in p]
    assert wrapped, f"no VXLAN (UDP {stage.VXLAN_PORT}) on the underlay while {src.name} pinged {dst.name}: {views[0].summary()}"
    inner = [p[VXLAN][IP] for p in wrapped if IP in p[VXLAN]]
    rewritten = sorted({i.src for i in inner if i.dst == dst.ip and i.src != src.ip})
    assert any(i.src == src.ip and i.dst == dst.ip for i in inner), \
        f"the VXLAN frames do not carry {src.ip} -> {dst.ip} inside: {[(i.src, i.dst) for i in inner]}" + (
            f"; the source became {rewritten[0]}: pod-to-pod traffic is masqueraded (SNAT), it must keep its pod address"
            if rewritten else "")
    assert {p[VXLAN].vni for p in wrapped} == {stage.VNI}, f"VXLAN with VNI {[p[VXLAN].vni for p in wrapped]}, expected {stage.VNI}"
    assert tcp_roundtrip(src.ns, dst.ip, 7000, b"hello node3") == b"hello node3", "the TCP echo across nodes came back wrong"
    assert server.peers == [src.ip], f"the pod on node3 saw the connection from {server.peers}, not from the pod {src.ip} (SNAT between pods)"


def test_traffic_to_the_internet_leaves_with_the_node_address(cluster, pods, internet):
    src = pods["n2p1"]
    echoed, views = captured(lambda: tcp_roundtrip(src.ns, stage.SERVER_IP, stage.SERVER_PORT, b"out"), (internet, "eth0"))
    assert echoed == b"out", "the pod's TCP echo through the internet's server came back wrong"
    from scapy.layers.inet import IP, TCP

    sources = {p[IP].src for p in views[0].packets if TCP in p and p[TCP].dport == stage.SERVER_PORT}
    assert sources == {cluster[1].ip}, \
        f"the internet saw {sources or 'nothing'}, not node2's address {cluster[1].ip}: traffic leaving the cluster must be masqueraded"


def test_removing_pods_and_nodes_leaves_nothing(lab, cluster, pods, store):
    for node in cluster:
        for pod in list(node.pods.values()):
            node.kubelet.stop_pod(pod.sandbox)
            node.kubelet.remove_pod(pod.sandbox)
    ipam = [f for node in cluster for f in (node.kubelet.work / "ipam" / stage.NETWORK).glob("10.*")]
    assert ipam == [], f"IPAM files remain after every pod was removed: {ipam}"
    for node in cluster:
        node.agent.leave()
        assert node.ns.iptables_rules("nat") == [], f"{node.name} keeps NAT rules after it left: {node.ns.iptables_rules('nat')}"
        assert not node.vtep.exists(), f"{node.name} keeps its VTEP after it left"
    for node in cluster:
        assert [l for l in node.ns.links() if l.startswith("vc")] == [], f"pod cables remain on {node.name}: {node.ns.links()}"
    assert stage.stored_leases(store, lab) == {}, f"etcd keys of the run remain after every node left: {sorted(stage.stored_leases(store, lab))}"
