"""Stage 08 -- the cluster network: the CNI plugin on every node, joined by a node agent.

Stage 06 joined hand-made pods across nodes; stage 07 gave pods addresses on one node. Here a
container runtime (containerd, over CRI, as the kubelet drives it) creates pods on several nodes,
and a pod on node 1 talks to a pod on node 3 -- what flannel, kindnet and Calico exist for. The way
flannel first did it:

* a store (etcd, in a namespace of its own on the underlay) holds one *lease* per node: the node's
  pod subnet (a /24 of the cluster CIDR 10.244.0.0/16) and its VTEP, bound to a TTL the node's agent
  keeps alive -- a node that dies loses its lease, and with it its place in everyone's routes;
* each node runs ``cnilab agent``: it leases a subnet, makes the node's routed VTEP (stage 06's
  ``make_vtep``), writes the conflist that makes stage 07's plugin give pods addresses from that
  subnet, masquerades what leaves the cluster (never pod-to-pod traffic), and for every peer's lease
  runs stage 06's ``route_to`` (one route, one permanent ARP entry, one permanent FDB entry) -- and
  ``forget_peer`` when the lease goes. The agent runs *these* steps, from this file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cnilab.cluster.etcd import Etcd
from cnilab.cluster.launch import AgentProcess
from cnilab.cluster.leases import Lease, prefix
from cnilab.core.errors import LabError, Todo
from cnilab.core.step import is_gone
from cnilab.core.wait import wait_for
from cnilab.observe.probes import assert_ping
from cnilab.observe.trace import Trace, captured
from cnilab.runtime import cri
from cnilab.runtime.cleanup import release_dir
from cnilab.teach.recipe import Recipe, load_conftest, stage_dir

recipe = Recipe(8, "the cluster network: the CNI plugin on every node, joined by a node agent (etcd leases)",
                base=6, here=__file__)
TESTS = recipe.path.parents[1]

HINTS = [
    "forget_peer undoes stage 06's route_to: `node.ns.del_route(peer.subnet)`, `node.ns.del_neighbour(peer.vtep_ip, "
    "node.vtep)`, `node.ns.del_fdb(node.vtep, peer.vtep_mac, peer.ip)` -- each through `if_present(...)`, since a "
    "peer half-programmed before a crash has only some of them (and no FDB entry when vtep_mac or ip is None).",
    "masquerade_leaving: one nat rule, `node.ns.iptables(\"-A\", \"POSTROUTING\", \"-s\", node.subnet, \"!\", \"-d\", "
    "cluster_cidr, \"-j\", \"MASQUERADE\", table=\"nat\")`: what goes to another node's pods keeps its pod address.",
    "pod_conflist: stage 07's plugin (`type` cnilab, bridge cni0, isGateway and isDefaultGateway true) with `mtu` "
    "the agent gives, ipMasq false (the agent masquerades, per node), and ipam {type cnilab, subnet node.subnet, dataDir ipam_dir}.",
]

cable, make_vtep, route_to = recipe.step("cable"), recipe.step("make_vtep"), recipe.step("route_to")
(underlay,) = recipe.reuse("underlay")
stage05, stage07 = (load_conftest(stage_dir(n, TESTS) / "conftest.py") for n in (5, 7))  # their recipes and helpers

NODES = 3
PODS_PER_NODE = 2
CLUSTER_CIDR = "10.244.0.0/16"
NETWORK = "cluster-pods"
STORE_N, ISP_N = 250, 254              # etcd and the internet's router sit on the underlay at 198.18.0.N
ISP_IP = f"198.18.0.{ISP_N}"
SERVER_IP, SERVER_PORT = "203.0.113.10", 80   # stage 05's internet
LEASE_TTL = 3                          # seconds; a real cluster uses more, a test waits for it
VNI, VXLAN_PORT = 1, 4789


def if_present(undo, *args) -> None:
    """Run a removal step; what is already gone is fine (ENOENT, ESRCH...), anything else is not."""
    try:
        undo(*args)
    except LabError as exc:
        if not is_gone(exc):
            raise


@recipe.helper
def forget_peer(node, peer):
    """On `node`: remove what route_to(node, peer) made -- the route to peer.subnet, the ARP entry for
    peer.vtep_ip, the FDB entry for peer.vtep_mac -- each only if it is there."""
    # BEGIN SOLUTION: remove the route to peer.subnet, the ARP entry of peer.vtep_ip on node.vtep and (when peer.vtep_mac and peer.ip are known) its FDB entry, each through if_present
    if_present(node.ns.del_route, peer.subnet)
    if_present(node.ns.del_neighbour, peer.vtep_ip, node.vtep)
    if peer.vtep_mac and peer.ip:
        if_present(node.ns.del_fdb, node.vtep, peer.vtep_mac, peer.ip)
    # END SOLUTION


@recipe.helper
def masquerade_leaving(node, cluster_cidr):
    """The node's pods reach the world with the node's address; traffic to other pods (the cluster
    CIDR) keeps its pod source address."""
    # BEGIN SOLUTION: one MASQUERADE rule (nat, POSTROUTING) for what comes from node.subnet and does not go to cluster_cidr
    node.ns.iptables("-A", "POSTROUTING", "-s", node.subnet, "!", "-d", cluster_cidr, "-j", "MASQUERADE", table="nat")
    # END SOLUTION


@recipe.helper
def pod_conflist(node, mtu, ipam_dir):
    """The node's network config for the runtime: stage 07's plugin, its addresses from the node's lease."""
    # BEGIN SOLUTION: return the conflist dict (cniVersion 1.0.0, name NETWORK, one cnilab plugin: bridge cni0, gateway, default route, mtu, no ipMasq, ipam cnilab with subnet node.subnet and dataDir ipam_dir)
    return {"cniVersion": "1.0.0", "name": NETWORK, "plugins": [
        {"type": "cnilab", "bridge": "cni0", "isGateway": True, "isDefaultGateway": True, "mtu": mtu, "ipMasq": False,
         "ipam": {"type": "cnilab", "subnet": node.subnet, "dataDir": ipam_dir}}]}
    # END SOLUTION


@dataclass
class Pod:
    name: str
    sandbox: str
    ns: object
    ip: str


@dataclass
class ClusterNode:
    """A machine of the cluster: its namespace, containerd (CRI) with cnilab, and its agent."""

    n: int
    ns: object
    ip: str
    kubelet: object
    agent: AgentProcess
    pods: dict[str, Pod] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"node{self.n}"

    @property
    def conflist(self) -> Path:
        return self.kubelet.conf_dir / "10-cnilab.conflist"

    @property
    def subnet(self) -> str:
        """The node's lease, as its conflist says (written by its agent)."""
        return json.loads(self.conflist.read_text())["plugins"][0]["ipam"]["subnet"]

    @property
    def vtep(self):
        return self.ns.link("flannel1")

    def peer_entries(self) -> dict[str, Lease]:
        """subnet -> (VTEP address, ARP MAC, FDB destination), as this node's kernel has them."""
        ns, vtep = self.ns, self.vtep
        if not vtep.exists():
            return {}
        neigh = {ip: mac for ip, mac, state in ns.neighbours(vtep) if state & 0x80}
        fdb = {mac: dst for mac, dst in ns.fdb(vtep) if dst}
        return {r["dst"]: Lease(r["dst"], fdb.get(neigh.get(r["gateway"])), neigh.get(r["gateway"]))
                for r in ns.routes() if r["dev"] == vtep.name and r["gateway"]}


def stored_leases(store, lab) -> dict[str, bytes]:
    """The run's lease keys in etcd and their raw values, read as the agents read them."""
    found = store.do(lambda c: c.get_prefix(prefix(lab.prefix.rstrip("-"))))
    return {meta["key"].decode(): value for value, meta in found}


@recipe.fixture
def store(lab, underlay):
    """Name: store. Scope: function. Depends: lab, underlay.

    etcd in namespace `etcd`, cabled to the underlay at 198.18.0.STORE_N; its data in a temporary directory.
    """
    ns, ip, _ = cable(lab, underlay, STORE_N, machine=lab.netns("etcd"))
    ns.link("lo").up()
    return Etcd(ns, ip).start(wait=False)  # the agents wait for it: the nodes are built meanwhile


@recipe.fixture
def internet(lab, underlay):
    """Name: internet. Scope: function. Depends: lab, underlay.

    Stage 05's internet (the server SERVER_IP), its router on the underlay at ISP_IP: the nodes' way out.
    """
    inet = stage05.recipe.step("internet")(lab)
    cable(lab, underlay, ISP_N, machine=inet)
    return inet


@recipe.helper
def add_node(lab, underlay, store, n, kind="netns"):
    """Node `n`: stage 06's cable to the underlay, a default route to the internet's router, stage 07's
    containerd with cnilab (thick) and no network config yet, and its agent, started."""
    ns, ip, _ = cable(lab, underlay, n, kind)
    ns.add_route("default", via=ISP_IP)
    why = cri.unavailable()
    if why:
        raise LabError(f"Stage 08's nodes run containerd, which cannot run here: {why}.")
    work = stage07.kubelet_dir(ns)  # the agent starts first (it takes longest) and writes the conflist there
    (work / "net.d").mkdir(parents=True)
    lab.defer(f"rm -r {work}", lambda: release_dir(work))
    agent = AgentProcess(ns, f"node{n}", [
        "--store", store.url, "--cluster", lab.prefix.rstrip("-"), "--cidr", CLUSTER_CIDR, "--ttl", str(LEASE_TTL),
        "--vni", str(VNI), "--port", str(VXLAN_PORT), "--conflist", str(work / "net.d" / "10-cnilab.conflist"),
        "--ipam-dir", str(work / "ipam"), "--tests", str(TESTS)], work / "agent.log").start()
    kubelet, _ = stage07.kubelet_on(lab, ns, conflist=False, thick=True)
    return ClusterNode(n, ns, ip, kubelet, agent)


@recipe.helper
def converged(nodes, timeout=10.0):
    """Wait until every node's runtime reports its network ready and every node has entries for every other."""
    def missing(node) -> str | None:
        if node.agent.proc is not None and node.agent.proc.poll() is not None:
            last = node.agent.lines()[-5:]
            todo = next((line[line.index("TODO in stage"):] for line in last if "TODO in stage" in line), None)
            if todo:
                raise Todo(todo)  # the agent runs the workbook's steps: its TODO is the student's next one
            raise LabError(f"The agent of {node.name} exited: " + " | ".join(last))
        if not node.conflist.exists():
            return "its agent wrote no conflist (no lease yet?)"
        if not node.kubelet.network_ready():
            return "containerd does not report NetworkReady (it has not loaded the conflist)"
        have = node.peer_entries()
        wrong = [differs(peer, have) for peer in nodes if peer is not node]
        return "; ".join(w for w in wrong if w) or None

    try:
        wait_for(lambda: not any(missing(node) for node in nodes), timeout=timeout,
                 what="every node's agent to lease a subnet and program its peers", poll=0.01)
    except AssertionError:
        report = [f"{node.name}: {missing(node)}; its agent said: " + " | ".join(node.agent.lines()[-4:])
                  for node in nodes if missing(node)]
        raise AssertionError(f"The cluster did not converge within {timeout:g} s: " + "; ".join(report)) from None
    return nodes


def differs(peer, have):
    """What is wrong with a node's entries (``have``, its peer_entries) for ``peer`` (None: route, ARP and FDB
    as the peer's lease says)."""
    if not peer.conflist.exists() or not peer.vtep.exists():
        return f"{peer.name} has no lease yet"
    entry = have.get(peer.subnet)
    mac = peer.vtep.state().mac
    if entry is None:
        return f"no route to {peer.name}'s pods {peer.subnet} on the VTEP"
    if entry.vtep_mac is None:
        return f"no permanent ARP entry for {peer.name}'s VTEP address {Lease(peer.subnet, '', '').vtep_ip} (its MAC is {mac})"
    if entry.vtep_mac != mac:
        return f"the ARP entry for {peer.name}'s VTEP says MAC {entry.vtep_mac}, its VTEP's MAC is {mac}"
    if entry.ip is None:
        return f"no FDB entry sending {peer.name}'s VTEP MAC {mac} to its underlay address {peer.ip}"
    if entry.ip != peer.ip:
        return f"the FDB entry for {peer.name}'s VTEP MAC sends frames to {entry.ip}, not to {peer.name}'s underlay address {peer.ip}"
    return None


def leftovers(node, gone):
    """ARP and FDB entries on ``node`` that still point at the node ``gone`` (its route may be gone already)."""
    vtep_ip = Lease(gone.subnet, "", "").vtep_ip
    arp = [ip for ip, _, state in node.ns.neighbours(node.vtep) if ip == vtep_ip and state & 0x80]
    fdb = [mac for mac, dst in node.ns.fdb(node.vtep) if dst == gone.ip]
    return ([f"the permanent ARP entry for {vtep_ip}"] if arp else []) + [f"the FDB entry {mac} -> {gone.ip}" for mac in fdb]


@recipe.fixture
def cluster(lab, underlay, store, internet, node_kind):
    """Name: cluster. Scope: function. Depends: lab, underlay, store, internet, node_kind.

    NODES nodes, their agents started together (they race for subnets), converged.
    """
    return converged([add_node(lab, underlay, store, n, node_kind) for n in range(1, NODES + 1)])


@recipe.helper
def run_pod(lab, node, name):
    """A pod created over CRI on `node` (RunPodSandbox: containerd runs the plugin's ADD), named in the lab."""
    sandbox, _ = node.kubelet.run_pod(name, node.kubelet.work / "logs")
    status = node.kubelet.pod_status(sandbox)
    if status.state != node.kubelet.pb.SANDBOX_READY:
        raise LabError(f"CRI reports pod {name} on {node.name} {status.state}, not SANDBOX_READY.")
    pod = Pod(name, sandbox, lab.attach(name, node.kubelet.sandbox_pid(sandbox)), status.network.ip)
    node.pods[name] = pod
    return pod


@recipe.fixture
def pods(lab, cluster):
    """Name: pods. Scope: function. Depends: lab, cluster. PODS_PER_NODE pods per node; name -> Pod."""
    return {f"n{node.n}p{k}": run_pod(lab, node, f"n{node.n}p{k}") for node in cluster for k in range(1, PODS_PER_NODE + 1)}


@recipe.trace
def pod_to_pod(lab):
    """A pod on node1 pings a pod on node3. On the underlay switch the frame travels inside VXLAN (UDP
    4789, VNI 1) between the two nodes' addresses; inside it, the pods' own addresses -- no NAT."""
    src, dst, wire = lab.get("n1p1"), lab.get("n3p1"), lab.get("wire")
    ping, views = captured(lambda: assert_ping(src, dst.ip("eth0"), count=2), (wire, "ul0"))
    from scapy.layers.inet import UDP

    return Trace(ping.command, ping.output, views, result=ping, only=lambda p: UDP in p and p[UDP].dport == VXLAN_PORT)
