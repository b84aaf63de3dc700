"""Requirements over a pod's whole life and the node's: GC and STATUS (spec 1.1.0), a plugin killed in the
middle of an ADD, and what other pods see while pods come and go."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from ..runtime.cni import CNIError
from ..observe.probes import ping
from .checks_verbs import host_links, pod_addresses, warmed
from .session import Session, result_ip
from .spec import Level, Violation, applies, expect, requirement

MUST, SHOULD = Level.MUST, Level.SHOULD


# -- GC ------------------------------------------------------------------------------------------

@requirement("gc.removes-stale", "GC releases the attachments missing from cni.dev/valid-attachments, and only those", SHOULD,
             "2 Execution protocol / GC",
             "The network plugin may then remove any resources related to attachments that do not exist in this set",
             since="1.1.0")
def gc_removes_stale(s: Session) -> str:
    added = [s.add() for _ in range(3)]
    valid = [att for _, att, _ in added[:2]]
    s.runtime.gc(s.conflist(), valid)
    stale_ip = result_ip(added[2][2])
    expect(stale_ip not in s.allocated(), f"GC kept the stale attachment's address {stale_ip}")
    for pod, att, result in added[:2]:
        expect(result_ip(result) in s.allocated(), f"GC released the valid attachment's address {result_ip(result)}")
        if att.ifname not in pod.links():
            ends = ", ".join(i["name"] for i in result.get("interfaces") or [] if not i.get("sandbox"))
            raise Violation(f"GC deleted a valid attachment's interface: {att.ifname} is gone from its pod (its host "
                            f"side {ends or '?'} went with it?) -- GC may touch only attachments missing from the list")
        expect(result["ips"][0]["address"] in pod_addresses(pod, att.ifname), "GC removed a valid pod's address")
    stale_hosts = set(host_links(s, added[2][2]))
    expect(not stale_hosts & {st.name for st in s.node.link_states() if st.kind != "bridge"},
           f"GC kept the stale attachment's host interface(s) {stale_hosts}")
    expect(not [r for r in s.node.iptables_rules("nat") if f"{stale_ip}/32" in r], "GC kept the stale attachment's NAT rules")
    a, b = added[0], added[1]
    expect(ping(a[0], result_ip(b[2]), count=1, wait=2).received, "after GC the valid pods cannot reach each other")
    return ""


@requirement("gc.no-valid-list", "GC without a valid list, or of a version without GC, removes nothing", MUST,
             "2 Execution protocol / GC",
             "cni.dev/valid-attachments: the list of attachments that are still valid (GC is new in spec 1.1.0)",
             since="1.1.0", variants=("key-missing", "cniversion-1.0.0"))
def gc_no_valid_list(s: Session, case: str) -> None:
    pods = [s.add() for _ in range(2)]
    before = s.state()
    conf = s.own_conf()
    if case == "cniversion-1.0.0":  # a 1.0.0 runtime knows no GC: whatever it sends, nothing valid may go
        conf = {**conf, "cniVersion": "1.0.0", "cni.dev/valid-attachments": []}
    call = s.raw("GC", conf, env=s.env(None, "GC"))
    s.settle()
    for pod, att, result in pods:
        expect(result["ips"][0]["address"] in pod_addresses(pod, att.ifname),
               f"GC without a valid list removed a pod's network ({call.describe()})")
    expect(s.state() == before, f"GC without a valid list changed the node: {before.diff(s.state())} ({call.describe()})")


@requirement("gc.other-network", "GC of one network leaves another network on the same bridge alone", MUST,
             "1 Network configuration / name",
             "Network name. This should be unique across all containers on the host", since="1.1.0")
def gc_other_network(s: Session) -> None:
    applies(s.target.uses("bridge"), "the configuration names no bridge that two networks could share")
    mine = s.conflist()
    theirs = s.conflist(name="othernet")
    pod_a, att_a, ra = s.add(conflist=mine)
    pod_b, att_b, rb = s.add(conflist=theirs)
    before = s.state()
    s.runtime.gc(mine, [att_a])
    s.settle()
    expect(rb["ips"][0]["address"] in pod_addresses(pod_b, att_b.ifname), "GC of labnet removed othernet's pod address")
    expect(s.state() == before, f"GC of labnet (its pod valid) changed the node: {before.diff(s.state())}")


# -- STATUS -------------------------------------------------------------------------------------------

@requirement("status.ready", "STATUS succeeds when the plugin can serve ADD", MUST, "2 Execution protocol / STATUS",
             "If the plugin is ready to service ADD requests, it must exit with a return code of 0", since="1.1.0")
def status_ready(s: Session) -> None:
    call = s.raw("STATUS", s.own_conf(), env=s.env(None, "STATUS"))
    expect(call.returncode == 0, f"STATUS on a fresh node failed: {call.describe()}")
    s.add()


@requirement("status.unusable-data-dir", "STATUS fails with code 50 when the IPAM data directory is unusable", MUST,
             "2 Execution protocol / STATUS",
             "A plugin must return an error if it cannot service ADD requests (50: the plugin is not available)",
             since="1.1.0")
def status_unusable_data_dir(s: Session) -> None:
    applies(s.target.uses("dataDir"), "the configuration keeps no IPAM data directory")
    s.data_dir.parent.mkdir(parents=True, exist_ok=True)
    s.data_dir.write_text("a file where the data directory should be\n")
    add = s.raw("ADD", s.own_conf(), s.attachment(s.pod()))
    applies(add.returncode != 0, "ADD still works with a file in place of the data directory")
    call = s.raw("STATUS", s.own_conf(), env=s.env(None, "STATUS"))
    code = call.answer.get("code") if isinstance(call.answer, dict) else None
    expect(call.returncode != 0 and code == 50, f"ADD cannot work, but STATUS answered {call.describe()}")


@requirement("status.pool-exhausted", "STATUS fails with code 50 once the address pool is exhausted", SHOULD,
             "2 Execution protocol / STATUS", "50 - The plugin is not available (i.e. cannot service ADD requests)",
             since="1.1.0")
def status_pool_exhausted(s: Session) -> None:
    applies(s.target.uses("subnet"), "the configuration takes no subnet from the checker")
    s.values["subnet"] = "10.23.0.0/30"  # room for the gateway and one pod
    s.add()
    add = s.raw("ADD", s.own_conf(), s.attachment(s.pod()))
    applies(add.returncode != 0, "the pool takes more than one pod")
    call = s.raw("STATUS", s.own_conf(), env=s.env(None, "STATUS"))
    code = call.answer.get("code") if isinstance(call.answer, dict) else None
    expect(call.returncode != 0 and code == 50, f"the pool is exhausted, but STATUS answered {call.describe()}")


# -- a plugin killed in the middle of ADD ------------------------------------------------------------

#: the points of an ADD where cnilab's plugin can be crashed on purpose (its errors.FAULT_POINTS; a unit test
#: keeps the two lists equal)
CNILAB_FAULT_POINTS = ("after-lock", "ipam-after-index", "ipam-after-temp", "ipam-after-record", "after-reserve",
                       "after-veth", "after-wire", "after-masq", "before-done")

KILL_POINTS = ("at-start", "ipam-write", "ipam-temp-file", "ipam-record", "link-created", "halfway", "ipam-lock-held")


def _watch(s: Session, point: str, baseline, add_time: float):
    """A condition that is true when the ADD has reached ``point`` (polled without pause: the windows are short)."""
    links = {st.name for st in s.node.link_states()}
    if point == "at-start":
        return lambda: True
    if point == "ipam-write":  # the first change in the data directory (a lock, a directory)
        return lambda: s.state_files() != baseline.files
    if point == "ipam-temp-file":  # a record being written (an IPAM that writes a temporary file first)
        return lambda: any(".tmp" in Path(f).name for f in s.state_files() - baseline.files)
    if point == "ipam-record":  # a file named by the address: the reservation exists
        return lambda: any(Path(f).name[:1].isdigit() for f in s.state_files() - baseline.files)
    if point == "link-created":
        return lambda: bool({m.get("IFLA_IFNAME") for m in s.node.ipr.get_links()} - links)
    start = time.monotonic()
    return lambda: time.monotonic() - start >= add_time / 2


@requirement("fault.killed-add", "after a plugin is SIGKILLed mid-ADD, DEL leaves nothing and a new ADD works", SHOULD,
             "2 Execution protocol / DEL",
             "Plugins should generally complete a DEL action without error even if some resources are missing",
             variants=KILL_POINTS)
def fault_killed_add(s: Session, point: str) -> str:
    baseline = warmed(s)
    add_time = s.add_seconds
    pod = s.pod()
    att = s.attachment(pod)
    conf = s.own_conf()
    lock = _hold_ipam_lock(s) if point == "ipam-lock-held" else None
    proc = s.spawn(s.env(att, "ADD"))
    reached = _waits_on(lock) if lock else _watch(s, point, baseline, add_time)
    feeder = threading.Thread(target=lambda: _feed(proc, conf), daemon=True)
    feeder.start()
    deadline = time.monotonic() + 10
    hit = False
    while proc.poll() is None and time.monotonic() < deadline:
        if reached():
            hit = True
            break
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    feeder.join()
    killed = proc.returncode == -signal.SIGKILL
    if lock:
        applies(hit, f"the plugin never waited for its IPAM lock {lock.name}")
        # the runtime gave up on the call: nothing of it may go on working (and finish after the DEL)
        still = s.eventually(lambda: not _holders(lock.name), timeout=2)
        _release(lock)
        expect(still, f"SIGKILL of the plugin did not stop the call: pids {_holders(lock.name)} still wait for the "
                      "IPAM lock and will finish the ADD after the runtime's DEL")
    try:
        s.runtime.delete(s.conflist(), att)
    except CNIError as exc:
        raise Violation(f"DEL after the kill failed: {exc}") from None
    s.settle()
    expect(att.ifname not in pod.links(), f"DEL after the kill left {att.ifname} in the pod")
    after = s.state()
    expect(after == baseline, f"DEL after the kill left something behind: {baseline.diff(after)}")
    _, att2, _ = s.add(pod)
    s.runtime.delete(s.conflist(), att2)
    s.settle()
    expect(s.state() == baseline, f"ADD+DEL after the kill left something behind: {baseline.diff(s.state())}")
    return f"killed {'at ' + point if hit and killed else 'after it finished (the point came too late)'}"


def _hold_ipam_lock(s: Session):
    """Take the IPAM's lock file (host-local's convention, ``DATADIR/NETWORK/lock``) so an ADD blocks on it."""
    import fcntl

    locks = sorted(s.data_dir.rglob("lock")) if s.data_dir.is_dir() else []
    applies(locks, "the IPAM keeps no lock file in its data directory")
    f = open(locks[0], "r+")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def _release(lock) -> None:
    import fcntl

    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()


def _holders(path: str) -> list[int]:
    """Processes (other than this one) with ``path`` open."""
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == path for fd in os.listdir(f"/proc/{pid}/fd")):
                found.append(int(pid))
        except OSError:
            continue
    return found


def _waits_on(lock):
    return lambda: bool(_holders(lock.name))


def _feed(proc, conf) -> None:
    import json

    try:
        proc.stdin.write(json.dumps(conf).encode())
        proc.stdin.close()
    except (BrokenPipeError, ValueError):
        pass


@requirement("fault.hook", "cnilab's own fault hook: after a crash at each step of ADD, a new ADD works and DEL leaves nothing", SHOULD,
             "2 Execution protocol / DEL",
             "the plugin should clean up as many resources as possible (e.g. releasing IPAM allocations)",
             variants=CNILAB_FAULT_POINTS)
def fault_hook(s: Session, point: str) -> None:
    applies(s.target.family == "cnilab", "the fault hook CNILAB_CNI_FAULT is cnilab's own; other plugins are killed instead")
    baseline = warmed(s)
    pod = s.pod()
    att = s.attachment(pod)
    env = {**s.env(att, "ADD"), "CNILAB_CNI_FAULT": point}
    call = s.raw("ADD", s.own_conf(), env=env)
    expect(call.returncode != 0, f"the fault hook did not fire at {point}")
    again = s.raw("ADD", s.own_conf(), att)  # a runtime may retry before it deletes
    expect(again.returncode == 0, f"ADD after a crash at {point} failed: {again.describe()}")
    s.runtime.delete(s.conflist(), att)
    s.settle()
    expect(s.state() == baseline, f"DEL after a crash at {point} and a new ADD left something behind: "
                                  f"{baseline.diff(s.state())}")
    s.raw("ADD", s.own_conf(), env=env)
    s.runtime.delete(s.conflist(), att)
    s.settle()
    expect(s.state() == baseline, f"DEL right after a crash at {point} left something behind: {baseline.diff(s.state())}")


# -- what other pods see -------------------------------------------------------------------------------

@requirement("add.host-macs", "the MACs the result gives for node interfaces are theirs", MUST, "5 Result types / interfaces",
             "mac (string): the hardware address of the interface")
def add_host_macs(s: Session) -> None:
    _, _, result = s.add()
    kernel = {st.name: st.mac.lower() for st in s.node.link_states()}
    for iface in result.get("interfaces") or []:
        if not iface.get("sandbox") and iface.get("mac") and iface.get("name") in kernel:
            expect(iface["mac"].lower() == kernel[iface["name"]],
                   f"the result gives {iface['name']} the MAC {iface['mac']}, the kernel says {kernel[iface['name']]}")


@requirement("robust.gateway-mac-stable", "the gateway's MAC stays when pods come and go", SHOULD, "Overview",
             "network refers to a group of entities that ... can communicate amongst each other (a gateway whose MAC "
             "changes cuts every pod off until its ARP entry expires)")
def gateway_mac_stable(s: Session) -> None:
    added = [s.add() for _ in range(3)]
    bridges = [n for n, k in host_links(s, added[0][2]).items() if k == "bridge"]
    applies(bridges, "the plugin puts no bridge on the node")
    bridge = s.node.link(bridges[0])
    mac = bridge.state().mac
    for _ in range(2):  # delete the pod whose port lends the bridge its MAC, if one does: the kernel's choice
        kernel = {st.name: st.mac for st in s.node.link_states()}
        lender = next((a for a in added if mac in {kernel.get(n) for n in host_links(s, a[2])}), added[0])
        added.remove(lender)
        s.runtime.delete(s.conflist(), lender[1])
        expect(bridge.state().mac == mac, f"deleting a pod changed the bridge's MAC {mac} -> {bridge.state().mac}: "
                                          "the other pods' ARP entries for their gateway are now wrong")
