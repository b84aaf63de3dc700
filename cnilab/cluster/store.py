"""Where the agent keeps and finds leases: etcd (the lab's, flannel's way).

Every backend answers the same questions (``Store``): the leases there are (and the entries that are
not leases, with the reason), this node's lease from an earlier run, claiming a subnet so that no
other node can hold it, keeping the claim alive, and a wake-up when anything changes.
``StoreDown`` means the store does not answer: the agent then keeps its datapath as it is.
"""

from __future__ import annotations

import threading
from typing import Protocol

from .leases import BadLease, Lease, key, parse, prefix, subnets


class StoreDown(ConnectionError):
    """The store does not answer; the message names it."""


class Store(Protocol):
    cidr: str

    def leases(self) -> tuple[list[Lease], list[tuple[str, str]]]: ...
    def candidates(self, node: str) -> list[str]: ...
    def no_subnet(self) -> str: ...
    def mine(self, node: str) -> Lease | None: ...
    def claim(self, lease: Lease) -> bool: ...
    def keepalive(self) -> bool: ...
    def watch(self, wake: threading.Event, stop: threading.Event) -> None: ...
    def release(self) -> None: ...


class EtcdStore:
    """Leases as etcd keys bound to an etcd lease of ``ttl`` seconds."""

    def __init__(self, url: str, cluster: str, cidr: str, ttl: int = 10, plen: int = 24):
        from urllib.parse import urlparse

        from etcd3gw.client import Etcd3Client

        where = urlparse(url)
        self.url, self.cluster, self.cidr, self.ttl, self.plen = url, cluster, cidr, ttl, plen
        self.client = Etcd3Client(host=where.hostname, port=where.port or 2379, timeout=max(1, ttl / 3))
        self.lease_id: int | None = None

    def _call(self, fn, *args, **kwargs):
        import requests
        from etcd3gw.exceptions import ConnectionFailedError, ConnectionTimeoutError, Etcd3Exception

        try:
            return fn(*args, **kwargs)
        except (requests.RequestException, ConnectionFailedError, ConnectionTimeoutError) as exc:
            raise StoreDown(f"etcd at {self.url} does not answer ({type(exc).__name__})") from None
        except Etcd3Exception as exc:
            if "connection" in str(exc).lower() or "timed out" in str(exc).lower():
                raise StoreDown(f"etcd at {self.url} does not answer ({exc})") from None
            raise

    def _entries(self) -> list[tuple[str, bytes, dict]]:
        found = self._call(self.client.get_prefix, prefix(self.cluster))
        return [(meta["key"].decode(errors="replace"), value, meta) for value, meta in found]

    def leases(self) -> tuple[list[Lease], list[tuple[str, str]]]:
        good, bad = [], []
        for raw_key, value, meta in self._entries():
            try:
                lease = parse(self.cluster, self.cidr, raw_key, value, self.plen)
            except BadLease as exc:
                bad.append((raw_key, str(exc)))
                continue
            if "lease" not in meta:  # a subnet held forever would outlive its node: never trust it
                bad.append((raw_key, "it has no TTL (it is bound to no etcd lease), so it would never expire"))
                continue
            good.append(lease)
        return good, bad

    def candidates(self, node: str) -> list[str]:
        taken = {parse_subnet(k) for k, _, _ in self._entries()}
        return [s for s in subnets(self.cidr, self.plen) if s not in taken]

    def no_subnet(self) -> str:
        """Why ``candidates`` offered nothing, as the fix."""
        return f"the cluster CIDR {self.cidr} has no free /{self.plen} left: give the cluster a shorter prefix"

    def mine(self, node: str) -> Lease | None:
        """This node's lease from before a restart, adopted with its etcd lease while that is alive."""
        for raw_key, value, meta in self._entries():
            try:
                lease = parse(self.cluster, self.cidr, raw_key, value, self.plen)
            except BadLease:
                continue
            if lease.node == node and "lease" in meta:
                from etcd3gw.lease import Lease as EtcdLease

                held = EtcdLease(int(meta["lease"]), self.client)
                if self._call(held.refresh) > 0:
                    self.lease_id = held.id
                    return lease
        return None

    def claim(self, lease: Lease) -> bool:
        """Create the subnet's key bound to a fresh etcd lease; False when another node holds it."""
        held = self._call(self.client.lease, self.ttl)
        if self._call(self.client.create, key(self.cluster, lease.subnet), lease.value(), lease=held):
            self.lease_id = held.id
            return True
        self._call(held.revoke)
        return False

    def update(self, lease: Lease) -> None:
        """Rewrite this node's lease (same subnet and etcd lease), e.g. when its VTEP was made again."""
        from etcd3gw.lease import Lease as EtcdLease

        self._call(self.client.put, key(self.cluster, lease.subnet), lease.value(), lease=EtcdLease(self.lease_id, self.client))

    def keepalive(self) -> bool:
        """Refresh the etcd lease; False when it is gone (it expired while the store was away)."""
        from etcd3gw.lease import Lease as EtcdLease

        return self.lease_id is not None and self._call(EtcdLease(self.lease_id, self.client).refresh) > 0

    def watch(self, wake: threading.Event, stop: threading.Event) -> None:
        """Set ``wake`` on every change under the cluster's prefix, until ``stop``; survives the store going away."""
        while not stop.is_set():
            try:
                events, cancel = self._call(self.client.watch_prefix, prefix(self.cluster))
                wake.set()  # a (re)started watch may have missed changes: look again
                for _ in events:
                    wake.set()
                    if stop.is_set():
                        break
                cancel()
            except Exception:  # noqa: BLE001 -- the store went away; the main loop says so, this retries
                pass
            stop.wait(0.2)

    def release(self) -> None:
        """Give the subnet back now (a node leaving for good), instead of when the TTL runs out."""
        if self.lease_id is not None:
            from etcd3gw.lease import Lease as EtcdLease

            self._call(EtcdLease(self.lease_id, self.client).revoke)
            self.lease_id = None


def parse_subnet(raw_key: str) -> str:
    return raw_key.rsplit("/", 1)[-1].replace("-", "/")
