"""Stage 07: cnilab's plugin as the stage builds it -- the bridge, veth, address and route of stages 02-05,
ipMasq, IPAM routes, chaining with the reference meta plugins -- checked side by side with the reference
bridge + host-local it imitates. (What the CNI spec requires of any plugin is judged by the
conformance cases in test_stage07_conformance.py.)
"""

import pytest

from cnilab.runtime.cni import CNIError
from cnilab.observe.probes import assert_ping
from cnilab.teach.recipe import stage_module

stage = stage_module(__file__)
GATEWAY = stage.GATEWAY
result_ip, sandbox_interface, host_interface = stage.result_ip, stage.sandbox_interface, stage.host_interface


def test_add_configures_the_pod_as_stages_02_to_05_teach(cni):
    """SPEC 2 "ADD": the interface CNI_IFNAME exists in CNI_NETNS with the result's address and routes."""
    pod = cni.pod()
    result = cni.runtime.add(cni.conflist(), cni.attachment(pod))
    eth0 = pod.link("eth0").state()
    assert eth0.up and eth0.mtu == 1500 and eth0.mac == sandbox_interface(result)["mac"], f"the pod's eth0 must be up, MTU 1500, with the MAC of the result: {eth0}"
    assert pod.link("eth0").addresses() == [result["ips"][0]["address"]], f"eth0 holds {pod.link('eth0').addresses()}, the result says {result['ips'][0]['address']}"
    assert {"dst": "default", "gateway": GATEWAY, "dev": "eth0"} in pod.routes(), f"no default route via {GATEWAY} on eth0 in the pod: {pod.routes()}"
    bridge = cni.node.link("cni0")
    assert bridge.state().kind == "bridge" and f"{GATEWAY}/16" in bridge.addresses(), f"{bridge.name} must be a bridge holding {GATEWAY}/16: {bridge.state().kind}, {bridge.addresses()}"
    host = cni.node.link(host_interface(result)["name"]).state()
    assert host.master == bridge.state().index and host.up, "the host end must be a port of the bridge"


def test_ipmasq_rules_are_added_and_removed_with_the_attachment(cni):
    """Convention ``ipMasq`` (SPEC 1): masquerade the pod's traffic leaving the subnet; DEL takes it back."""
    before = cni.nat_rules()
    pod = cni.pod()
    conflist = cni.conflist(ipMasq=True)
    result = cni.runtime.add(conflist, cni.attachment(pod))
    added = [r for r in cni.nat_rules() if r not in before]
    assert any("MASQUERADE" in r for r in added) and any(result_ip(result) in r for r in added), added
    cni.runtime.delete(conflist, cni.attachment(pod))
    assert cni.nat_rules() == before, "the NAT rules differ from before the pod: ADD+DEL must leave none"


def test_ipam_routes_are_added_to_the_pod_and_the_result(cni):
    """SPEC 4 "IP Allocation" routes: extra routes of the IPAM configuration reach the pod and the result."""
    pod = cni.pod()
    conflist = cni.conflist()
    conflist["plugins"][0]["ipam"]["routes"] = [{"dst": "198.51.100.0/24"}]
    result = cni.runtime.add(conflist, cni.attachment(pod))
    assert any(r["dst"] == "198.51.100.0/24" for r in result["routes"]), result["routes"]
    assert {"dst": "198.51.100.0/24", "gateway": GATEWAY, "dev": "eth0"} in pod.routes(), f"the configured route 198.51.100.0/24 via {GATEWAY} is missing in the pod: {pod.routes()}"


CHAINED = {
    "tuning": {"type": "tuning", "sysctl": {"net.core.somaxconn": "512"}},
    "portmap": {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
    "bandwidth": {"type": "bandwidth", "ingressRate": 8_000_000, "ingressBurst": 64_000,
                  "egressRate": 8_000_000, "egressBurst": 64_000},
}


@pytest.mark.parametrize("chained", sorted(CHAINED))
def test_first_in_a_chain_with_a_reference_plugin(cni, chained):
    """SPEC 1 "Network configuration lists" + 3 "prevResult": the next plugin gets our result and acts on it."""
    pod = cni.pod()
    conflist = cni.conflist(chain=[CHAINED[chained]])
    if chained == "portmap":
        # SPEC 1 `disableCheck`: portmap v1.1.1's CHECK looks for an IPv6 chain it never made for an
        # IPv4-only result -- a spurious error of that plugin, whatever plugin comes first.
        conflist["disableCheck"] = True
    att = cni.attachment(pod)
    before = cni.nat_rules()
    result = cni.runtime.add(conflist, att, runtime_config={"portMappings": [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
    assert sandbox_interface(result)["name"] == "eth0", "the chain's final result still names the pod interface"
    host = host_interface(result)["name"]
    if chained == "tuning":
        assert pod.sysctl("net.core.somaxconn") == "512", "the tuning plugin did not set net.core.somaxconn=512 in the pod"
    elif chained == "portmap":
        assert any("8080" in r and "DNAT" in r for r in cni.nat_rules()), cni.nat_rules()
    else:
        kinds = {q.get_attr("TCA_KIND") for q in cni.node.ipr.get_qdiscs(index=cni.node.link(host).index)}
        assert "tbf" in kinds, kinds
    cni.runtime.check(conflist, att)
    cni.runtime.delete(conflist, att)
    # portmap keeps its shared top-level chains (CNI-HOSTPORT-*); nothing of this pod may remain
    left = [r for r in cni.nat_rules() if r not in before and (result_ip(result) in r or "8080" in r)]
    assert left == [] and cni.allocated() == [], f"left behind: NAT rules {left}, addresses {cni.allocated()}"


def test_add_again_after_a_crashed_add_without_del_succeeds(cni):
    """A runtime may retry ADD straight after a failed one: the leftovers of the crash must not block it."""
    if cni.plugin.reference:
        pytest.skip("the crash is injected with cnilab's test hook CNILAB_CNI_FAULT; the reference has none")
    pod = cni.pod()
    conflist = cni.conflist()
    att = cni.attachment(pod)
    conf = cni.runtime.plugin_confs(conflist)[0]
    env = {"CNI_CONTAINERID": att.container_id, "CNI_NETNS": att.netns, "CNI_IFNAME": att.ifname}
    with pytest.raises(CNIError):
        cni.runtime.exec_plugin(conf["type"], "ADD", conf, {**env, "CNILAB_CNI_FAULT": "after-veth"})
    result = cni.runtime.add(conflist, att)
    assert_ping(pod, GATEWAY, count=1)
    assert cni.allocated() == [result_ip(result)], f"the pool holds {cni.allocated()}, expected only the pod's {result_ip(result)}"
