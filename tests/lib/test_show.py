"""`cnilab show`: the picture of each stage, read from the kernel, has the stage's nodes and edges (needs root)."""

import pytest

from cnilab.teach.recipe import load_stage
from cnilab.observe.topology import Topology

from .conftest import TESTS


def topology_of(lab, stage, **given):
    load_stage(stage, TESTS).build(lab, node_kind="netns", **given)
    return Topology.of(lab)


def test_stage01_two_namespaces_with_only_lo(lab):
    topo = topology_of(lab, 1)
    assert set(topo.namespaces) == {"host", "pod"}
    assert set(topo.ifaces) == {("host", "lo"), ("pod", "lo")} and not topo.edges
    assert not any(i.up for i in topo.ifaces.values()), "lo starts down in a new namespace"


def test_stage02_one_veth_between_host_and_pod(lab):
    topo = topology_of(lab, 2)
    assert topo.edges_of("veth") and topo.has("veth", ("host", "veth0"), ("pod", "veth1"))
    assert topo.ifaces[("host", "veth0")].addrs == ("10.0.2.1/24",)
    assert len(topo.edges) == 1


@pytest.mark.parametrize("stage", [3, 4])
def test_stage03_04_three_pods_on_the_bridge(lab, stage):
    topo = topology_of(lab, stage)
    assert topo.ifaces[("host", "br0")].kind == "bridge" and topo.ifaces[("host", "br0")].addrs == ("10.0.3.1/24",)
    for pod in ("pod1", "pod2", "pod3"):
        assert topo.has("veth", ("host", f"h-{pod}"), (pod, "eth0"))
        assert topo.has("port", ("host", f"h-{pod}"), ("host", "br0"))
    assert len(topo.edges_of("port")) == 3


def test_a_detached_port_disappears_from_the_picture(lab):
    topology_of(lab, 3)
    lab.get("host").link("h-pod3").nomaster()
    topo = Topology.of(lab)
    assert not topo.has("port", ("host", "h-pod3"), ("host", "br0"))
    assert topo.has("veth", ("host", "h-pod3"), ("pod3", "eth0")), "the cable is still there"


def test_stage05_uplink_to_the_internet_with_nat(lab):
    topo = topology_of(lab, 5)
    assert topo.has("veth", ("host", "up0"), ("inet", "eth0"))
    assert "NAT: MASQUERADE 10.0.3.0/24" in topo.ifaces[("host", "up0")].notes
    assert "default via 10.0.3.1 dev eth0" in topo.routes["pod1"]
    assert ("inet", "lo") in topo.ifaces, "the internet's server address lives on its lo"
    lab.get("host").iptables("-F", "POSTROUTING", table="nat")
    assert not Topology.of(lab).ifaces[("host", "up0")].notes, "no rule, no NAT mark"


@pytest.mark.parametrize("mode", ["p2p", "routed"])
def test_stage06_nodes_on_the_underlay_joined_by_vxlan(lab, mode):
    topo = topology_of(lab, 6, mode=mode)
    vtep = "vxlan0" if mode == "p2p" else "flannel1"
    for n in (1, 2, 3):
        assert topo.has("veth", ("wire", f"ul-n{n}"), (f"node{n}", "eth0"))
        assert topo.has("port", ("wire", f"ul-n{n}"), ("wire", "ul0"))
        assert topo.ifaces[(f"node{n}", vtep)].kind == "vxlan"
    for a, b in ((1, 2), (1, 3), (2, 3)):
        assert topo.has("vxlan", (f"node{a}", vtep), (f"node{b}", vtep))
    assert len(topo.edges_of("vxlan")) == 3
    assert topo.has("port", ("node1", vtep), ("node1", "cni0")) is (mode == "p2p")
    if mode == "routed":
        assert "10.244.2.0/24 via 10.244.2.0 dev flannel1" in topo.routes["node1"]


def test_stage07_the_pod_the_plugin_wired(lab):
    recipe = load_stage(7, TESTS)
    recipe.build(lab)
    recipe.traces["pod_comes_up"](lab)
    topo = Topology.of(lab)
    (pod,) = [ns for ns in topo.namespaces if ns != "node"]
    (veth,) = [e for e in topo.edges_of("veth")]
    host_end = veth.a if veth.a[0] == "node" else veth.b
    assert {veth.a, veth.b} == {host_end, (pod, "eth0")} and host_end[1].startswith("vc")
    assert topo.has("port", host_end, ("node", "cni0"))


def test_render_writes_svg_and_png_and_the_terminal_tree(lab, tmp_path):
    from rich.console import Console

    topo = topology_of(lab, 3)
    import xml.etree.ElementTree as ET

    svg, png = topo.render(tmp_path, "stage03", "stage 03")
    texts = {t.text for t in ET.parse(svg).iter("{http://www.w3.org/2000/svg}text")}
    assert {"stage 03", "host", "pod1", "br0", "h-pod1", "10.0.3.11/24", "10.0.3.1/24"} <= texts, texts
    assert lab.prefix not in svg.read_text(), "pictures show names without the run prefix"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage03.png", "stage03.svg"]
    console = Console(record=True, width=120)
    console.print(topo.tree())
    tree = console.export_text()
    assert "h-pod2 veth" in tree and "port of br0" in tree and "veth peer pod2/eth0" in tree
