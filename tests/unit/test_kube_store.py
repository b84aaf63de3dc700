"""The ``kube`` backend of the agent: Node objects as leases (no root, no API server, no network)."""

from __future__ import annotations

import socket
import threading

import pytest
from kubernetes.client import V1Node, V1NodeAddress, V1NodeList, V1NodeSpec, V1NodeStatus, V1ObjectMeta

from cnilab.cluster import kube
from cnilab.cluster.leases import Lease
from cnilab.cluster.store import StoreDown

pytestmark = pytest.mark.unit
CIDR = "10.244.0.0/16"
MAC = "0a:58:0a:f4:01:00"


def node(name, pod_cidr=None, mac=None, ip="172.18.0.3"):
    return V1Node(metadata=V1ObjectMeta(name=name, annotations={kube.ANNOTATION: mac} if mac else None),
                  spec=V1NodeSpec(pod_cidr=pod_cidr),
                  status=V1NodeStatus(addresses=[V1NodeAddress(type="Hostname", address=name),
                                                 V1NodeAddress(type="InternalIP", address=ip)]))


class FakeCoreV1Api:
    """The few CoreV1Api calls the store makes, on Node objects held in memory."""

    def __init__(self, *nodes):
        self.nodes = {n.metadata.name: n for n in nodes}
        self.patches: list[tuple[str, dict]] = []
        self.down = False

    def _check(self):
        if self.down:
            raise ConnectionRefusedError("connection refused")

    def list_node(self, **kwargs):
        self._check()
        return V1NodeList(items=list(self.nodes.values()))

    def read_node(self, name):
        self._check()
        return self.nodes[name]

    def patch_node(self, name, body):
        self._check()
        self.patches.append((name, body))
        meta = self.nodes[name].metadata
        meta.annotations = {k: v for k, v in {**(meta.annotations or {}), **body["metadata"]["annotations"]}.items() if v is not None}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any socket connection would be a real API call: it fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the unit test tried a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def store(monkeypatch, *nodes, name="node-a"):
    api = FakeCoreV1Api(*nodes)
    monkeypatch.setattr(kube, "connect", lambda: api)
    return kube.KubeStore(name, CIDR), api


def test_a_node_with_pod_cidr_and_annotation_is_a_lease(monkeypatch):
    s, _ = store(monkeypatch, node("node-b", "10.244.2.0/24", MAC, "172.18.0.4"))
    assert s.leases() == ([Lease("10.244.2.0/24", "172.18.0.4", MAC, "node-b")], [])
    assert s.leases()[0][0].node == "node-b"


def test_a_node_still_joining_is_no_lease_and_no_error(monkeypatch):
    s, _ = store(monkeypatch, node("node-a", "10.244.1.0/24"), node("node-b", None, MAC))
    assert s.leases() == ([], [])


def test_a_pod_cidr_outside_the_cluster_cidr_is_bad_with_the_reason(monkeypatch):
    s, _ = store(monkeypatch, node("node-b", "10.99.2.0/24", MAC))
    assert s.leases() == ([], [("node node-b", "its subnet 10.99.2.0/24 is outside the cluster CIDR 10.244.0.0/16")])


@pytest.mark.parametrize("mac", ["01:00:5e:00:00:01", "not-a-mac", "00:00:00:00:00:00"])
def test_a_bad_vtep_mac_is_bad_with_the_reason(monkeypatch, mac):
    s, _ = store(monkeypatch, node("node-b", "10.244.2.0/24", mac), node("node-c", "10.244.3.0/24", MAC, "172.18.0.5"))
    good, bad = s.leases()
    assert [l.node for l in good] == ["node-c"], "one bad node spoils nothing else"
    assert bad == [("node node-b", f"its vtepMAC {mac!r} is not a unicast MAC address")]


def test_a_pod_cidr_that_is_no_ipv4_subnet_is_bad(monkeypatch):
    s, _ = store(monkeypatch, node("node-b", "fd00::/64", MAC))
    assert s.leases()[1] == [("node node-b", "its podCIDR 'fd00::/64' is not an IPv4 subnet")]


def test_candidates_are_the_nodes_own_pod_cidr_only(monkeypatch):
    s, _ = store(monkeypatch, node("node-a", "10.244.1.0/24"), node("node-b"))
    assert s.candidates("node-a") == ["10.244.1.0/24"]
    assert s.candidates("node-b") == []


def test_claim_patches_the_annotation_for_the_nodes_pod_cidr_only(monkeypatch):
    s, api = store(monkeypatch, node("node-a", "10.244.1.0/24"))
    assert s.mine("node-a") is None, "no annotation yet: nothing to take back"
    assert s.claim(Lease("10.244.5.0/24", "172.18.0.3", MAC, "node-a")) is False
    assert api.patches == [], "another subnet is refused without a write"
    assert s.claim(Lease("10.244.1.0/24", "172.18.0.3", MAC, "node-a")) is True
    assert api.patches == [("node-a", {"metadata": {"annotations": {kube.ANNOTATION: MAC}}})]
    assert s.mine("node-a") == Lease("10.244.1.0/24", "172.18.0.3", MAC, "node-a"), "a restarted agent finds it"
    assert s.keepalive() is True
    s.release()
    assert api.patches[-1] == ("node-a", {"metadata": {"annotations": {kube.ANNOTATION: None}}})
    assert s.mine("node-a") is None and s.leases() == ([], [])


def test_an_api_server_that_does_not_answer_is_store_down(monkeypatch):
    s, api = store(monkeypatch, node("node-a", "10.244.1.0/24", MAC))
    api.down = True
    with pytest.raises(StoreDown, match="does not answer"):
        s.leases()


def test_watch_wakes_on_events_and_survives_api_errors(monkeypatch):
    s, _ = store(monkeypatch, node("node-a", "10.244.1.0/24"))
    calls = []

    class FakeWatch:
        def stream(self, fn, timeout_seconds):
            calls.append(timeout_seconds)
            if len(calls) == 1:
                raise ConnectionResetError("the API server went away")
            yield {"type": "MODIFIED"}
            stop.set()

        def stop(self):
            pass

    import kubernetes.watch

    monkeypatch.setattr(kubernetes.watch, "Watch", FakeWatch)
    wake, stop = threading.Event(), threading.Event()
    s.watch(wake, stop)
    assert len(calls) == 2 and calls[0] > 0, "a failed watch was started again, with a server-side timeout"
    assert wake.is_set()


def test_config_falls_back_from_in_cluster_to_kubeconfig(monkeypatch):
    from kubernetes import client, config

    tried = []

    def not_in_a_pod():
        tried.append("incluster")
        raise config.ConfigException("not in a pod")

    monkeypatch.setattr(config, "load_incluster_config", not_in_a_pod)
    monkeypatch.setattr(config, "load_kube_config", lambda: tried.append("kubeconfig"))
    monkeypatch.setattr(client, "CoreV1Api", lambda: "api")
    assert kube.connect() == "api" and tried == ["incluster", "kubeconfig"]
