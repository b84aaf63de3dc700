"""Leases kept by the Kubernetes API server (kindnet's way), the ``kube`` backend of ``cnilab agent``.

In a Kubernetes cluster the controller-manager already gives every node a pod subnet
(``Node.spec.podCIDR``) and the kubelet already publishes the node's underlay address (its
``InternalIP``): a second store (etcd of our own) would only be a second truth that can disagree.
The one thing a peer still lacks is the node's VTEP MAC, which only the node's agent knows after
making its VTEP: the agent publishes it in the annotation ``cnilab.dev/vtep-mac`` of its own Node.
A node is a lease once it has both a podCIDR and that annotation; before, it is simply not a lease
yet (a node that is still joining is no error).

Node objects live as long as the node is in the cluster, so there is no TTL to keep alive: a node
deleted from the cluster disappears from the list and every agent removes what pointed at it.
Whatever is in a node object is still only data: it goes through ``leases.parse`` like an etcd entry.
"""

from __future__ import annotations

import ipaddress
import json
import threading

from ..core.errors import LabError
from .leases import BadLease, Lease, key, parse
from .store import StoreDown

ANNOTATION = "cnilab.dev/vtep-mac"
CLUSTER = "kube"            # only names parse's keys: the API server holds one cluster
WATCH_SECONDS = 30          # a watch is re-opened this often (a stream can die silently behind a proxy)


def connect():
    """A CoreV1Api: the pod's service account in a DaemonSet, else the user's kubeconfig (a lab machine)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise LabError(f"No Kubernetes API to use: not in a pod and no kubeconfig ({exc}).") from None
    return client.CoreV1Api()


def internal_ip(node) -> str | None:
    """The node's underlay address: its first IPv4 InternalIP (a dual-stack node lists an IPv6 one too)."""
    found = [a.address for a in (node.status.addresses or []) if a.type == "InternalIP"] if node.status else []
    for address in found:
        try:
            ipaddress.IPv4Address(address)
            return address
        except ValueError:
            continue
    return found[0] if found else None


class KubeStore:
    """The Store protocol (``cnilab.cluster.store``) over Node objects; see the module docstring."""

    ttl = 9  # no TTL: only the agent's keepalive cadence (every ttl/3 s), and keepalive costs nothing

    def __init__(self, node_name: str, cidr: str, plen: int = 24):
        self.node_name, self.cidr, self.plen = node_name, cidr, plen
        self.api = connect()

    def _call(self, fn, *args, **kwargs):
        """The API call, with a failure to reach the API server as StoreDown (the agent keeps its datapath)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        where = getattr(getattr(getattr(self.api, "api_client", None), "configuration", None), "host", "the API server")
        try:
            return fn(*args, **kwargs)
        except (HTTPError, OSError) as exc:
            raise StoreDown(f"the Kubernetes API at {where} does not answer ({type(exc).__name__})") from None
        except ApiException as exc:
            if exc.status in (0, 429) or (exc.status or 0) >= 500:
                raise StoreDown(f"the Kubernetes API at {where} does not answer ({exc.status} {exc.reason})") from None
            raise LabError(f"The Kubernetes API refused {getattr(fn, '__name__', 'a call')}: {exc.status} {exc.reason} "
                           "(does the agent's ClusterRole allow get/list/watch/patch on nodes?).") from None

    def _entry(self, node) -> Lease | None:
        """The node's lease; None while it is not one yet (no podCIDR or no annotation); BadLease if malformed."""
        name = node.metadata.name
        mac = (node.metadata.annotations or {}).get(ANNOTATION)
        subnet = node.spec.pod_cidr if node.spec else None
        if not subnet or not mac:
            return None
        try:
            raw_key = key(CLUSTER, subnet)
        except ValueError:
            raise BadLease(f"its podCIDR {subnet!r} is not an IPv4 subnet") from None
        value = json.dumps({"node": name, "publicIP": internal_ip(node), "vtepMAC": mac})
        return parse(CLUSTER, self.cidr, raw_key, value, self.plen)

    def leases(self) -> tuple[list[Lease], list[tuple[str, str]]]:
        good, bad = [], []
        for node in self._call(self.api.list_node).items:
            try:
                lease = self._entry(node)
            except BadLease as exc:
                bad.append((f"node {node.metadata.name}", str(exc)))
                continue
            if lease is not None:
                good.append(lease)
        return good, bad

    def _pod_cidr(self, node: str) -> str | None:
        subnet = self._call(self.api.read_node, node).spec.pod_cidr
        try:
            return str(ipaddress.IPv4Network(subnet)) if subnet else None
        except ValueError:
            return None

    def candidates(self, node: str) -> list[str]:
        """Only the node's podCIDR: the controller-manager chose it, the agent does not pick subnets."""
        subnet = self._pod_cidr(node)
        return [subnet] if subnet else []

    def no_subnet(self) -> str:
        """Why ``candidates`` offered nothing, as the fix."""
        return (f"node {self.node_name} has no spec.podCIDR yet: the controller-manager allocates them when it runs with "
                "--allocate-node-cidrs (kind and kubeadm do, given a podSubnet)")

    def mine(self, node: str) -> Lease | None:
        """This node's lease when its annotation is set already (a restarted agent); None otherwise."""
        try:
            return self._entry(self._call(self.api.read_node, node))
        except BadLease:
            return None  # claimed again, which rewrites the annotation

    def claim(self, lease: Lease) -> bool:
        """Publish this node's VTEP MAC; False for any subnet but the node's podCIDR (it cannot hold another)."""
        if lease.subnet != self._pod_cidr(self.node_name):
            return False
        self._annotate(lease.vtep_mac)
        return True

    def update(self, lease: Lease) -> None:
        """This node's VTEP was made again (a new MAC): publish the new one."""
        self._annotate(lease.vtep_mac)

    def keepalive(self) -> bool:
        return True  # the API server keeps the Node while the node is in the cluster

    def release(self) -> None:
        """The node leaves: without the annotation it is no lease, and peers remove their entries for it."""
        self._annotate(None)  # null in a merge patch deletes the key

    def _annotate(self, mac: str | None) -> None:
        self._call(self.api.patch_node, self.node_name, {"metadata": {"annotations": {ANNOTATION: mac}}})

    def watch(self, wake: threading.Event, stop: threading.Event) -> None:
        """Set ``wake`` on every Node event until ``stop``; an API error ends one watch, and another starts."""
        from kubernetes import watch

        while not stop.is_set():
            try:
                stream = watch.Watch()
                wake.set()  # a (re)started watch may have missed changes: look again
                for _ in stream.stream(self.api.list_node, timeout_seconds=WATCH_SECONDS):
                    wake.set()
                    if stop.is_set():
                        stream.stop()
                        break
            except Exception:  # noqa: BLE001 -- the API server went away; the main loop says so, this retries
                pass
            stop.wait(0.5)
