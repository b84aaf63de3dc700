"""Plausible wrong steps, for ``tools/mutation.py --wrong``: what students actually do.

Each entry changes one solution block of the reference suite -- wrong interface, wrong namespace,
wrong address or prefix, address on the wrong link, wrong table/chain/match, wrong order, a
forgotten ``up`` or ``return`` -- and declares the words a right diagnosis of it contains (all of
them, case-insensitive). A mutant is *caught* when the stage's tests fail, *rightly diagnosed*
when the first failure message contains every word: a message that sends the student elsewhere
(to the internet's routes when the mistake is the MASQUERADE rule's interface) does not count.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Wrong:
    stage: int
    function: str                       # the solution block's function (fixture or helper)
    what: str                           # the mistake, as a teacher would name it
    edits: tuple[tuple[str, str], ...]  # (text in the block, its replacement): each must occur exactly once
    words: tuple[str, ...]              # a right diagnosis names these
    judged_by: int | None = None        # the stage whose tests judge it (default: the block's own)


def wrong(stage: int, function: str, what: str, *edits: tuple[str, str], words: tuple[str, ...],
          judged_by: int | None = None) -> Wrong:
    return Wrong(stage, function, what, edits, words, judged_by)


STEPS: tuple[Wrong, ...] = (
    # stage 01: namespaces
    wrong(1, "host", "forgotten return", ('return lab.netns("host")', 'lab.netns("host")'),
          words=("host", "returned None")),
    wrong(1, "pod", "the pod fixture makes the host's namespace again", ('lab.netns("pod")', 'lab.netns("host")'),
          words=("host", "already")),
    # stage 02: a veth pair
    wrong(2, "veth", "the peer left in the host namespace",
          ('host.veth("veth0", pod, "veth1")', 'host.veth("veth0", peer_name="veth1")'), words=("veth1", "pod")),
    wrong(2, "veth", "only the pod end down", ("pod_end.add_address(POD_IP).up()", "pod_end.add_address(POD_IP)"),
          words=("veth1", "down")),
    wrong(2, "veth", "only the host end down", ("host_end.add_address(HOST_IP).up()", "host_end.add_address(HOST_IP)"),
          words=("veth0", "down")),
    wrong(2, "veth", "the pod address in another subnet", ("pod_end.add_address(POD_IP)", 'pod_end.add_address("10.0.3.2/24")'),
          words=("10.0.3.2",)),
    wrong(2, "veth", "a /32 instead of the subnet's prefix", ("pod_end.add_address(POD_IP)", 'pod_end.add_address("10.0.2.2/32")'),
          words=("/32",)),
    wrong(2, "veth", "the two addresses swapped",
          ("host_end.add_address(HOST_IP)", "host_end.add_address(POD_IP)"),
          ("pod_end.add_address(POD_IP)", "pod_end.add_address(HOST_IP)"), words=("veth0", "10.0.2.1")),
    # stage 03: a bridge
    wrong(3, "make_bridge", "the bridge left down", ("br.add_address(gateway).up()", "br.add_address(gateway)"),
          words=("br0", "down")),
    wrong(3, "make_bridge", "the gateway address forgotten", ("br.add_address(gateway).up()", "br.up()"),
          words=("10.0.3.1",)),
    wrong(3, "plug", "the gateway address on a bridge port instead of on the bridge",
          ("host_end.set_master(bridge).up()", "host_end.set_master(bridge).up()\n    if name == 'pod1':\n"
           "        bridge.del_address(bridge.addresses()[0]); host_end.add_address('10.0.3.1/24')"),
          words=("10.0.3.1", "port")),
    wrong(3, "plug", "the host end never made a bridge port", ("host_end.set_master(bridge).up()", "host_end.up()"),
          words=("master",)),
    wrong(3, "plug", "the host end left down", ("host_end.set_master(bridge).up()", "host_end.set_master(bridge)"),
          words=("h-pod1", "down")),
    wrong(3, "plug", "the pod end left down", ("pod_end.add_address(cidr).up()", "pod_end.add_address(cidr)"),
          words=("eth0", "down")),
    wrong(3, "plug", "the pods given /32 addresses", ("pod_end.add_address(cidr)", 'pod_end.add_address(cidr.replace("/24", "/32"))'),
          words=("/32",)),
    wrong(3, "plug", "the pod's address on the host end", ("pod_end.add_address(cidr).up()", "pod_end.up(); host_end.add_address(cidr)"),
          words=("eth0", "address")),
    # stage 04: TCP
    wrong(4, "echo_server", "the server in the wrong pod", ('EchoServer(pods["pod1"], PORT)', 'EchoServer(pods["pod2"], PORT)'),
          words=("pod1", "7000")),
    wrong(4, "echo_server", "the server on the wrong port", ('EchoServer(pods["pod1"], PORT)', 'EchoServer(pods["pod1"], 8000)'),
          words=("7000",)),
    wrong(4, "echo_server", "forgotten return", ('return EchoServer(pods["pod1"], PORT)', 'EchoServer(pods["pod1"], PORT)'),
          words=("echo_server", "returned None")),
    # stage 05: egress
    wrong(5, "masquerade", "MASQUERADE on the unprefixed uplink name", ('"-o", uplink.name', '"-o", "up0"'),
          words=("up0", "MASQUERADE")),
    wrong(5, "masquerade", "MASQUERADE on the bridge instead of the uplink", ('"-o", uplink.name', '"-o", host.link("br0").name'),
          words=("MASQUERADE", "uplink")),
    wrong(5, "masquerade", "MASQUERADE for another subnet", ('"-s", POD_SUBNET', '"-s", "10.0.2.0/24"'),
          words=("MASQUERADE", "10.0.3")),
    wrong(5, "masquerade", "MASQUERADE in the filter table", ('table="nat"', 'table="filter"'), words=("nat",)),
    wrong(5, "masquerade", "MASQUERADE in PREROUTING", ('("POSTROUTING",', '("PREROUTING",'), words=("POSTROUTING",)),
    wrong(5, "pod_routes", "the default route via the uplink's address", ("via=GATEWAY_IP", 'via="192.0.2.1"'),
          words=("192.0.2.1",)),
    wrong(5, "pod_routes", "the default route via a gateway nobody holds", ("via=GATEWAY_IP", 'via="10.0.3.254"'),
          words=("10.0.3.254",)),
    wrong(5, "forwarding", "IPv6 forwarding instead of IPv4", ('"net.ipv4.ip_forward"', '"net.ipv6.conf.all.forwarding"'),
          words=("ip_forward",)),
    # stage 06: the VXLAN overlay
    wrong(6, "join_p2p", "a VNI per node", ('VNI["p2p"],', 'VNI["p2p"] + len(cluster),'), words=("VNI",)),
    wrong(6, "join_p2p", "Linux's default VXLAN port 8472 instead of 4789", ("port=VXLAN_PORT", "port=8472"),
          words=("4789",)),
    wrong(6, "join_p2p", "the VXLAN device not on the bridge", ("node.vtep.set_mtu(POD_MTU).set_master(node.bridge).up()",
                                                               "node.vtep.set_mtu(POD_MTU).up()"), words=("vxlan0", "master")),
    wrong(6, "join_p2p", "the flood entries only one way", ("        peer.ns.add_fdb(peer.vtep, ZERO_MAC, node.ip, append=True)\n", ""),
          words=("FDB",)),
    wrong(6, "make_vtep", "a VNI per node", ('vxlan("flannel1", vni,', 'vxlan("flannel1", vni + node.n,'), words=("VNI",)),
    wrong(6, "route_to", "the FDB entry to the node's own VTEP", ("node.ns.add_fdb(node.vtep, peer.vtep_mac, peer.ip)",
                                                                "node.ns.add_fdb(node.vtep, peer.vtep_mac, node.ip)"), words=("FDB",)),
    wrong(6, "route_to", "the permanent ARP entry forgotten", ("    node.ns.add_neighbour(peer.vtep_ip, peer.vtep_mac, node.vtep)\n", ""),
          words=("ARP",)),
    wrong(6, "route_to", "the ARP entry with the node's own VTEP MAC", ("node.ns.add_neighbour(peer.vtep_ip, peer.vtep_mac, node.vtep)",
                                                                      "node.ns.add_neighbour(peer.vtep_ip, node.vtep_mac, node.vtep)"),
          words=("ARP",)),
    wrong(6, "add_node", "the MTU not lowered", ("        node.ports[name].set_mtu(POD_MTU)\n        pod.link(\"eth0\").set_mtu(POD_MTU)\n", ""),
          words=("MTU",)),
    wrong(6, "add_node", "the MTU lowered on the host end only", ("        pod.link(\"eth0\").set_mtu(POD_MTU)\n", ""),
          words=("MTU", "eth0")),
    # stage 07: the plugin's steps
    wrong(7, "wire", "the pod end left down", ('    inner.set_link(cont["index"], up=True)\n', ""), words=("down",)),
    wrong(7, "wire", "the host end not on the bridge", ('nl.set_link(host["index"], master=bridge["index"], up=True)',
                                                       'nl.set_link(host["index"], up=True)'), words=("bridge",)),
    wrong(7, "wire", "the pod's address as a /32", ("inner.add_addr(cont[\"index\"], ip, conf.pool.plen)",
                                                    "inner.add_addr(cont[\"index\"], ip, 32)"), words=("/32",)),
    wrong(7, "ensure_bridge", "ip_forward forgotten", ("if conf.is_gateway or conf.ip_masq:", "if False:"), words=("ip_forward",)),
    wrong(7, "cmd_del", "the address never released", ("        conf.pool.release(cid, ifname, attachment_id(cid, ifname))\n", ""),
          words=("release",)),
    wrong(7, "cmd_del", "DEL of the pod end's name instead of the host end", ("nl.del_link(host_veth(cid, ifname))",
                                                                            "nl.del_link(ifname)"), words=("host",)),
    # found by a second, independent trial (a helper playing the student, catalogue written without seeing the
    # diagnosis code); the harmless ones it found (a port brought up before it joins the bridge, a VXLAN device
    # without dev= when local is set) are left out as equivalent
    wrong(1, "host", "the host namespace misspelt", ('lab.netns("host")', 'lab.netns("hots")'), words=("hots", "host")),
    wrong(2, "veth", "the two link names swapped", ('host.veth("veth0", pod, "veth1")', 'host.veth("veth1", pod, "veth0")'),
          words=("veth0", "veth1")),
    wrong(2, "veth", "the pod end named eth0", ('host.veth("veth0", pod, "veth1")', 'host.veth("veth0", pod, "eth0")'),
          words=("veth1",)),
    wrong(2, "veth", "the host address with /16", ("host_end.add_address(HOST_IP)", 'host_end.add_address("10.0.2.1/16")'),
          words=("/16",)),
    wrong(3, "make_bridge", "the bridge name hard-coded", ("host.bridge(name)", 'host.bridge("br0")'), words=("name",)),
    wrong(3, "plug", "the pair created from the pod's side", ('host.veth(port_name(name), pod, "eth0")',
                                                            'pod.veth("eth0", host, port_name(name))'), words=("eth0",)),
    wrong(3, "plug", "the host end not named port_name(name)", ("host.veth(port_name(name),", 'host.veth(f"v{name}",'),
          words=("h-pod1",)),
    wrong(4, "echo_server", "the pod's key misspelt", ('pods["pod1"]', 'pods["pod-1"]'), words=("pod-1",)),
    wrong(5, "pod_routes", "the default route added in the host instead of in the pods",
          ('    for pod in pods.values():\n        pod.add_route("default", via=GATEWAY_IP)\n',
           '    lab.get("host").add_route("default", via=GATEWAY_IP)\n'), words=("already has a route", "pod")),
    wrong(5, "pod_routes", "the default route in the first pod only", ("for pod in pods.values():",
                                                                     "for pod in list(pods.values())[:1]:"),
          words=("pod2", "default route")),
    wrong(5, "forwarding", "forwarding on the bridge only (the per-link sysctl)",
          ('"net.ipv4.ip_forward"', 'f"net.ipv4.conf.{host.link(\'br0\').name}.forwarding"'), words=("ip_forward",)),
    wrong(5, "masquerade", "MASQUERADE for pod1's address only", ('"-s", POD_SUBNET', '"-s", "10.0.3.11"'),
          words=("MASQUERADE", "10.0.3.12")),
    wrong(5, "masquerade", "SNAT without its address", ('"-j", "MASQUERADE"', '"-j", "SNAT"'), words=("SNAT", "--to-source")),
    wrong(6, "join_p2p", "the flood entries added, not appended",
          ("node.ns.add_fdb(node.vtep, ZERO_MAC, peer.ip, append=True)", "node.ns.add_fdb(node.vtep, ZERO_MAC, peer.ip)"),
          ("peer.ns.add_fdb(peer.vtep, ZERO_MAC, node.ip, append=True)", "peer.ns.add_fdb(peer.vtep, ZERO_MAC, node.ip)"),
          words=("append",)),
    wrong(6, "join_p2p", "local hard-coded to node1's address", ("local=node.ip", 'local="198.18.0.1"'), words=("local",)),
    wrong(6, "make_vtep", "learning left on in routed mode", (", learning=False)", ")"), words=("learning",)),
    wrong(6, "join_routed", "the routes added in one direction only", ("        route_to(node, peer)\n", ""),
          words=("cannot return", "10.244.1.")),
    wrong(6, "add_node", "the MTU lowered on the pod end only", ("        node.ports[name].set_mtu(POD_MTU)\n", ""),
          words=("MTU", "h-n1p1")),
    wrong(6, "add_node", "routed pods given a gateway outside their subnet", ("gateway_cidr(mode, n)", 'gateway_cidr("p2p", n)'),
          words=("10.6.1.1",)),
    # stage 08: the agent runs stage 06's route_to and stage 08's steps
    wrong(8, "masquerade_leaving", "masquerading pod-to-pod traffic", ('"!", "-d", cluster_cidr, ', ""), words=("SNAT",)),
    wrong(8, "pod_conflist", "the plugin masquerades too (ipMasq on)", ('"ipMasq": False', '"ipMasq": True'), words=("SNAT",)),
    wrong(8, "forget_peer", "the permanent ARP entry of a gone peer left behind",
          ("    if_present(node.ns.del_neighbour, peer.vtep_ip, node.vtep)\n", ""), words=("ARP", "remain")),
    wrong(8, "forget_peer", "the FDB entry of a gone peer left behind",
          ("        if_present(node.ns.del_fdb, node.vtep, peer.vtep_mac, peer.ip)\n", "        pass\n"), words=("FDB", "remain")),
    wrong(6, "route_to", "the agent's FDB entry to the wrong VTEP (the node's own)",
          ("node.ns.add_fdb(node.vtep, peer.vtep_mac, peer.ip)", "node.ns.add_fdb(node.vtep, peer.vtep_mac, node.ip)"),
          words=("FDB",), judged_by=8),
    wrong(6, "route_to", "the agent's permanent ARP entry forgotten",
          ("    node.ns.add_neighbour(peer.vtep_ip, peer.vtep_mac, node.vtep)\n", ""), words=("ARP",), judged_by=8),
    wrong(8, "pod_conflist", "pods given addresses from the whole cluster CIDR, not the node's lease",
          ('"subnet": node.subnet', '"subnet": "10.244.0.0/16"'), words=("lease",)),
    wrong(7, "cmd_del", "DEL leaves the MASQUERADE rule",
          ("        if conf.ip_masq:\n            from . import nat\n\n            nat.remove(conf.name, only=attachment_id(cid, ifname))\n", ""),
          words=("MASQUERADE",)),
    wrong(7, "cmd_check", "CHECK does not compare the MAC",
          ('        if want and want.lower() != cont["mac"]:\n'
           '            raise CniError(CHECK_FAILED, f"interface {ifname} has MAC {cont[\'mac\']}, not {want} as ADD made it")\n', ""),
          words=("MAC",)),
    wrong(7, "cmd_gc", "GC deletes every host end", ('            for att in stale:\n                nl.del_link("vc" + att)\n',
                                                    '            for link in nl.links():\n                if link["name"].startswith("vc"):\n'
                                                    '                    nl.del_link(link["name"])\n'), words=("GC", "valid")),
    wrong(7, "wire", "the routes added before the pod end has its address and is up",
          ('    inner.add_addr(cont["index"], ip, conf.pool.plen)\n    inner.set_link(cont["index"], up=True)\n', ""),
          ("    return host, cont\n",
           '    inner.add_addr(cont["index"], ip, conf.pool.plen)\n    inner.set_link(cont["index"], up=True)\n    return host, cont\n'),
          words=("route", "address")),
)
