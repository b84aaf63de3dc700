"""Stage 07 -- a CNI plugin, and the runtime that calls it.

Everything of stages 02-05 becomes one program a container runtime runs per pod:
``plugin/cnilab_cni`` (ADD, DEL, CHECK, VERSION, STATUS, GC). The tests here are a
conformance suite: they drive a plugin through ``cnilab.runtime.cni.Runtime`` (a libcni
in Python) and check the CNI specification, section by section. They run against
cnilab's plugin AND the reference ``bridge`` + ``host-local`` plugins, which
proves the suite demands nothing the reference does not do -- except where the
reference predates spec 1.1.0, which the tests say and mark.

``--cni-plugin PATH`` runs the suite against another plugin that takes the
reference bridge's configuration (``bridge``, ``isGateway``, ``mtu``, ``ipMasq``,
``ipam`` host-local style).
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from cnilab.core.netns import ip_of
from cnilab.runtime import cri
from cnilab.runtime.cleanup import release_dir
from cnilab.runtime.cni import Attachment, PluginDaemon, Runtime, install_plugin, is_thick
from cnilab.core.errors import LabError
from cnilab.teach.recipe import Recipe
from cnilab.observe.trace import Trace

recipe = Recipe(7, "a CNI plugin (ADD/DEL/CHECK/VERSION/STATUS/GC) as a runtime calls it", here=__file__)

HINTS = [
    "The plugin's TODOs are in plugin/cnilab_cni/plugin.py; netlink.py gives you link(), add_bridge(), add_veth(), "
    "set_link(), add_addr(), add_route(), del_link().",
    "ensure_bridge: nl.link(name) is None when absent -> nl.add_bridge(name, mtu); set_link(index, up=True); "
    "add_addr(index, conf.gateway, conf.pool.plen).",
    "create_veth: nl.add_veth(host_name, ifname, ns_fd, conf.mtu) creates the pod end inside the pod's namespace.",
    "wire: host end -> set_link(master=bridge index, up=True); pod end (via `inner`) -> add_addr, up, "
    "add_route(\"0.0.0.0\", 0, conf.gateway, index).",
    "DEL must succeed whatever is already gone: del_link returns False for a missing link; the pool's release is idempotent.",
    "CHECK compares the pod with prevResult; GC keeps only cni.dev/valid-attachments; STATUS says 50 when the pool is full.",
]

REFERENCE_DIR = "/usr/lib/cni"
PLUGIN_SOURCE = Path(__file__).resolve().parents[2] / "plugin"  # this suite's plugin (a workbook's own, too)
SUBNET, GATEWAY = "10.22.0.0/16", "10.22.0.1"
NETWORK = "labnet"
_ids = itertools.count(1)


@dataclass
class PluginUnderTest:
    """A plugin and how to configure it (the reference bridge's schema)."""

    name: str
    type: str
    bin_dirs: list[str]
    ipam_type: str
    reference: bool = False

    def conf(self, data_dir: Path, subnet: str = SUBNET, **extra) -> dict:
        conf = {"type": self.type, "bridge": "cni0", "isGateway": True, "isDefaultGateway": True, "mtu": 1500,
                "ipam": {"type": self.ipam_type, "subnet": subnet, "dataDir": str(data_dir)}}
        conf.update(extra)
        return conf

    def differs(self, request: pytest.FixtureRequest, why: str) -> None:
        """Mark a test the reference legitimately fails: strict xfail, so it must really fail."""
        if self.reference:
            request.applymarker(pytest.mark.xfail(strict=True, reason=f"reference plugins v1.1.1: {why}"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # the conformance cases judge --cni-plugin when given; the tests of cnilab's plugin as the stage builds it
    # (its bridge, its chains) always run against cnilab's plugin and the reference bridge it imitates
    if "conformance_target" in metafunc.fixturenames:
        custom = metafunc.config.getoption("--cni-plugin")
        params = [custom] if custom else ["cnilab", "reference"]
        metafunc.parametrize("conformance_target", params, indirect=True, scope="session",
                             ids=[Path(p).name for p in params])
    if "cni_plugin" in metafunc.fixturenames:
        metafunc.parametrize("cni_plugin", ["cnilab", "reference"], indirect=True, ids=["cnilab", "bridge"])


@pytest.fixture(scope="session")
def cnilab_bin(tmp_path_factory) -> Iterator[Path]:
    """Name: cnilab_bin. Scope: session. cnilab's plugin installed as a runtime would find it, in thick
    mode: the native shim hands each call to the node daemon, which runs for the session. (The
    containerd tier installs it without a daemon, so the shim's fallback to the Python plugin runs there.)
    """
    bin_dir = tmp_path_factory.mktemp("cni-bin")
    install_plugin(bin_dir, source=PLUGIN_SOURCE)
    if is_thick(bin_dir / "cnilab"):
        with PluginDaemon(bin_dir, source=PLUGIN_SOURCE):
            yield bin_dir
    else:  # no C compiler: the thin plugin alone
        yield bin_dir


@pytest.fixture
def cni_plugin(request, cnilab_bin) -> PluginUnderTest:
    """Name: cni_plugin. Scope: function. The plugin under test (parametrized)."""
    which = request.param
    if which == "cnilab":
        return PluginUnderTest("cnilab", "cnilab", [str(cnilab_bin), REFERENCE_DIR], "cnilab")
    if which == "reference":
        if not os.access(f"{REFERENCE_DIR}/bridge", os.X_OK):
            pytest.skip("the reference plugins are missing: apt-get install -y containernetworking-plugins")
        return PluginUnderTest("reference", "bridge", [REFERENCE_DIR], "host-local", reference=True)
    raise ValueError(f"unknown plugin parameter {which!r}")


@dataclass
class ConformanceTarget:
    target: object
    strict: bool


@pytest.fixture(scope="session")
def conformance_target(request, cnilab_bin) -> ConformanceTarget:
    """Name: conformance_target. Scope: session. Depends: cnilab_bin, the --cni-plugin/--cni-config/--cni-strict options.

    What the conformance cases judge: cnilab's plugin (strict: it must meet every SHOULD too) and the
    reference bridge, or the --cni-plugin given. Its claimed versions are read once, with VERSION.
    """
    from cnilab.conformance.run import discover_versions
    from cnilab.conformance.target import Target

    which = request.param
    if which == "cnilab":
        target, strict = Target.load(cnilab_bin / "cnilab"), True
    elif which == "reference":
        if not os.access(f"{REFERENCE_DIR}/bridge", os.X_OK):
            pytest.skip("the reference plugins are missing: apt-get install -y containernetworking-plugins")
        target, strict = Target.load(f"{REFERENCE_DIR}/bridge"), False
    else:
        target = Target.load(which, request.config.getoption("--cni-config"))
        strict = request.config.getoption("--cni-strict")
    target.supported = discover_versions(target)
    return ConformanceTarget(target, strict)


@recipe.fixture
def node(lab):
    """Name: node. Scope: function. Depends: lab.

    The machine the runtime and its plugins run on: a lab namespace, so the plugin's bridge,
    sysctls and NAT rules never touch the real machine.
    """
    return lab.netns("node")


@dataclass
class Harness:
    """A runtime on ``node`` driving ``plugin``, with pods on demand."""

    lab: object
    node: object
    plugin: PluginUnderTest
    runtime: Runtime
    data_dir: Path
    pods: dict = field(default_factory=dict)

    def conflist(self, version: str = "1.0.0", chain: list[dict] | None = None, **extra) -> dict:
        return {"cniVersion": version, "name": NETWORK,
                "plugins": [self.plugin.conf(self.data_dir, **extra), *(chain or [])]}

    def pod(self, name: str | None = None):
        name = name or f"p{next(_ids)}"
        ns = self.lab.netns(name)
        self.pods[name] = ns
        return ns

    def attachment(self, pod, ifname: str = "eth0") -> Attachment:
        return Attachment(f"ctr-{pod.short}", f"/run/netns/{pod.name}", ifname)

    def allocated(self) -> list[str]:
        """Addresses the plugin's IPAM holds on disk (cnilab and host-local keep one file per address)."""
        d = self.data_dir / NETWORK
        return sorted(n for n in os.listdir(d) if n.count(".") == 3 and n[0].isdigit()) if d.is_dir() else []

    def nat_rules(self) -> list[str]:
        return self.node.iptables_rules("nat")


@pytest.fixture
def cni(lab, node, cni_plugin, tmp_path) -> Harness:
    """Name: cni. Scope: function. Depends: lab, node, cni_plugin. The runtime and the plugin under test."""
    runtime = Runtime(cni_plugin.bin_dirs, tmp_path / "cache", node=node.name)
    return Harness(lab, node, cni_plugin, runtime, tmp_path / "ipam")


def result_ip(result: dict) -> str:
    return ip_of(result["ips"][0]["address"])


def sandbox_interface(result: dict) -> dict:
    return next(i for i in result["interfaces"] if i.get("sandbox"))


def host_interface(result: dict) -> dict:
    """The host end of the veth: an interface without sandbox that is not the bridge."""
    return next(i for i in result["interfaces"] if not i.get("sandbox") and i["name"] != "cni0")


def as_json(err) -> dict:
    return json.loads(json.dumps(err.raw))


CRI_SUBNET_PREFIX = "10.88."
CRI_NETWORK = "k8s-pod-network"


def logged_conflist(name: str, version: str, subnet: str, work: Path) -> dict:
    """A conflist of cnilab alone, logging each call to WORK/cnilab.log and keeping its IPAM in WORK/ipam."""
    return {"cniVersion": version, "name": name, "plugins": [
        {"type": "cnilab", "bridge": "cni0", "isGateway": True, "isDefaultGateway": True, "mtu": 1500,
         "logFile": str(work / "cnilab.log"),
         "ipam": {"type": "cnilab", "subnet": subnet, "dataDir": str(work / "ipam")}}]}


def kubelet_dir(node) -> Path:
    """Where `node`'s containerd keeps everything (short: containerd's sockets live below it); net.d/ is its conf dir."""
    return Path(f"/run/cnilab/{node.name}.ctrd")


@recipe.helper
def kubelet_on(lab, node, conflist=True, thick=False):
    """containerd (CRI) running in `node` with cnilab as its only CNI network, and a CRI client for it.

    `conflist=False` leaves the network config to someone else (stage 08's node agent writes it into
    `client.conf_dir`); until it is there, CRI reports the network not ready. `thick`: the plugin's node
    daemon serves the calls. Returns (client, None), or (None, why) where containerd, runc or the CRI
    client are missing.
    """
    why = cri.unavailable()
    if why:
        return None, why
    work = kubelet_dir(node)
    conf_dir, ipam, bin_dir = work / "net.d", work / "ipam", work / "bin"
    conf_dir.mkdir(parents=True, exist_ok=True)  # stage 08's agent may have written its conflist there already
    node.link("lo").up()  # containerd's stream server listens on 127.0.0.1
    install_plugin(bin_dir, source=PLUGIN_SOURCE, thick=thick)
    os.symlink(f"{REFERENCE_DIR}/loopback", bin_dir / "loopback")  # containerd always runs loopback too
    if conflist:
        conflist = logged_conflist(CRI_NETWORK, "1.0.0", f"{CRI_SUBNET_PREFIX}0.0/16", work)
        (conf_dir / "10-cnilab.conflist").write_text(json.dumps(conflist))
    containerd = cri.Containerd(node, work, bin_dir, conf_dir).start()
    if thick and is_thick(bin_dir / "cnilab"):
        daemon = PluginDaemon(bin_dir, source=PLUGIN_SOURCE).start()
        lab.defer(f"stop the plugin daemon of {node.name}", daemon.stop)
    client = cri.Kubelet(containerd.sock)
    client.work, client.ipam, client.log, client.conf_dir = work, ipam / CRI_NETWORK, work / "cnilab.log", conf_dir

    def stop_pods() -> None:  # pods still up get their DELs before containerd stops (undone first)
        try:
            pods = client.pods()
        except cri.CRIError:
            pods = []  # containerd is gone already (an interrupted run): its stop reaps what is left
        for pod in pods:
            try:
                client.stop_pod(pod.id)
                client.remove_pod(pod.id)
            except (cri.CRIError, LabError):
                pass  # stopping containerd reaps what is left
        client.close()

    lab.defer("crictl stopp/rmp every pod", stop_pods)
    return client, None


@recipe.trace
def pod_comes_up(lab):
    """A pod is created: the runtime runs the plugin with ADD, the plugin builds the pod's network (bridge,
    veth, address, route) and answers with the address it chose. Through containerd's CRI when it is
    installed, as the kubelet does; else through cnilab's own runtime."""
    node = lab.get("node")
    client, why = kubelet_on(lab, node)
    if client is not None:
        sandbox, _ = client.run_pod("web", client.work / "logs")
        status = client.pod_status(sandbox)
        state = client.pb.PodSandboxState.Name(status.state)
        # name the pod's namespace in the lab, so the state shown and the picture include the pod
        netns_dir = client.work / "state" / "io.containerd.grpc.v1.cri" / "netns"
        lab.attach("web", cri.process_in(next(netns_dir.iterdir())))
        return Trace("crictl runp web.json   # the kubelet's RunPodSandbox, over CRI v1 to containerd",
                     f"pod web: {state}, IP {status.network.ip} (PodSandboxStatus)",
                     log=client.log.read_text().splitlines(), result=status.network.ip)
    work = Path(f"/run/cnilab/{lab.prefix}cni")
    work.mkdir(parents=True)
    lab.defer(f"rm -r {work}", lambda: release_dir(work))
    install_plugin(work / "bin", source=PLUGIN_SOURCE)
    runtime = Runtime([work / "bin"], work / "cache", node=node.name)
    conflist = logged_conflist(NETWORK, "1.1.0", SUBNET, work)
    pod = lab.netns("web")
    att = Attachment("ctr-web", f"/run/netns/{pod.name}")
    result = runtime.add(conflist, att)
    lab.defer("CNI DEL ctr-web", lambda: runtime.delete(conflist, att))
    ip = result["ips"][0]["address"]
    return Trace(f"CNI_COMMAND=ADD CNI_CONTAINERID=ctr-web CNI_NETNS={att.netns} CNI_IFNAME=eth0 cnilab < conflist.json "
                 f"   # ({why}: cnilab's runtime instead of containerd)",
                 json.dumps(result, indent=1), log=(work / "cnilab.log").read_text().splitlines(), result=ip)
