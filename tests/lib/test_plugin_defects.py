"""cnilab's CNI plugin, installed and driven as a runtime drives it, against the defects once found in it
(the CNI spec 1.1.0 is the authority): a second ADD, a call its runtime killed (thick mode), GC beside
another network and without its list, container IDs and interface names, the bridge's MAC, CHECK,
booleans, hostile input, STATUS, the gateway defaults, and a crash at every step of ADD.

Everything runs in lab namespaces (the node is one): nothing touches the machine's own network.
``CNILAB_PLUGIN_SOURCE=DIR`` (a ``plugin/`` folder) runs them against another copy of the plugin: how each
was seen failing on the code before its fix.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from cnilab.core import nsexec
from cnilab.core.suite import plugin_dir
from cnilab.core.wait import wait_for
from cnilab.runtime.cni import Attachment, CNIError, PluginDaemon, Runtime, install_plugin, is_thick

SOURCE = Path(os.environ.get("CNILAB_PLUGIN_SOURCE") or plugin_dir())
REFERENCE_DIR = "/usr/lib/cni"
SUBNET, GATEWAY = "10.40.0.0/16", "10.40.0.1"
IFNAME_EXISTS, CHECK_FAILED = 101, 102
INCOMPATIBLE_VERSION, INVALID_ENV, DECODE_FAILURE, INVALID_CONFIG, NOT_AVAILABLE = 1, 4, 6, 7, 50


def fault_points() -> tuple[str, ...]:
    """The plugin's own list of the points where CNILAB_CNI_FAULT crashes an ADD (errors.FAULT_POINTS)."""
    spec = importlib.util.spec_from_file_location("plugin_errors_under_test", SOURCE / "cnilab_cni" / "errors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, "FAULT_POINTS", ())


@pytest.fixture(scope="module")
def thick_bin(tmp_path_factory):
    """Name: thick_bin. Scope: module. The plugin installed thick (the native shim), its node daemon up."""
    bin_dir = tmp_path_factory.mktemp("defects-bin")
    install_plugin(bin_dir, source=SOURCE)
    if not is_thick(bin_dir / "cnilab"):
        pytest.skip("thick mode needs a C compiler to build its shim: apt-get install -y gcc")
    with PluginDaemon(bin_dir, source=SOURCE):
        yield bin_dir


class Rig:
    """A runtime on a lab node driving the installed plugin, with pods and the node's state at hand."""

    def __init__(self, lab, bin_dir: Path, work: Path):
        self.lab, self.bin_dir, self.data = lab, bin_dir, work / "ipam"
        self.node = lab.netns("node")
        self.runtime = Runtime([bin_dir, REFERENCE_DIR], work / "cache", node=self.node.name)
        self.pods = 0

    def conflist(self, name: str = "labnet", version: str = "1.1.0", subnet: str = SUBNET, **extra) -> dict:
        plugin = {"type": "cnilab", "bridge": "cni0", "isGateway": True, "isDefaultGateway": True, "mtu": 1500,
                  "ipam": {"type": "cnilab", "subnet": subnet, "dataDir": str(self.data)}}
        return {"cniVersion": version, "name": name, "plugins": [{**plugin, **extra}]}

    def conf(self, conflist: dict) -> dict:
        return Runtime.plugin_confs(conflist)[0]

    def pod(self):
        self.pods += 1
        return self.lab.netns(f"p{self.pods}")

    def att(self, pod, ifname: str = "eth0", cid: str | None = None) -> Attachment:
        return Attachment(cid if cid is not None else f"ctr-{pod.short}", f"/run/netns/{pod.name}", ifname)

    def call(self, verb: str, conf: dict | bytes, att: Attachment | None = None, **env: str) -> dict | None:
        """One call of the plugin as the runtime makes it (raises CNIError with the plugin's code)."""
        base = {"CNI_CONTAINERID": att.container_id, "CNI_NETNS": att.netns, "CNI_IFNAME": att.ifname} if att else {}
        return self.runtime.exec_plugin("cnilab", verb, conf, {**base, **env})

    def code_of(self, verb: str, conf: dict | bytes, att: Attachment | None = None, **env: str) -> CNIError:
        with pytest.raises(CNIError) as err:
            self.call(verb, conf, att, **env)
        return err.value

    # -- the node's state ---------------------------------------------------------------------------
    def host_ends(self) -> list[str]:
        return sorted(n for n in self.node.links() if n.startswith("vc"))

    def ipam_files(self, network: str = "labnet") -> list[str]:
        """What the IPAM keeps for pods: records, index, temporary and per-attachment lock files."""
        d = self.data / network
        return sorted(n for n in os.listdir(d) if n not in ("lock", "last_reserved_ip")) if d.is_dir() else []

    def allocated(self, network: str = "labnet") -> list[str]:
        return [n for n in self.ipam_files(network) if n.count(".") == 3 and n[0].isdigit()]

    def nat_rules(self) -> list[str]:
        return [r for r in self.node.iptables_rules("nat") if "cnilab:" in r]

    def leftovers(self, network: str = "labnet") -> dict[str, list[str]]:
        return {"host ends": self.host_ends(), "ipam files": self.ipam_files(network), "NAT rules": self.nat_rules()}


NOTHING = {"host ends": [], "ipam files": [], "NAT rules": []}


@pytest.fixture
def rig(lab, thick_bin, tmp_path) -> Rig:
    """Name: rig. Scope: function. Depends: lab, thick_bin. A runtime on a lab node with the plugin installed."""
    return Rig(lab, thick_bin, tmp_path)


def result_ip(result: dict) -> str:
    return result["ips"][0]["address"].split("/")[0]


# -- 1. a second ADD -------------------------------------------------------------------------------------

def test_a_second_add_is_refused_and_leaves_the_pod_as_it_was(rig):
    """SPEC ADD: when the interface CNI_IFNAME already exists the plugin must return an error (not rebuild it)."""
    pod, conf = rig.pod(), rig.conflist()
    att = rig.att(pod)
    first = rig.runtime.add(conf, att)
    before = pod.link("eth0").state()
    err = rig.code_of("ADD", rig.conf(conf), att)
    assert err.code == IFNAME_EXISTS and "eth0" in err.msg, err
    after = pod.link("eth0").state()
    assert (after.index, after.mac) == (before.index, before.mac), "the second ADD rebuilt the pod's interface"
    assert pod.link("eth0").addresses() == [first["ips"][0]["address"]]
    assert rig.allocated() == [result_ip(first)] and len(rig.host_ends()) == 1
    rig.runtime.delete(conf, att)
    again = rig.runtime.add(conf, att)  # DEL, then a fresh ADD works
    assert pod.link("eth0").addresses() == [again["ips"][0]["address"]]


# -- 2. thick mode: the runtime kills the shim mid-ADD ---------------------------------------------------

def _spawn_shim(rig: Rig, conf: dict, att: Attachment, **env: str) -> subprocess.Popen:
    """The plugin executable started as the runtime starts it (from inside the node), stdin fed and closed."""
    full = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": "ADD",
            "CNI_PATH": str(rig.bin_dir), "CNI_CONTAINERID": att.container_id, "CNI_NETNS": att.netns,
            "CNI_IFNAME": att.ifname, **env}
    proc = nsexec.call_in(rig.node.name, subprocess.Popen, [str(rig.bin_dir / "cnilab")], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full)
    proc.stdin.write(json.dumps(conf).encode())
    proc.stdin.close()
    return proc


@pytest.mark.parametrize("point", ["after-lock", "after-reserve"])
def test_a_shim_killed_mid_add_stops_its_call_so_del_leaves_nothing(rig, tmp_path, point):
    """The runtime SIGKILLs the shim (its timeout) while the daemon's child works on the ADD, then runs DEL.
    The child must stop (or the DEL wait for it): once it is gone nothing of the ADD may remain."""
    pod, conflist = rig.pod(), rig.conflist(ipMasq=True)
    att = rig.att(pod)
    paused = tmp_path / "paused"
    proc = _spawn_shim(rig, rig.conf(conflist), att, CNILAB_CNI_PAUSE=point, CNILAB_CNI_PAUSE_FILE=str(paused))
    try:
        wait_for(lambda: paused.exists() or proc.poll() is not None, timeout=15, what=f"the ADD to reach {point}")
        assert proc.poll() is None, f"the ADD ended before {point}: {proc.stdout.read()!r}"
        child = int(paused.read_text())
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    done, failed = threading.Event(), []

    def delete() -> None:
        try:
            rig.runtime.delete(conflist, att)
        except Exception as exc:  # noqa: BLE001 -- reported by the assertion below
            failed.append(exc)
        finally:
            done.set()

    threading.Thread(target=delete, daemon=True).start()
    lock = str(rig.data / "labnet" / f"lock-{hashlib.sha1(f'{att.container_id}/{att.ifname}'.encode()).hexdigest()[:12]}")
    # the DEL is done, or waits for the attachment's lock (a process other than the killed child has it open)
    wait_for(lambda: done.is_set() or bool(_holders(lock) - {child}), timeout=15, what="the DEL to finish or wait")
    paused.unlink(missing_ok=True)  # a child that still lives goes on now
    assert done.wait(timeout=30) and not failed, f"DEL after the kill: {failed or 'no answer'}"
    wait_for(lambda: not os.path.exists(f"/proc/{child}"), timeout=20, what="the killed call's child to end")
    assert rig.leftovers() == NOTHING, "the killed ADD went on after its runtime's DEL"
    assert pod.links() == ["lo"]
    result = rig.runtime.add(conflist, att)
    assert pod.link("eth0").addresses() == [result["ips"][0]["address"]]
    rig.runtime.delete(conflist, att)
    assert rig.leftovers() == NOTHING


def _holders(path: str) -> set[int]:
    """Processes with ``path`` open."""
    found = set()
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == path for fd in os.listdir(f"/proc/{pid}/fd")):
                found.add(int(pid))
        except OSError:
            continue
    return found


# -- 3. GC --------------------------------------------------------------------------------------------

def test_gc_of_one_network_leaves_another_network_on_the_same_bridge(rig):
    """SPEC GC: a per-network operation; resources shared with other networks are not its to remove."""
    mine, theirs = rig.conflist("neta", subnet="10.41.0.0/16"), rig.conflist("netb", subnet="10.42.0.0/16")
    a, b = rig.pod(), rig.pod()
    ra = rig.runtime.add(mine, rig.att(a))
    rb = rig.runtime.add(theirs, rig.att(b))
    rig.runtime.gc(mine, [])  # every attachment of neta is stale
    assert b.link("eth0").addresses() == [rb["ips"][0]["address"]]
    assert rig.allocated("netb") == [result_ip(rb)], "GC of neta released netb's address"
    assert [i["name"] for i in rb["interfaces"] if i["name"].startswith("vc")] == rig.host_ends(), \
        "GC of neta deleted netb's host end (and only neta's must go)"
    assert rig.allocated("neta") == [] and result_ip(ra) not in str(rig.nat_rules())


@pytest.mark.parametrize("case", ["key-missing", "cniversion-1.0.0"])
def test_gc_without_a_valid_list_or_before_110_removes_nothing(rig, case):
    """GC is new in 1.1.0 (older versions: code 1); its list of valid attachments is what makes a pod
    stale, so without it nothing is provably stale (code 7, naming the key)."""
    conflist = rig.conflist(ipMasq=True)
    pods = [rig.pod() for _ in range(2)]
    results = [rig.runtime.add(conflist, rig.att(p)) for p in pods]
    before = rig.leftovers()
    conf = rig.conf(conflist)
    if case == "cniversion-1.0.0":
        conf = {**conf, "cniVersion": "1.0.0", "cni.dev/valid-attachments": []}
    err = rig.code_of("GC", conf)
    if case == "key-missing":
        assert err.code == INVALID_CONFIG and "cni.dev/valid-attachments" in err.msg, err
    else:
        assert err.code == INCOMPATIBLE_VERSION, err
    assert rig.leftovers() == before
    for pod, result in zip(pods, results):
        assert pod.link("eth0").addresses() == [result["ips"][0]["address"]]


# -- 5. container IDs ------------------------------------------------------------------------------------

BAD_IDS = ["-bad/../x", "g\nx", "a/b", "..", "é1", "x y"]


@pytest.mark.parametrize("verb", ["ADD", "DEL", "CHECK"])
def test_an_invalid_container_id_is_code_4_for_every_verb(rig, verb):
    """SPEC parameters: a container ID starts with an alphanumeric, then alphanumerics, '_', '.' or '-'."""
    pod, conflist = rig.pod(), rig.conflist()
    conf = rig.conf(conflist)
    if verb == "CHECK":
        conf["prevResult"] = rig.runtime.add(conflist, rig.att(pod, "net1"))
    before = rig.leftovers()
    for cid in BAD_IDS:
        err = rig.code_of(verb, conf, rig.att(pod, cid=cid))
        assert err.code == INVALID_ENV and "CNI_CONTAINERID" in err.msg, (cid, err)
    assert rig.leftovers() == before and "eth0" not in pod.links()


def test_gc_listing_an_invalid_container_id_releases_nothing(rig):
    """A valid list GC cannot read is no proof that anything is stale: code 7, and every pod keeps its address."""
    conflist = rig.conflist()
    pod = rig.pod()
    result = rig.runtime.add(conflist, rig.att(pod))
    before = rig.leftovers()
    conf = {**rig.conf(conflist), "cni.dev/valid-attachments": [{"containerID": "g\nx", "ifname": "eth0"}]}
    err = rig.code_of("GC", conf)
    assert err.code == INVALID_CONFIG and "containerID" in err.msg, err
    assert rig.leftovers() == before and pod.link("eth0").addresses() == [result["ips"][0]["address"]]


# -- 6. the bridge's MAC ---------------------------------------------------------------------------------

@pytest.mark.parametrize("bridge", ["made-by-the-plugin", "made-before"])
def test_the_bridge_keeps_its_own_mac_when_the_pod_that_lent_the_lowest_goes(rig, bridge):
    """Left to the kernel a bridge takes its lowest port's MAC, and the gateway's MAC changes with that pod.
    The plugin's bridge has its own MAC from the start; one it finds (an older plugin's) it pins at its first ADD."""
    conflist = rig.conflist()
    if bridge == "made-before":  # as the kernel makes it (gone with the node's namespace)
        rig.node.run(["ip", "link", "add", "cni0", "type", "bridge"])
    atts = [rig.att(rig.pod()) for _ in range(3)]
    first = rig.runtime.add(conflist, atts[0])
    bridge = rig.node.link("cni0")
    mac = bridge.state().mac
    reported = next(i["mac"] for i in first["interfaces"] if i["name"] == "cni0")
    assert reported == mac and mac != "00:00:00:00:00:00", f"the result says cni0 is {reported}, the kernel {mac}"
    assert rig.node.run(["cat", "/sys/class/net/cni0/addr_assign_type"]).stdout.strip() == b"3", \
        "the bridge's address is not set by the plugin (addr_assign_type 3)"
    host_of = {}
    for att in atts:
        result = first if att is atts[0] else rig.runtime.add(conflist, att)
        host_of[next(i["name"] for i in result["interfaces"] if i["name"].startswith("vc"))] = att
    lowest = min(host_of, key=lambda name: rig.node.link(name).state().mac)
    rig.runtime.delete(conflist, host_of[lowest])  # the pod whose port has the lowest MAC goes
    assert bridge.state().mac == mac, "deleting a pod changed the gateway's MAC"


# -- 7. CHECK --------------------------------------------------------------------------------------------

def _delete_rule(node, rule: str) -> None:
    node.run(["iptables", "-w", "-t", "nat", "-D", *shlex.split(rule)[1:]])


@pytest.mark.parametrize("broken", ["reservation", "nat-rule", "pod-mac", "host-mac"])
def test_check_sees_what_the_result_does_not_list(rig, broken):
    """SPEC CHECK: the plugin should error when IP reservations or firewall rules are missing, and when an
    interface of prevResult is not as ADD made it (its MAC)."""
    pod, conflist = rig.pod(), rig.conflist(ipMasq=True)
    att = rig.att(pod)
    result = rig.runtime.add(conflist, att)
    rig.runtime.check(conflist, att)  # sound first
    host = next(i["name"] for i in result["interfaces"] if i["name"].startswith("vc"))
    if broken == "reservation":
        (rig.data / "labnet" / result_ip(result)).unlink()
        words = "reservation"
    elif broken == "nat-rule":
        _delete_rule(rig.node, next(r for r in rig.nat_rules() if result_ip(result) in r))
        words = "MASQUERADE"
    elif broken == "pod-mac":
        pod.link("eth0").set_mac("02:00:00:00:00:42")
        words = "MAC"
    else:
        rig.node.link(host).set_mac("02:00:00:00:00:43")
        words = "MAC"
    err = rig.code_of("CHECK", {**rig.conf(conflist), "prevResult": result}, att)
    assert err.code == CHECK_FAILED and words in err.msg, err


# -- 8. booleans, names, hostile input, STATUS -------------------------------------------------------------

@pytest.mark.parametrize("key", ["ipMasq", "isGateway", "isDefaultGateway", "hairpinMode"])
def test_a_boolean_given_as_a_string_is_code_7_and_changes_nothing(rig, key):
    pod = rig.pod()
    before = rig.leftovers()
    err = rig.code_of("ADD", rig.conf(rig.conflist(**{key: "false"})), rig.att(pod))
    assert err.code == INVALID_CONFIG and key in err.msg, err
    assert rig.leftovers() == before and pod.links() == ["lo"]


BAD_IFNAMES = ["eth:0", "eth/0", "..", ".", "eth 0", "eth\t0", "eth0123456789abc"]


def test_an_unusable_ifname_is_code_4_and_changes_nothing(rig):
    """SPEC parameters: the name must not be empty, '.' or '..', over 15 bytes, or hold '/', ':' or white space."""
    pod, conf = rig.pod(), rig.conf(rig.conflist())
    before = rig.leftovers()
    for ifname in BAD_IFNAMES:
        err = rig.code_of("ADD", conf, rig.att(pod, ifname))
        assert err.code == INVALID_ENV and "CNI_IFNAME" in err.msg, (ifname, err)
    assert rig.leftovers() == before and pod.links() == ["lo"]


def test_json_nested_five_million_deep_is_a_decode_error(rig):
    deep = b"[" * 5_000_000 + b"]" * 5_000_000
    started = time.monotonic()
    err = rig.code_of("ADD", deep, rig.att(rig.pod()))
    assert err.code == DECODE_FAILURE, err
    assert time.monotonic() - started < 10


def test_ten_megabytes_of_stdin_get_an_answer(rig):
    pod, conflist = rig.pod(), rig.conflist()
    conf = {**rig.conf(conflist), "args": {"padding": "x" * 10_000_000}}
    try:
        result = rig.call("ADD", conf, rig.att(pod))
    except CNIError as err:
        assert err.code > 0 and err.msg and err.raw, err  # a JSON error of the plugin's, not a crash
    else:
        assert pod.link("eth0").addresses() == [result["ips"][0]["address"]]


@pytest.mark.parametrize("where", ["network-dir-is-a-file", "data-dir-is-a-file"])
def test_status_answers_50_when_the_data_directory_is_unusable(rig, where):
    conflist = rig.conflist()
    rig.runtime.status(conflist)  # ready at first
    target = rig.data / "labnet" if where == "network-dir-is-a-file" else rig.data
    shutil.rmtree(target)
    target.write_text("a file where a directory should be\n")
    err = rig.code_of("STATUS", rig.conf(conflist))
    assert err.code == NOT_AVAILABLE and str(rig.data) in err.msg, err


# -- 9. the gateway defaults -----------------------------------------------------------------------------

def test_gateway_flags_default_to_false_as_in_the_reference_bridge(rig):
    pod = rig.pod()
    conflist = rig.conflist()
    for key in ("isGateway", "isDefaultGateway"):
        del conflist["plugins"][0][key]
    result = rig.runtime.add(conflist, rig.att(pod))
    assert "gateway" not in result["ips"][0] and result["routes"] == [], result
    assert rig.node.link("cni0").addresses() == [], "the bridge got the gateway address without isGateway"
    assert not [r for r in pod.routes() if r["dst"] == "default"], "a default route without isDefaultGateway"


# -- 10. a crash at every step of ADD -------------------------------------------------------------------

@pytest.mark.parametrize("point", fault_points())
def test_a_crash_at_each_step_of_add_is_cleared_by_del_or_by_a_new_add(rig, point):
    """CNILAB_CNI_FAULT=POINT kills the ADD there. Then (a) DEL leaves nothing and a fresh ADD works;
    (b) a fresh ADD without DEL works, and its DEL leaves nothing."""
    pod, conflist = rig.pod(), rig.conflist(ipMasq=True)
    att = rig.att(pod)
    crash = rig.code_of("ADD", rig.conf(conflist), att, CNILAB_CNI_FAULT=point)
    assert "exit 137" in str(crash), f"the fault did not fire at {point}: {crash}"
    left = rig.leftovers()
    rig.runtime.delete(conflist, att)
    assert rig.leftovers() == NOTHING and pod.links() == ["lo"], f"DEL after a crash at {point}, which left {left}"
    result = rig.runtime.add(conflist, att)
    assert pod.link("eth0").addresses() == [result["ips"][0]["address"]]
    rig.runtime.delete(conflist, att)
    rig.code_of("ADD", rig.conf(conflist), att, CNILAB_CNI_FAULT=point)
    result = rig.runtime.add(conflist, att)  # the runtime retries without DEL
    assert pod.link("eth0").addresses() == [result["ips"][0]["address"]], f"ADD again after a crash at {point}"
    assert rig.allocated() == [result_ip(result)] and len(rig.host_ends()) == 1 and len(rig.nat_rules()) == 1
    rig.runtime.delete(conflist, att)
    assert rig.leftovers() == NOTHING, f"after a crash at {point} (which left {left}), a new ADD and its DEL"
