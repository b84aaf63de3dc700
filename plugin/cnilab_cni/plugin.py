"""The verbs: ADD, DEL, CHECK, VERSION, STATUS, GC (CNI SPEC 1.1.0, section 2 "Execution protocol").

ADD does what stages 02-05 of the lab teach, in one program: the bridge with the
gateway address (stage 03), a veth per attachment whose pod end is born in the
pod's namespace as CNI_IFNAME (stage 02), addresses and the default route
(stages 02, 05), MTU, and optionally a MASQUERADE rule (stage 05).

A completed ADD marks its host end (the link's alias ``cnilab:done``): a second ADD of the
same attachment is refused (SPEC: the interface exists), while the half-made veth of a
crashed ADD is cleared by the next ADD or DEL (see ``_clear_leftover``).
"""

import os
import sys
import time

from . import SUPPORTED_VERSIONS, addr, fastjson
from .config import (ENV_HELP, Config, attachment_id, check_ifname, container_id, env, host_veth, valid_attachments,
                     version_tuple)
from .errors import (CHECK_FAILED, IFNAME_EXISTS, INCOMPATIBLE_VERSION, INTERNAL, INVALID_CONFIG, INVALID_ENV,
                     NOT_AVAILABLE, CniError, fault)
from .netlink import EEXIST, IFF_UP, Netlink, NetlinkError

# nsenter (setns via _ctypes) and nat (iptables) are imported only by the verbs that need
# them: DEL, the verb a runtime waits on most, pays for neither.

DONE = "cnilab:done"  # the host end's alias once its ADD has completed
OWN_MAC = "cnilab:own-mac"  # the bridge's alias once the plugin has pinned its MAC (bridgemac.py)

#: thick mode: the daemon's child sets it to a test of whether the shim that brought the call still lives
CALLER_GONE = None


def result(conf: Config, bridge: dict, host: dict, cont: dict, netns: str, ip: str) -> dict:
    """The ADD result in the layout of the requested cniVersion (SPEC section 5 "Result types")."""
    ipinfo = {"address": f"{ip}/{conf.pool.plen}", "interface": 2}
    if conf.is_gateway:
        ipinfo["gateway"] = conf.gateway
    if version_tuple(conf.version) < (1, 0, 0):
        ipinfo["version"] = "4"
    out = {
        "cniVersion": conf.version,
        "interfaces": [{"name": bridge["name"], "mac": bridge["mac"]},
                       {"name": host["name"], "mac": host["mac"]},
                       {"name": cont["name"], "mac": cont["mac"], "sandbox": netns}],
        "ips": [ipinfo],
        "routes": [{"dst": "0.0.0.0/0", "gw": conf.gateway}] if conf.default_route and conf.is_gateway else [],
        "dns": conf.raw.get("dns") or {},
    }
    if version_tuple(conf.version) >= (1, 1, 0):
        out["interfaces"][2]["mtu"] = conf.mtu
    for r in conf.ipam.get("routes") or []:
        out["routes"].append({"dst": r["dst"], **({"gw": r["gw"]} if r.get("gw") else {})})
    return out


def _pinned_mac() -> bytes:
    """A random, locally administered unicast MAC: a bridge with its own address keeps it whatever
    ports come and go (left to the kernel it takes the lowest port's, and changes when that pod goes)."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 0x02
    return bytes(raw)


def ensure_bridge(nl: Netlink, conf: Config) -> dict:
    """Stage 03 in one call: the bridge exists, is up and holds the gateway; stage 05's forwarding is on."""
    # BEGIN SOLUTION: make sure bridge conf.bridge exists (create it if absent, with its own MAC), is up and, when isGateway, holds conf.gateway; with isGateway or ipMasq turn on ip_forward; return nl.link(conf.bridge)
    br = nl.link(conf.bridge)
    if br is None:
        try:
            nl.add_bridge(conf.bridge, conf.mtu, mac=_pinned_mac())
        except NetlinkError as exc:
            if exc.errno != EEXIST:  # a parallel ADD created it first
                raise
        br = nl.link(conf.bridge)
    elif br["kind"] != "bridge":
        raise CniError(INVALID_CONFIG, f"{conf.bridge} exists but is a {br['kind'] or 'plain'} link, not a bridge")
    if not br["flags"] & IFF_UP:
        nl.set_link(br["index"], up=True)
    if conf.is_gateway:
        nl.add_addr(br["index"], conf.gateway, conf.pool.plen)
    if conf.is_gateway or conf.ip_masq:
        with open("/proc/sys/net/ipv4/ip_forward", "r+") as f:
            if f.read().strip() != "1":
                f.seek(0)
                f.write("1")
    return br
    # END SOLUTION


def create_veth(nl: Netlink, conf: Config, host_name: str, ifname: str, ns_fd: int) -> None:
    """Stage 02: the cable, its pod end born in the pod's namespace under its final name."""
    # BEGIN SOLUTION: create the veth pair host_name <-> ifname with the pod end in ns_fd, both with conf.mtu
    nl.add_veth(host_name, ifname, ns_fd, conf.mtu)
    # END SOLUTION


def wire(nl: Netlink, inner: Netlink, conf: Config, bridge: dict, host_name: str, ifname: str, ip: str) -> tuple[dict, dict]:
    """Stages 02, 03 and 05: the host end on the bridge, the pod end addressed and routed."""
    # BEGIN SOLUTION: make host_name a port of the bridge and bring it up; give the pod end ip/plen, bring it up, add the default route via conf.gateway (with isGateway and isDefaultGateway) and the ipam routes; return (host link, pod link)
    host = nl.link(host_name)
    nl.set_link(host["index"], master=bridge["index"], up=True)
    cont = inner.link(ifname)
    inner.add_addr(cont["index"], ip, conf.pool.plen)
    inner.set_link(cont["index"], up=True)
    if conf.default_route and conf.is_gateway:
        inner.add_route("0.0.0.0", 0, conf.gateway, cont["index"])
    for r in conf.ipam.get("routes") or []:
        dst, plen = addr.parse_cidr(r["dst"])
        inner.add_route(addr.to_str(dst), plen, r.get("gw") or conf.gateway, cont["index"])
    return host, cont
    # END SOLUTION


def masquerade(conf: Config, ip: str, att: str) -> None:
    """Stage 05: traffic of this pod leaving the subnet takes the node's address (one tagged rule)."""
    # BEGIN SOLUTION: add the MASQUERADE rule for ip (leaving conf.subnet), tagged with the attachment id att
    from . import nat

    nat.masquerade(ip, conf.subnet, conf.name, att)
    # END SOLUTION


def _clear_leftover(nl: Netlink, inner: Netlink, conf: Config, host_name: str, ifname: str, att: str) -> None:
    """Refuse a second ADD of a set-up attachment; clear what a crashed ADD of it left (SPEC: ADD must
    fail when CNI_IFNAME exists, so a pod's interface is never silently rebuilt).

    How a completed ADD is told from a crashed one: the very last step of ADD, after every other
    change (veth, addresses, routes, NAT rule, reservation), sets the host end's alias to ``DONE``.
    The host end's name is derived from (container ID, ifname), so it is found without the pod.
    - host end with the mark: a completed ADD -> error 101, nothing touched;
    - host end without it: an ADD of this attachment that died (SIGKILL, a runtime's timeout) between
      creating the veth and marking it -> its veth goes (the pod end with it) and so does its NAT rule;
      its reservation is kept and reused by this ADD (the IPAM finds it by the attachment);
    - no host end but CNI_IFNAME in the pod: not ours (or another network's) -> error 101.
    The attachment's lock is held, so no ADD of it is at work while this looks. An ADD killed after the
    mark had finished its work: it counts as completed (DEL clears it), there is nothing else to tell it by.
    """
    mine = nl.link(host_name)
    if mine is not None and mine["alias"] == DONE:
        raise CniError(IFNAME_EXISTS, f"interface {ifname} of this container is already set up",
                       "ADD was called twice for one container and ifname: call DEL first")
    if mine is not None:  # a crashed ADD of this very attachment: its pod end goes with it
        nl.del_link(host_name)
        if conf.ip_masq:
            from . import nat

            nat.remove(conf.name, only=att)
    if inner.link(ifname) is not None:
        raise CniError(IFNAME_EXISTS, f"interface {ifname} already exists in the container",
                       "choose another CNI_IFNAME, or DEL the attachment that made it first")


def cmd_add(conf: Config) -> dict:
    cid, netns, ifname = container_id(), env("CNI_NETNS"), check_ifname(env("CNI_IFNAME"))
    try:
        ns_fd = os.open(netns, os.O_RDONLY)
    except OSError as exc:
        raise CniError(INVALID_ENV, f"CNI_NETNS {netns} cannot be opened: {exc.strerror}", "pass an existing network namespace path") from None
    from .nsenter import InNetns

    att, host_name = attachment_id(cid, ifname), host_veth(cid, ifname)
    guard = conf.pool.attachment_lock(att)
    if CALLER_GONE is not None and CALLER_GONE():
        os._exit(137)  # its runtime killed the call before it began (and may have run its DEL): begin nothing
    fault("after-lock")
    nl = Netlink()
    with InNetns(netns):
        inner = Netlink()  # bound to the pod's namespace for as long as it lives
    try:
        _clear_leftover(nl, inner, conf, host_name, ifname, att)
        bridge = ensure_bridge(nl, conf)
        if bridge["alias"] != OWN_MAC:  # its MAC not pinned yet: it is new, or the plugin did not make it
            from .bridgemac import pin

            bridge = pin(nl, bridge, _pinned_mac, OWN_MAC)
        ip = addr.to_str(conf.pool.reserve(cid, ifname, att))
        fault("after-reserve")
        try:
            create_veth(nl, conf, host_name, ifname, ns_fd)
            fault("after-veth")
            host, cont = wire(nl, inner, conf, bridge, host_name, ifname, ip)
            fault("after-wire")
            if conf.ip_masq:
                masquerade(conf, ip, att)
            fault("after-masq")
            fault("before-done")
            nl.set_alias(host["index"], DONE)  # from here on, a second ADD is refused
        except BaseException:
            nl.del_link(host_name)
            if conf.ip_masq:
                from . import nat

                nat.remove(conf.name, only=att)
            conf.pool.release(cid, ifname, att)
            raise
        return result(conf, bridge, host, cont, netns, ip)
    finally:
        inner.close()
        nl.close()
        os.close(ns_fd)
        conf.pool.drop_attachment_lock(att, guard)


def cmd_del(conf: Config) -> None:
    """Idempotent: every step tolerates the thing being gone already (SPEC: DEL must not fail on missing resources)."""
    cid, ifname = container_id(), env("CNI_IFNAME")
    att = attachment_id(cid, ifname)
    guard = conf.pool.attachment_lock(att)  # an ADD of this attachment still at work finishes (or dies) first
    try:
        # BEGIN SOLUTION: delete the host end host_veth(cid, ifname) (its peer goes with it), remove the attachment's MASQUERADE rule if ipMasq, release its address
        nl = Netlink()
        try:
            nl.del_link(host_veth(cid, ifname))
        finally:
            nl.close()
        if conf.ip_masq:
            from . import nat

            nat.remove(conf.name, only=attachment_id(cid, ifname))
        conf.pool.release(cid, ifname, attachment_id(cid, ifname))
        # END SOLUTION
    finally:
        conf.pool.drop_attachment_lock(att, guard)


def cmd_check(conf: Config) -> None:
    if version_tuple(conf.version) < (0, 4, 0):
        raise CniError(INCOMPATIBLE_VERSION, f"CHECK does not exist in cniVersion {conf.version}", "use 0.4.0 or later")
    cid, netns, ifname = container_id(), env("CNI_NETNS"), env("CNI_IFNAME")
    prev = conf.raw.get("prevResult")
    if not isinstance(prev, dict):
        raise CniError(INVALID_CONFIG, "CHECK needs prevResult", "the runtime passes the cached ADD result as prevResult")
    # BEGIN SOLUTION: fail with CHECK_FAILED unless host_veth(cid, ifname) exists and is a port of conf.bridge
    nl = Netlink()
    try:
        host = nl.link(host_veth(cid, ifname))
        br = nl.link(conf.bridge)
        if host is None or br is None or host["master"] != br["index"]:
            raise CniError(CHECK_FAILED, f"the host end of {ifname} is missing or not on bridge {conf.bridge}")
    finally:
        nl.close()
    # END SOLUTION
    _check_outside_the_pod(conf, cid, ifname, prev)
    if not os.path.exists(netns):
        raise CniError(CHECK_FAILED, f"network namespace {netns} is gone")
    from .nsenter import InNetns

    with InNetns(netns):
        inner = Netlink()
    try:
        # BEGIN SOLUTION: in the pod, fail with CHECK_FAILED unless ifname exists with the MAC of prevResult, holds every address of prevResult and every route of prevResult is there
        cont = inner.link(ifname)
        if cont is None:
            raise CniError(CHECK_FAILED, f"interface {ifname} is missing in {netns}")
        want = next((i.get("mac") for i in prev.get("interfaces") or [] if i.get("name") == ifname and i.get("sandbox")), None)
        if want and want.lower() != cont["mac"]:
            raise CniError(CHECK_FAILED, f"interface {ifname} has MAC {cont['mac']}, not {want} as ADD made it")
        have = {f"{ip}/{plen}" for _, ip, plen in inner.addrs(cont["index"])}
        for ipc in prev.get("ips") or []:
            if ipc["address"] not in have:
                raise CniError(CHECK_FAILED, f"address {ipc['address']} is missing on {ifname}", f"present: {sorted(have) or 'none'}")
        routes = inner.routes()
        for r in prev.get("routes") or []:
            dst, plen = r["dst"].split("/")
            if not any(d == dst and p == int(plen) for d, p, _, _ in routes):
                raise CniError(CHECK_FAILED, f"route {r['dst']} is missing in {netns}")
        # END SOLUTION
    finally:
        inner.close()


def _check_outside_the_pod(conf: Config, cid: str, ifname: str, prev: dict) -> None:
    """SPEC CHECK: resources the result does not list -- the IP reservation, the firewall rule -- must be there
    too; and the host end must have the MAC the result gave it."""
    att, name = attachment_id(cid, ifname), host_veth(cid, ifname)
    want = next((i.get("mac") for i in prev.get("interfaces") or [] if i.get("name") == name and not i.get("sandbox")), None)
    if isinstance(want, str) and want:
        nl = Netlink()
        try:
            host = nl.link(name)
        finally:
            nl.close()
        if host is not None and want.lower() != host["mac"]:
            raise CniError(CHECK_FAILED, f"the host end {name} has MAC {host['mac']}, not {want} as ADD made it",
                           "the pod's traffic is forwarded by MAC: delete and re-add this pod")
    for ipc in prev.get("ips") or []:
        ip = addr.to_int(ipc["address"].partition("/")[0])
        if not conf.pool.holds(cid, ifname, att, ip):
            raise CniError(CHECK_FAILED, f"the IPAM holds no reservation of {ipc['address']} for this container",
                           "the address could be handed to another pod: delete and re-add this one")
    if conf.ip_masq:
        from . import nat

        if att not in nat.attachments(conf.name):
            raise CniError(CHECK_FAILED, "the pod's MASQUERADE rule is missing (ipMasq)", "its traffic leaves the node unmasqueraded")


def cmd_gc(conf: Config) -> None:
    valid = valid_attachments(conf)

    # BEGIN SOLUTION: release the addresses of attachments not in valid, delete their host ends (only this network's: the ones its IPAM knows), remove their MASQUERADE rules
    rules: set[str] = set()
    if conf.ip_masq:
        from . import nat

        rules = nat.attachments(conf.name)

    def remove(stale: set[str]) -> None:  # while the stale attachments are locked: no ADD of one starts meanwhile
        nl = Netlink()
        try:
            for att in stale:
                nl.del_link("vc" + att)
        finally:
            nl.close()
        if rules & stale:
            nat.remove(conf.name, only=rules & stale)

    conf.pool.keep_only(valid, then=remove, others=rules)
    # END SOLUTION


def cmd_status(conf: Config) -> None:
    conf.pool.usable()
    # BEGIN SOLUTION: fail with NOT_AVAILABLE (50) when every address of the pool is allocated
    if conf.pool.used() >= conf.pool.capacity:
        raise CniError(NOT_AVAILABLE, f"the address pool of {conf.name} is exhausted", "ADD would fail until pods are deleted")
    # END SOLUTION


def run(command: str, stdin: bytes) -> dict | None:
    if command == "VERSION":
        try:
            asked = fastjson.loads(stdin).get("cniVersion") if stdin.strip() else None
        except (ValueError, AttributeError):
            asked = None
        return {"cniVersion": asked if asked in SUPPORTED_VERSIONS else SUPPORTED_VERSIONS[-1],
                "supportedVersions": SUPPORTED_VERSIONS}
    verbs = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc, "STATUS": cmd_status}
    if command not in verbs:
        raise CniError(INVALID_ENV, f"CNI_COMMAND {command!r} is unknown", ENV_HELP["CNI_COMMAND"])
    return verbs[command](Config(stdin))


#: "process" when the runtime ran this program; "daemon" in a child of the node daemon (thick mode)
SERVED_BY = "process"


def log_call(path: object, outcome: str) -> None:
    """One line per call in the file the config names as ``logFile`` (what the runtime asked, what came of it)."""
    if not isinstance(path, str) or not path:
        return
    e = os.environ.get
    line = (f"{time.strftime('%H:%M:%S')} {e('CNI_COMMAND', '?')} container={e('CNI_CONTAINERID', '-')} "
            f"ifname={e('CNI_IFNAME', '-')} netns={e('CNI_NETNS') or '-'} -> {outcome} [{SERVED_BY}]\n")
    try:
        with open(path, "a") as f:
            f.write(line)
    except OSError:
        pass  # a log that cannot be written must not fail the pod


def main() -> int:
    stdin = sys.stdin.buffer.read()
    version, logfile = SUPPORTED_VERSIONS[-1], None
    try:
        try:
            raw = fastjson.loads(stdin)
            version = raw.get("cniVersion") if raw.get("cniVersion") in SUPPORTED_VERSIONS else version
            logfile = raw.get("logFile")
        except Exception:  # noqa: BLE001 -- reported properly by Config below
            pass
        out = run(env("CNI_COMMAND"), stdin)
    except CniError as err:
        log_call(logfile, f"error {err.code}: {err.msg}")
        sys.stdout.write(fastjson.dumps({"cniVersion": version, "code": err.code, "msg": err.msg, "details": err.details}))
        return 1
    except Exception as exc:  # noqa: BLE001 -- a plugin must answer in JSON whatever happens
        log_call(logfile, f"error {INTERNAL}: {exc}")
        sys.stdout.write(fastjson.dumps({"cniVersion": version, "code": INTERNAL, "msg": f"internal error: {exc}",
                                         "details": type(exc).__name__}))
        return 1
    ips = [ip.get("address") for ip in (out or {}).get("ips") or []]
    log_call(logfile, "ok" + (f" {', '.join(ips)}" if ips else ""))
    if out is not None:
        sys.stdout.write(fastjson.dumps(out))
    return 0
