"""Overlay figures (issue: stages 05-06). Run as root: `sudo .venv/bin/python bench/overlay_speed.py [seconds] [rounds]`.

1. iperf3 TCP throughput: same-node pod->pod, cross-node pod->pod (p2p and routed overlays) and
   node->node on the underlay (the baseline), in alternating rounds, two ways:
   - "free": the scheduler places iperf3's client and server;
   - "one core": client and server pinned to CPU 0 (taskset), so every path gets the same single
     core and the figure is the path's cost per byte, not where the scheduler happened to put the
     two processes on this 2-core VM (free-placement rounds scatter by +-20%).
   Each round measures the underlay and the overlay back to back; the ratio reported is the median
   of the per-round ratios (paired, so drift of the machine cancels). Goal: cross-node >= 0.75 x underlay.
2. Bring-up + teardown of a 3-node, 6-pod overlay lab, against the 2-namespace lab of
   stage 02 measured in the same run. Goal: <= 1 s.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from cnilab import Lab
from cnilab.probes import listening_ports, wait_for
from cnilab.recipe import load_stage

TESTS = Path(__file__).resolve().parent.parent / "tests"
SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 7
PLACEMENTS = {"free": [], "one core": ["taskset", "-c", "0"]}


def iperf(client, server, server_ip, pin: list[str]) -> float:
    """Gbit/s from client to server_ip (iperf3 server started in `server` for one test)."""
    server.spawn([*pin, "iperf3", "-s", "-1", "-p", "5201"])
    wait_for(lambda: 5201 in listening_ports(server), timeout=5, what="iperf3 to listen")
    done = client.run([*pin, "iperf3", "-c", server_ip, "-p", "5201", "-t", str(SECONDS), "-J"], timeout=SECONDS + 20)
    return json.loads(done.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9


def throughput() -> tuple[dict[tuple[str, str], list[float]], dict[tuple[str, str], list[float]]]:
    """Samples (Gbit/s) per (placement, path), and per-round ratios to the underlay per (placement, path)."""
    stage6 = load_stage(6, TESTS)
    samples: dict[tuple[str, str], list[float]] = {}
    ratios: dict[tuple[str, str], list[float]] = {}
    for mode in ("p2p", "routed"):
        with Lab() as lab:
            nodes = stage6.build(lab, "cluster", mode=mode, node_kind="netns")["cluster"]
            n1, n2 = nodes[0], nodes[1]
            (a, _), (b, b_ip) = n1.pods["n1p1"], n1.pods["n1p2"]
            (c, c_ip) = n2.pods["n2p1"]
            paths = {f"cross-node pod->pod ({mode})": (a, c, c_ip), f"same-node pod->pod ({mode} lab)": (a, b, b_ip)}
            if mode == "routed":  # the tunnel alone, without the pods' veths and bridges: where the cost is
                paths["node->node over VXLAN (routed lab)"] = (n1.ns, n2.ns, n2.vtep_ip)
            base = f"node->node underlay ({mode} lab)"
            for r in range(ROUNDS):
                for placement, pin in PLACEMENTS.items():
                    under = iperf(n1.ns, n2.ns, n2.ip, pin)
                    samples.setdefault((placement, base), []).append(under)
                    for name, (cl, sv, ip) in (paths.items() if r % 2 else reversed(paths.items())):
                        gbps = iperf(cl, sv, ip, pin)
                        samples.setdefault((placement, name), []).append(gbps)
                        ratios.setdefault((placement, name), []).append(gbps / under)
    return samples, ratios


def bringup(target, **given) -> float:
    t0 = time.perf_counter()
    with Lab() as lab:
        target(lab, **given)
    return time.perf_counter() - t0


def main() -> int:
    samples, ratios = throughput()
    print(f"iperf3 TCP, {SECONDS} s each, {ROUNDS} rounds; Gbit/s median, and x underlay = median of per-round ratios:")
    verdict = {}
    for placement in PLACEMENTS:
        print(f" placement: {placement}")
        for mode in ("p2p", "routed"):
            for (pl, name), values in samples.items():
                if pl != placement or f"({mode}" not in name:
                    continue
                r = ratios.get((pl, name))
                extra = f"({statistics.median(r):.2f} x underlay; rounds {min(r):.2f}-{max(r):.2f})" if r else "(baseline)"
                print(f"  {name:36s} {statistics.median(values):6.1f}  {extra}")
            verdict[(placement, mode)] = statistics.median(ratios[(placement, f"cross-node pod->pod ({mode})")])
    for placement in PLACEMENTS:
        worst = min(v for (pl, _), v in verdict.items() if pl == placement)
        print(f"  goal cross-node >= 0.75 x underlay, {placement}: {'met' if worst >= 0.75 else 'MISSED'} (worst mode {worst:.2f})")

    stage2, stage6 = load_stage(2, TESTS), load_stage(6, TESTS)
    two = statistics.median(bringup(lambda lab: stage2.build(lab, "veth")) for _ in range(5))
    for mode in ("p2p", "routed"):
        full = statistics.median(bringup(lambda lab, m=mode: stage6.build(lab, "cluster", mode=m, node_kind="netns"))
                               for _ in range(5))
        print(f"3-node 6-pod overlay ({mode}) up+down: {full * 1000:.0f} ms median of 5 "
              f"({full / two:.1f} x the 2-namespace lab's {two * 1000:.0f} ms; goal <= 1000 ms: {'met' if full <= 1 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
