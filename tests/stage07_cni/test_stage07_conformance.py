"""Stage 07 conformance: each test checks one requirement of the CNI spec (1.1.0) and names its section.

Every test runs against cnilab's plugin and against the reference bridge + host-local.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from cnilab.cni import Attachment, CNIError
from cnilab.probes import assert_ping
from cnilab.recipe import stage_module

stage = stage_module(__file__)
GATEWAY, NETWORK = stage.GATEWAY, stage.NETWORK
result_ip, sandbox_interface, host_interface = stage.result_ip, stage.sandbox_interface, stage.host_interface
VERSIONS = ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]


# -- SPEC section 2: VERSION ------------------------------------------------------------------

def test_version_reports_supported_versions(cni, request):
    """SPEC 2 "VERSION": the plugin prints the spec versions it supports."""
    if cni.plugin.reference:
        assert {"0.3.1", "0.4.0", "1.0.0"} <= set(cni.runtime.version(cni.plugin.type, "1.0.0")["supportedVersions"])
    cni.plugin.differs(request, "supports spec versions up to 1.0.0, not 1.1.0")
    answer = cni.runtime.version(cni.plugin.type, "1.1.0")
    assert set(VERSIONS) <= set(answer["supportedVersions"]), answer


# -- SPEC section 2: ADD, section 5: result types ----------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_add_result_has_the_layout_of_the_requested_version(cni, version, request):
    """SPEC 5 "ADD Success" / 0.x results: ``ips[].version`` exists before 1.0.0 only; cniVersion echoed."""
    if version == "1.1.0":
        cni.plugin.differs(request, "refuses cniVersion 1.1.0")
    pod = cni.pod()
    result = cni.runtime.add(cni.conflist(version), cni.attachment(pod))
    assert result["cniVersion"] == version
    sandbox = sandbox_interface(result)
    assert sandbox["name"] == "eth0" and sandbox["sandbox"] == f"/run/netns/{pod.name}"
    ip = result["ips"][0]
    assert result["interfaces"][ip["interface"]] is sandbox, "ips[].interface must index the pod's interface"
    assert ("version" in ip) == (version < "1.0.0"), ip
    assert ip["gateway"] == GATEWAY


def test_add_configures_the_pod_as_stages_02_to_05_teach(cni):
    """SPEC 2 "ADD": the interface CNI_IFNAME exists in CNI_NETNS with the result's address and routes."""
    pod = cni.pod()
    result = cni.runtime.add(cni.conflist(), cni.attachment(pod))
    eth0 = pod.link("eth0").state()
    assert eth0.up and eth0.mtu == 1500 and eth0.mac == sandbox_interface(result)["mac"]
    assert pod.link("eth0").addresses() == [result["ips"][0]["address"]]
    assert {"dst": "default", "gateway": GATEWAY, "dev": "eth0"} in pod.routes()
    bridge = cni.node.link("cni0")
    assert bridge.state().kind == "bridge" and f"{GATEWAY}/16" in bridge.addresses()
    host = cni.node.link(host_interface(result)["name"]).state()
    assert host.master == bridge.state().index and host.up, "the host end must be a port of the bridge"


def test_pods_reach_each_other_and_the_gateway(cni):
    """What ADD is for: two pods on the node talk, and reach their gateway."""
    a, b = cni.pod(), cni.pod()
    ra = cni.runtime.add(cni.conflist(), cni.attachment(a))
    rb = cni.runtime.add(cni.conflist(), cni.attachment(b))
    assert_ping(a, result_ip(rb))
    assert_ping(b, result_ip(ra))
    assert_ping(a, GATEWAY)


def test_add_fails_when_the_interface_already_exists(cni):
    """SPEC 2 "ADD": "If the interface ... already exists, the plugin must return an error"."""
    pod = cni.pod()
    pod.veth("eth0x")  # any existing name will do: ask for it as CNI_IFNAME
    taken = pod.link("eth0x").name
    with pytest.raises(CNIError) as err:
        cni.runtime.add(cni.conflist(), cni.attachment(pod, ifname=taken))
    assert err.value.code > 0 and err.value.msg
    assert cni.allocated() == [], "a failed ADD must not keep an address"


def test_add_rejects_an_interface_name_over_15_bytes(cni):
    """SPEC 2 "Parameters": CNI_IFNAME "if the plugin is unable to use this interface name it must return an error"."""
    with pytest.raises(CNIError) as err:
        cni.runtime.add(cni.conflist(), cni.attachment(cni.pod(), ifname="a-very-long-ifname"))
    assert err.value.code > 0 and err.value.msg


# -- SPEC section 2: DEL -----------------------------------------------------------------------

def test_del_removes_interface_host_end_and_address(cni):
    """SPEC 2 "DEL": the plugin releases everything ADD made."""
    pod = cni.pod()
    att = cni.attachment(pod)
    result = cni.runtime.add(cni.conflist(), att)
    host = host_interface(result)["name"]
    assert cni.allocated() == [result_ip(result)]
    cni.runtime.delete(cni.conflist(), att)
    assert "eth0" not in pod.links()
    assert host not in cni.node.links()
    assert cni.allocated() == [], "the address must be free again"


@pytest.mark.parametrize("how", ["twice", "netns-empty", "netns-gone"])
def test_del_is_idempotent(cni, how, request):
    """SPEC 2 "DEL": "Plugins should generally complete a DEL action without error even if some resources
    are missing" -- containerd sends a second DEL with CNI_NETNS empty after removing the sandbox."""
    if how == "netns-empty":
        cni.plugin.differs(request, "finds the veth only through CNI_NETNS, so with it empty the host end "
                                    "stays until the runtime deletes the namespace")
    pod = cni.pod()
    att = cni.attachment(pod)
    result = cni.runtime.add(cni.conflist(), att)
    if how == "twice":
        cni.runtime.delete(cni.conflist(), att)
    elif how == "netns-empty":
        att = Attachment(att.container_id, "", att.ifname)
    else:
        pod.delete()
    cni.runtime.delete(cni.conflist(), att)
    assert cni.allocated() == []
    from cnilab.probes import wait_for
    # a deleted namespace frees its links asynchronously (cleanup_net), hence the bounded wait
    wait_for(lambda: host_interface(result)["name"] not in cni.node.links(), timeout=5, what="the host end to go")


def test_ipmasq_rules_are_added_and_removed_with_the_attachment(cni):
    """Convention ``ipMasq`` (SPEC 1): masquerade the pod's traffic leaving the subnet; DEL takes it back."""
    before = cni.nat_rules()
    pod = cni.pod()
    conflist = cni.conflist(ipMasq=True)
    result = cni.runtime.add(conflist, cni.attachment(pod))
    added = [r for r in cni.nat_rules() if r not in before]
    assert any("MASQUERADE" in r for r in added) and any(result_ip(result) in r for r in added), added
    cni.runtime.delete(conflist, cni.attachment(pod))
    assert cni.nat_rules() == before


# -- SPEC section 2: CHECK ---------------------------------------------------------------------

def test_check_passes_after_add_and_fails_once_the_address_is_gone(cni):
    """SPEC 2 "CHECK": the plugin verifies the container is configured as prevResult says."""
    pod = cni.pod()
    att = cni.attachment(pod)
    result = cni.runtime.add(cni.conflist(), att)
    cni.runtime.check(cni.conflist(), att)
    pod.link("eth0").del_address(result["ips"][0]["address"])
    with pytest.raises(CNIError) as err:
        cni.runtime.check(cni.conflist(), att)
    assert err.value.code > 0


def _added(cni):
    pod = cni.pod()
    att = cni.attachment(pod)
    return pod, att, cni.runtime.add(cni.conflist(), att)


def test_check_fails_when_the_address_was_changed(cni):
    """SPEC 2 "CHECK": a different address with the routes intact is still not what ADD configured."""
    pod, att, result = _added(cni)
    eth0 = pod.link("eth0")
    eth0.del_address(result["ips"][0]["address"])  # takes the default route with it
    eth0.add_address("10.22.200.200/16")
    pod.add_route("default", via=GATEWAY)
    with pytest.raises(CNIError):
        cni.runtime.check(cni.conflist(), att)


def test_check_fails_when_the_default_route_is_gone(cni):
    """SPEC 2 "CHECK": routes of prevResult must exist; the address alone is not enough."""
    pod, att, _ = _added(cni)
    pod.del_route("default")
    with pytest.raises(CNIError):
        cni.runtime.check(cni.conflist(), att)


def test_check_fails_when_the_interface_is_gone_and_says_so(cni):
    """SPEC 2 "CHECK": the container interface CNI_IFNAME must exist (renamed away here: deleting it would
    take the host end along, which CHECK reports first)."""
    pod, att, _ = _added(cni)
    pod.link("eth0").down().rename("eth9")
    with pytest.raises(CNIError) as err:
        cni.runtime.check(cni.conflist(), att)
    assert "eth0" in err.value.msg + err.value.details, err.value


def test_check_fails_when_the_host_end_left_the_bridge(cni):
    """SPEC 2 "CHECK": the host side belongs to the configuration too."""
    pod, att, result = _added(cni)
    cni.node.link(host_interface(result)["name"]).nomaster()
    with pytest.raises(CNIError):
        cni.runtime.check(cni.conflist(), att)


def test_ipam_routes_are_added_to_the_pod_and_the_result(cni):
    """SPEC 4 "IP Allocation" routes: extra routes of the IPAM configuration reach the pod and the result."""
    pod = cni.pod()
    conflist = cni.conflist()
    conflist["plugins"][0]["ipam"]["routes"] = [{"dst": "198.51.100.0/24"}]
    result = cni.runtime.add(conflist, cni.attachment(pod))
    assert any(r["dst"] == "198.51.100.0/24" for r in result["routes"]), result["routes"]
    assert {"dst": "198.51.100.0/24", "gateway": GATEWAY, "dev": "eth0"} in pod.routes()


# -- SPEC section 2: errors and well-known codes -------------------------------------------------

def _raw(cni, command, stdin, env):
    with pytest.raises(CNIError) as err:
        cni.runtime.exec_plugin(cni.plugin.type, command, stdin, env)
    return err.value


def test_missing_environment_variable_is_code_4(cni):
    """SPEC 2 "Error" / code 4 "Invalid necessary environment variables"."""
    pod = cni.pod()
    conf = cni.runtime.plugin_confs(cni.conflist())[0]
    err = _raw(cni, "ADD", conf, {"CNI_NETNS": f"/run/netns/{pod.name}", "CNI_IFNAME": "eth0"})
    assert err.code == 4 and "CNI_CONTAINERID" in err.msg + err.details, err


def test_undecodable_configuration_is_code_6(cni):
    """SPEC 2 code 6 "Failed to decode content"."""
    pod = cni.pod()
    err = _raw(cni, "ADD", b"{this is not json", dict(CNI_CONTAINERID="c1", CNI_NETNS=f"/run/netns/{pod.name}", CNI_IFNAME="eth0"))
    assert err.code == 6, err


def test_invalid_configuration_is_code_7(cni, request):
    """SPEC 2 code 7 "Invalid network config"."""
    cni.plugin.differs(request, "reports a bad subnet as a generic error (code 999), not 7")
    pod = cni.pod()
    conf = cni.runtime.plugin_confs(cni.conflist())[0]
    conf["ipam"]["subnet"] = "10.22.0.0/99"
    err = _raw(cni, "ADD", conf, dict(CNI_CONTAINERID="c1", CNI_NETNS=f"/run/netns/{pod.name}", CNI_IFNAME="eth0"))
    assert err.code == 7, err


def test_unsupported_version_is_code_1(cni):
    """SPEC 2 code 1 "Incompatible CNI version"."""
    pod = cni.pod()
    conf = cni.runtime.plugin_confs(cni.conflist())[0]
    conf["cniVersion"] = "9.9.9"
    err = _raw(cni, "ADD", conf, dict(CNI_CONTAINERID="c1", CNI_NETNS=f"/run/netns/{pod.name}", CNI_IFNAME="eth0"))
    assert err.code == 1 and err.raw.get("msg"), err


def test_errors_are_json_with_cniversion_code_msg(cni, request):
    """SPEC 2 "Error": stdout carries ``{cniVersion, code, msg, details}``."""
    cni.plugin.differs(request, "omits cniVersion from error objects")
    conf = cni.runtime.plugin_confs(cni.conflist())[0]
    err = _raw(cni, "ADD", conf, {})
    assert {"cniVersion", "code", "msg"} <= set(err.raw), err.raw


# -- SPEC section 1 and 3: configuration lists, chaining -------------------------------------------

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
        assert pod.sysctl("net.core.somaxconn") == "512"
    elif chained == "portmap":
        assert any("8080" in r and "DNAT" in r for r in cni.nat_rules()), cni.nat_rules()
    else:
        kinds = {q.get_attr("TCA_KIND") for q in cni.node.ipr.get_qdiscs(index=cni.node.link(host).index)}
        assert "tbf" in kinds, kinds
    cni.runtime.check(conflist, att)
    cni.runtime.delete(conflist, att)
    # portmap keeps its shared top-level chains (CNI-HOSTPORT-*); nothing of this pod may remain
    left = [r for r in cni.nat_rules() if r not in before and (result_ip(result) in r or "8080" in r)]
    assert left == [] and cni.allocated() == []


# -- SPEC section 2: GC and STATUS (spec 1.1.0) ---------------------------------------------------

def test_gc_removes_attachments_that_are_no_longer_valid(cni, request):
    """SPEC 2 "GC": everything of attachments missing from ``cni.dev/valid-attachments`` is released."""
    cni.plugin.differs(request, "predates spec 1.1.0: no GC verb")
    conflist = cni.conflist("1.1.0", ipMasq=True)
    pods = [cni.pod() for _ in range(3)]
    results = [cni.runtime.add(conflist, cni.attachment(p)) for p in pods]
    cni.runtime.gc(conflist, [cni.attachment(p) for p in pods[:2]])
    assert cni.allocated() == sorted(result_ip(r) for r in results[:2])
    assert host_interface(results[2])["name"] not in cni.node.links()
    masq = [r for r in cni.nat_rules() if "MASQUERADE" in r]
    assert not [r for r in masq if f"{result_ip(results[2])}/32" in r], "the stale pod's NAT rule must go"
    assert all([r for r in masq if f"{result_ip(x)}/32" in r] for x in results[:2]), "valid pods keep theirs"
    assert_ping(pods[0], result_ip(results[1]))


def test_status_is_ready_then_unavailable_when_the_pool_is_exhausted(cni, request):
    """SPEC 2 "STATUS": success when ADD can work; code 50 "plugin not available" when it cannot."""
    cni.plugin.differs(request, "predates spec 1.1.0: no STATUS verb")
    conflist = cni.conflist("1.1.0", subnet="10.23.0.0/30")  # room for the gateway and one pod
    cni.runtime.status(conflist)
    cni.runtime.add(conflist, cni.attachment(cni.pod()))
    with pytest.raises(CNIError) as err:
        cni.runtime.status(conflist)
    assert err.value.code == 50


# -- robustness --------------------------------------------------------------------------------------

def test_fifty_parallel_adds_get_fifty_distinct_addresses(cni):
    """Runtimes start pods concurrently: the IPAM must serialise without errors or duplicates."""
    pods = [cni.pod() for _ in range(50)]
    conflist = cni.conflist()
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda p: cni.runtime.add(conflist, cni.attachment(p)), pods))
    ips = [result_ip(r) for r in results]
    assert len(set(ips)) == 50 and GATEWAY not in ips
    assert cni.allocated() == sorted(ips)


@pytest.mark.parametrize("fault", ["after-veth", "after-masq"])
def test_del_after_a_crash_in_the_middle_of_add_leaves_nothing(cni, fault):
    """A plugin killed mid-ADD (OOM, node pressure): the runtime's DEL must still clean up everything."""
    if cni.plugin.reference:
        pytest.skip("the crash is injected with cnilab's test hook CNILAB_CNI_FAULT; the reference has none")
    before = cni.nat_rules()
    pod = cni.pod()
    conflist = cni.conflist(ipMasq=True)
    att = cni.attachment(pod)
    os.environ["CNILAB_CNI_FAULT"] = fault
    try:
        conf = cni.runtime.plugin_confs(conflist)[0]
        with pytest.raises(CNIError) as err:
            cni.runtime.exec_plugin(conf["type"], "ADD", conf, {"CNI_CONTAINERID": att.container_id,
                                    "CNI_NETNS": att.netns, "CNI_IFNAME": att.ifname, "CNILAB_CNI_FAULT": fault})
        assert "exit 137" in str(err.value)
    finally:
        del os.environ["CNILAB_CNI_FAULT"]
    assert cni.allocated(), "the crash happened after the address was reserved"
    cni.runtime.delete(conflist, att)
    assert cni.allocated() == [] and cni.nat_rules() == before
    assert [l for l in cni.node.links() if l.startswith("vc")] == [] and "eth0" not in pod.links()


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
    assert cni.allocated() == [result_ip(result)]


def test_ipmasq_pod_reaches_beyond_the_node(cni, lab):
    """Conventions ``isGateway`` + ``ipMasq``: the node forwards the pod's traffic off the subnet and hides its
    address, so a host that knows no route to the pods still answers (stage 05 inside the plugin)."""
    outside = lab.netns("outside")
    up, far = cni.node.veth("up0", outside, "eth0")
    up.add_address("192.0.2.1/24").up()
    far.add_address("192.0.2.254/24").up()
    pod = cni.pod()
    cni.runtime.add(cni.conflist(ipMasq=True), cni.attachment(pod))
    assert cni.node.sysctl("net.ipv4.ip_forward") == "1"
    assert_ping(pod, "192.0.2.254", count=2)
