"""Cluster figures (issue 14, stage 08). Run as root: `sudo .venv/bin/python bench/cluster_speed.py [rounds]`.

1. A 3-node cluster with etcd, up (etcd, nodes with containerd + cnilab, agents leased and converged)
   and down (teardown), against stage 06's hand-made routed 3-node overlay in the same run. Goal: <= 3 s.
2. A node's lease to its route, ARP and FDB entries on every peer: p50/p95 over ROUNDS nodes joining.
   Goal: p50 <= 100 ms.
3. RunPodSandbox to reachability: a pod created on node1, pinged from a pod on node3 (cross-node) and
   from a pod on node1 (same node), p50 of each and their ratio.
4. 20 pods per node on 1, 3 and 5 nodes: bring-up time and how it grows with nodes.
Everything is built by the stage recipes (the tests' code), so the figures are the tests' cluster.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from cnilab import Lab
from cnilab.core.wait import wait_for
from cnilab.observe.probes import ping
from cnilab.teach.recipe import load_conftest, load_stage, stage_dir

TESTS = Path(__file__).resolve().parent.parent / "tests"
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
s8 = load_conftest(stage_dir(8, TESTS) / "conftest.py")


def base(lab: Lab):
    underlay = s8.recipe.step("underlay")(lab)
    store = s8.recipe.step("store")(lab, underlay)
    s8.recipe.step("internet")(lab, underlay)
    return underlay, store


def cluster(lab: Lab, n: int):
    underlay, store = base(lab)
    return underlay, store, s8.converged([s8.add_node(lab, underlay, store, k) for k in range(1, n + 1)], timeout=30)


def timed(fn) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def up_down(build) -> tuple[float, float]:
    lab = Lab()
    try:
        up = timed(lambda: build(lab))
    finally:
        down = timed(lab.teardown)
    return up, down


def lease_to_routes() -> list[float]:
    out = []
    with Lab() as lab:
        underlay, store, nodes = cluster(lab, 3)
        for k in range(4, 4 + ROUNDS):
            node = s8.add_node(lab, underlay, store, k)
            mine = lambda: [k for k, v in s8.stored_leases(store, lab).items() if json.loads(v)["node"] == node.name]  # noqa: E731
            wait_for(lambda: bool(mine()), timeout=15, what="the lease", poll=0.002)
            leased = time.monotonic()
            subnet = mine()[0].rsplit("/", 1)[1].replace("-", "/")
            wait_for(lambda: all(subnet in p.peer_entries() for p in nodes), timeout=10, what="the peers' entries", poll=0.002)
            out.append(time.monotonic() - leased)
            nodes.append(node)
    return out


def reachability() -> tuple[list[float], list[float]]:
    cross, same = [], []
    with Lab() as lab:
        _, _, nodes = cluster(lab, 3)
        far, near = s8.run_pod(lab, nodes[2], "far"), s8.run_pod(lab, nodes[0], "near")
        for i in range(ROUNDS * 2):
            for src, out in ((far, cross), (near, same)):
                started = time.monotonic()
                pod = s8.run_pod(lab, nodes[0], f"p{i}{'x' if out is cross else 's'}")
                while not ping(src.ns, pod.ip, count=1, wait=0.05).ok:
                    pass  # each try waits for its reply: no fixed sleep
                out.append(time.monotonic() - started)
    return cross, same


def pods_per_node(n: int, per_node: int = 20) -> float:
    with Lab() as lab:
        _, _, nodes = cluster(lab, n)
        return timed(lambda: [s8.run_pod(lab, node, f"q{node.n}x{k}") for node in nodes for k in range(per_node)])


def main() -> int:
    s6 = load_stage(6, TESTS)
    baseline = up_down(lambda lab: s6.step("cluster")(lab, s6.step("underlay")(lab), "routed", "netns"))
    figures = up_down(lambda lab: cluster(lab, 3))
    total, base_total = sum(figures), sum(baseline)
    print(f"3-node cluster with etcd: up {figures[0]:.2f} s + down {figures[1]:.2f} s = {total:.2f} s "
          f"(goal <= 3 s); stage 06's routed overlay: {base_total:.2f} s; ratio {total / base_total:.1f}x")
    joins = lease_to_routes()
    p95 = sorted(joins)[max(0, round(0.95 * len(joins)) - 1)]
    print(f"lease -> entries on every peer: p50 {statistics.median(joins) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
          f"over {len(joins)} joins (goal p50 <= 100 ms)")
    cross, same = reachability()
    print(f"RunPodSandbox -> reachable: cross-node p50 {statistics.median(cross) * 1000:.0f} ms, same-node p50 "
          f"{statistics.median(same) * 1000:.0f} ms, ratio {statistics.median(cross) / statistics.median(same):.2f}x")
    one = None
    for n in (1, 3, 5):
        took = pods_per_node(n)
        one = one or took
        print(f"{n} node(s) x 20 pods: {took:.2f} s ({took / (20 * n) * 1000:.0f} ms per pod, {took / one:.1f}x the 1-node figure)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
