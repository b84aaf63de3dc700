"""Requirements of the verbs in their ordinary use: VERSION, ADD, DEL, CHECK (SPEC section 2, results: section 5)."""

from __future__ import annotations

import ipaddress
import shlex
import time
from concurrent.futures import ThreadPoolExecutor

from ..runtime.cni import CNIError
from ..observe.diagnose import why_unreachable
from ..observe.probes import ping
from ..core.netns import ip_of
from .session import Session, result_ip
from .spec import Level, Violation, applies, expect, requirement, version_key

MUST, SHOULD = Level.MUST, Level.SHOULD
RESULT_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


def sandbox_index(result: dict, netns: str, ifname: str) -> int:
    for i, iface in enumerate(result.get("interfaces") or []):
        if iface.get("sandbox") == netns and iface.get("name") == ifname:
            return i
    raise Violation(f"the result lists no interface {ifname} with sandbox {netns}: {result.get('interfaces')}")


def host_links(s: Session, result: dict) -> dict[str, str]:
    """Interfaces of the result on the node (no sandbox) that exist there: name -> kind."""
    kinds = {st.name: st.kind for st in s.node.link_states()}
    return {i["name"]: kinds[i["name"]] for i in result.get("interfaces") or [] if not i.get("sandbox") and i.get("name") in kinds}


def reaches(src, dst: str, failure: str) -> None:
    """``src`` pings ``dst``; a failure carries the diagnosis of the lab's state (which link, route or rule is
    missing), so the plugin's author reads the cause, not only the symptom."""
    if not ping(src, dst, count=1, wait=2).received:
        raise Violation(f"{failure}. {why_unreachable(src, dst)}")


def pod_addresses(pod, ifname: str) -> list[str]:
    return pod.link(ifname).addresses() if ifname in pod.links() else []


def warmed(s: Session):
    """ADD then DEL one pod first, so what a plugin keeps for every pod (a bridge, its chains) is in the baseline."""
    start = time.monotonic()
    pod, att, _ = s.add()
    s.add_seconds = time.monotonic() - start
    s.runtime.delete(s.conflist(), att)
    s.settle()
    return s.state()


# -- VERSION -------------------------------------------------------------------------------------

@requirement("version.reports", "VERSION prints cniVersion and supportedVersions", MUST, "2 Execution protocol / VERSION",
             "Result: information about the CNI spec versions supported by the plugin")
def version_reports(s: Session) -> None:
    call = s.raw("VERSION", {"cniVersion": s.version}, env=s.env(None, "VERSION"))
    expect(call.returncode == 0, f"VERSION failed: {call.describe()}")
    answer = call.answer
    expect(isinstance(answer, dict) and isinstance(answer.get("supportedVersions"), list)
           and all(isinstance(v, str) for v in answer["supportedVersions"]) and isinstance(answer.get("cniVersion"), str),
           f"VERSION must print {{cniVersion, supportedVersions: [...]}}, printed {call.stdout[:200]!r}")


@requirement("version.unsupported", "a configuration of an unsupported cniVersion gets error code 1", SHOULD,
             "2 Errors / well-known error codes", "1 - Incompatible CNI version")
def version_unsupported(s: Session) -> None:
    conf = {**s.own_conf(), "cniVersion": "99.0.0"}
    call = s.raw("ADD", conf, s.attachment(s.pod()))
    expect(call.returncode != 0, "ADD of a cniVersion 99.0.0 configuration succeeded")
    expect(isinstance(call.answer, dict) and call.answer.get("code") == 1, f"expected code 1, got {call.describe()}")


# -- ADD -------------------------------------------------------------------------------------------

@requirement("add.result", "the ADD result has the layout and cniVersion of the configuration", MUST,
             "2 Execution protocol / ADD, 5 Result types",
             "the cniVersion returned by the plugin in the result must be consistent with the cniVersion specified",
             variants=RESULT_VERSIONS, tags=("per-version",))
def add_result(s: Session, version: str) -> None:
    pod, att, result = s.add(conflist=s.conflist(version))
    expect(isinstance(result, dict), f"ADD printed no JSON result: {result!r}")
    expect(result.get("cniVersion") == version, f"result cniVersion {result.get('cniVersion')!r} for a {version} configuration")
    index = sandbox_index(result, att.netns, att.ifname)
    ips = result.get("ips") or []
    expect(ips, "the result has no ips")
    for ip in ips:
        expect(ip.get("interface") == index, f"ips[].interface must index the pod's interface ({index}): {ip}")
        ipaddress.ip_interface(ip.get("address", ""))
        if version_key(version) >= (1, 0, 0):
            expect("version" not in ip, f"ips[].version was removed in spec 1.0.0 but is in the {version} result: {ip}")
        else:
            expect(ip.get("version") in ("4", "6"), f"ips[].version is required before spec 1.0.0: {ip}")


@requirement("add.interface", "ADD creates CNI_IFNAME in CNI_NETNS, as the result says", MUST, "2 Execution protocol / ADD",
             "If the CNI_IFNAME variable exists the plugin must use that name for the sandbox interface")
def add_interface(s: Session) -> None:
    pod, att, result = s.add()
    expect(att.ifname in pod.links(), f"{att.ifname} is not in the pod after ADD: {pod.links()}")
    iface = result["interfaces"][sandbox_index(result, att.netns, att.ifname)]
    state = pod.link(att.ifname).state()
    expect(state.up, f"{att.ifname} is down after ADD")
    if iface.get("mac"):
        expect(iface["mac"].lower() == state.mac.lower(), f"result mac {iface['mac']} but the interface has {state.mac}")


@requirement("add.addresses", "the result's addresses are on the pod's interface", MUST, "5 Result types / ips",
             "ips: IPs assigned by this attachment")
def add_addresses(s: Session) -> None:
    pod, att, result = s.add()
    have = pod_addresses(pod, att.ifname)
    for ip in result["ips"]:
        expect(ip["address"] in have, f"{ip['address']} of the result is not on {att.ifname} (it has {have})")


@requirement("add.routes", "the result's routes are in the pod", SHOULD, "5 Result types / routes",
             "routes: Routes created by this attachment")
def add_routes(s: Session) -> None:
    pod, att, result = s.add()
    routes = result.get("routes") or []
    applies(routes, "the result has no routes")
    table = pod.routes()
    for r in routes:
        dst = "default" if r["dst"] in ("0.0.0.0/0", "::/0") else r["dst"]
        expect(any(t["dst"] == dst and (not r.get("gw") or t.get("gateway") == r["gw"]) for t in table),
               f"route {r} of the result is not in the pod: {table}")


@requirement("add.connectivity", "two pods of the network reach each other", SHOULD, "Overview",
             "network refers to a group of entities that are uniquely addressable that can communicate amongst each other")
def add_connectivity(s: Session) -> None:
    a, _, ra = s.add()
    b, _, rb = s.add()
    ip_b, ip_a = result_ip(rb), result_ip(ra)
    reaches(a, ip_b, f"pod a cannot ping pod b ({ip_b})")
    reaches(b, ip_a, f"pod b cannot ping pod a ({ip_a})")


@requirement("add.gateway", "a pod reaches the gateway the plugin set up on the node", SHOULD, "5 Result types / ips",
             "gateway: the default gateway for this subnet, if one exists")
def add_gateway(s: Session) -> None:
    pod, att, result = s.add()
    gw = result["ips"][0].get("gateway")
    applies(gw, "the result names no gateway")
    node_ips = {ip_of(a) for _, a in s.node.addresses()}
    # what the configuration promises decides, not what the plugin happened to do: with isGateway the
    # gateway must be on the node; without it, a plugin that routes elsewhere (macvlan) is not judged here
    applies(gw in node_ips or s.is_gateway,
            f"the gateway {gw} is not an address of the node (the plugin does not route through it, e.g. macvlan/ipvlan)")
    expect(gw in node_ips, f"the configuration sets isGateway, yet the gateway {gw} is no address of the node "
                           f"(the node holds {sorted(node_ips)})")
    reaches(pod, gw, f"the pod cannot ping its gateway {gw}")


@requirement("add.ifname-exists", "ADD fails when CNI_IFNAME already exists in the pod", MUST, "2 Execution protocol / ADD",
             "If an interface of the requested name already exists in the container, the CNI plugin MUST return with an error")
def add_ifname_exists(s: Session) -> None:
    baseline = warmed(s)
    pod = s.pod()
    pod.veth("taken")[0].rename("eth0")  # an eth0 of someone else's
    index = pod.link("eth0").index
    try:
        s.runtime.add(s.conflist(), s.attachment(pod))
    except CNIError:
        pass
    else:
        raise Violation("ADD succeeded although eth0 already existed in the pod")
    expect("eth0" in pod.links() and pod.link("eth0").index == index, "the pod's existing eth0 was replaced or deleted")
    s.settle()
    after = s.state()
    expect(after == baseline, f"the failed ADD left something behind: {baseline.diff(after)}")


@requirement("add.twice", "a second ADD of one (container, ifname) is an error and changes nothing", MUST,
             "2 Execution protocol / ADD",
             "If an interface of the requested name already exists in the container, the CNI plugin MUST return with an error")
def add_twice(s: Session) -> None:
    pod, att, result = s.add()
    before = pod.link(att.ifname).state(), pod_addresses(pod, att.ifname), s.state()
    try:
        again = s.runtime.add(s.conflist(), att)
    except CNIError:
        pass
    else:
        raise Violation(f"the second ADD succeeded (answered {again.get('ips') if isinstance(again, dict) else again})")
    after = pod.link(att.ifname).state() if att.ifname in pod.links() else None
    expect(after is not None and (after.index, after.mac) == (before[0].index, before[0].mac),
           f"the second ADD replaced the pod's interface (ifindex/MAC {before[0].index}/{before[0].mac} -> "
           f"{(after.index, after.mac) if after else 'gone'})")
    expect(pod_addresses(pod, att.ifname) == before[1], "the second ADD changed the pod's addresses")
    s.settle()
    expect(s.state() == before[2], f"the second ADD changed the node: {before[2].diff(s.state())}")


@requirement("add.parallel", "parallel ADDs of different containers all succeed with distinct addresses", MUST,
             "2 Execution protocol", "The container runtime ... is allowed to invoke parallel operations for different containers")
def add_parallel(s: Session) -> None:
    pods = [s.pod() for _ in range(20)]
    conflist = s.conflist()
    with ThreadPoolExecutor(max_workers=10) as pool:
        futures = [pool.submit(s.runtime.add, conflist, s.attachment(p)) for p in pods]
        outcomes = []
        for f in futures:
            try:
                outcomes.append(f.result())
            except CNIError as exc:
                outcomes.append(exc)
    failed = [o for o in outcomes if isinstance(o, Exception)]
    expect(not failed, f"{len(failed)} of 20 parallel ADDs failed, e.g. {failed[:1]}")
    ips = [r["ips"][0]["address"] for r in outcomes]
    expect(len(set(ips)) == 20, f"parallel ADDs handed out duplicate addresses: {sorted(ips)}")


@requirement("add.ipmasq", "with ipMasq, a pod reaches a host beyond the node, seen as the node", SHOULD,
             "1 Network configuration / ipMasq",
             "If supported by the plugin, sets up an IP masquerade on the host for this network")
def add_ipmasq(s: Session) -> None:
    applies(s.ip_masq, "the configuration does not set ipMasq")
    pod, att, result = s.add()
    gw = result["ips"][0].get("gateway")
    applies(gw and (s.is_gateway or gw in {ip_of(a) for _, a in s.node.addresses()}),
            "the pods do not route through the node (no gateway of the node in the result)")
    reaches(pod, "192.0.2.254", "the pod cannot reach 192.0.2.254 beyond the node, which has no route back to the pods")


# -- DEL ---------------------------------------------------------------------------------------------

@requirement("del.releases", "DEL releases everything ADD made", SHOULD, "2 Execution protocol / DEL",
             "A delete operation should release all resources held by the supplied containerid in the configured network")
def del_releases(s: Session) -> None:
    baseline = warmed(s)
    pod, att, result = s.add()
    s.runtime.delete(s.conflist(), att)
    left = [name for name, kind in host_links(s, result).items() if kind == "veth"]
    expect(att.ifname not in pod.links(), f"{att.ifname} is still in the pod after DEL" + (
        f", and the host end {', '.join(left)} is still on the node: DEL deletes the host end, its peer goes with it"
        if left else ""))
    s.settle()
    after = s.state()
    expect(after == baseline, f"DEL left something behind: {baseline.diff(after)}")


DEL_CASES = ("twice", "netns-empty", "netns-unset", "netns-gone", "no-prevresult")


@requirement("del.missing", "DEL succeeds and cleans up when resources or parameters are missing", SHOULD,
             "2 Execution protocol / DEL",
             "When CNI_NETNS and/or prevResult are not provided, the plugin should clean up as many resources as "
             "possible (e.g. releasing IPAM allocations) and return a successful response", variants=DEL_CASES)
def del_missing(s: Session, case: str) -> None:
    baseline = warmed(s)
    pod, att, result = s.add()
    conf = {**s.own_conf(), "prevResult": result}
    env = s.env(att, "DEL")
    if case == "twice":
        s.runtime.delete(s.conflist(), att)
    elif case == "netns-empty":
        env["CNI_NETNS"] = ""
    elif case == "netns-unset":
        del env["CNI_NETNS"]
    elif case == "netns-gone":
        pod.delete()
    else:
        del conf["prevResult"]
    call = s.raw("DEL", conf, env=env)
    expect(call.returncode == 0, f"DEL ({case}) failed: {call.describe()}")
    expect(s.allocated() == [], f"DEL ({case}) kept the address: {s.allocated()}")
    s.settle()
    if case == "netns-gone":  # the kernel frees a dead namespace's links asynchronously
        s.eventually(lambda: s.state() == baseline, timeout=5)
    after = s.state()
    expect(after == baseline, f"DEL ({case}) left something behind: {baseline.diff(after)}")


# -- CHECK --------------------------------------------------------------------------------------------

@requirement("check.after-add", "CHECK right after ADD succeeds", MUST, "2 Execution protocol / CHECK",
             "The plugin must handle CHECK being called immediately after an ADD", since="0.4.0")
def check_after_add(s: Session) -> None:
    applies(not s.disable_check, "the configuration sets disableCheck: runtimes must not call CHECK")
    pod, att, _ = s.add()
    try:
        s.runtime.check(s.conflist(), att)
    except CNIError as exc:
        raise Violation(f"CHECK right after ADD failed: {exc}") from None


BREAKS = ("interface-renamed", "address-removed", "route-removed", "mac-changed", "host-end-detached",
          "ip-reservation-lost", "nat-rule-removed")


@requirement("check.detects", "CHECK fails when what ADD made is missing or changed", SHOULD, "2 Execution protocol / CHECK",
             "The plugin should return an error if a resource included in the CNI Result type (interface, address or "
             "route) ... or other resources not tracked in the Result type (firewall rules, IP reservations) are missing",
             since="0.4.0", variants=BREAKS)
def check_detects(s: Session, how: str) -> None:
    applies(not s.disable_check, "the configuration sets disableCheck: runtimes must not call CHECK")
    pod, att, result = s.add()
    eth = pod.link(att.ifname)
    iface = result["interfaces"][sandbox_index(result, att.netns, att.ifname)]
    if how == "interface-renamed":
        eth.down().rename("eth9")
    elif how == "address-removed":
        for ip in result["ips"]:
            eth.del_address(ip["address"])
    elif how == "route-removed":
        applies(any(r["dst"] == "0.0.0.0/0" for r in result.get("routes") or []), "the result has no default route")
        pod.del_route("default")
    elif how == "mac-changed":
        applies(iface.get("mac"), "the result gives no MAC for the pod's interface")
        eth.set_mac("02:00:00:00:be:ef")
    elif how == "host-end-detached":
        hosts = host_links(s, result)
        bridges = [n for n, k in hosts.items() if k == "bridge"]
        ports = [n for n, k in hosts.items() if k == "veth"]
        applies(bridges and ports, "the result names no bridge with a port on the node")
        s.node.link(ports[0]).nomaster()
    elif how == "ip-reservation-lost":
        applies(s.target.uses("dataDir"), "the configuration keeps no IPAM data directory the checker can see")
        records = list(s.data_dir.rglob(result_ip(result)))
        applies(records, "the IPAM keeps no file per address in its data directory")
        for p in records:
            p.unlink()
    else:
        applies(s.ip_masq, "the configuration does not set ipMasq")
        ip = result_ip(result)
        rules = [r for r in s.node.iptables_rules("nat") if ip in r]
        applies(rules, f"no NAT rule of the node names the pod's address {ip}")
        for r in rules:
            s.node.run(["iptables", "-w", "-t", "nat", "-D", *shlex.split(r)[1:]])
    try:
        s.runtime.check(s.conflist(), att)
    except CNIError:
        return
    raise Violation(f"CHECK succeeded after {how.replace('-', ' ')}")
