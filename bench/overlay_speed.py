"""Overlay figures (issue: stages 05-06). Run as root: `sudo .venv/bin/python bench/overlay_speed.py [seconds]`.

1. iperf3 TCP throughput, median of 5 alternating rounds: same-node pod->pod, cross-node pod->pod (p2p and routed
   overlays) and node->node on the underlay (the baseline). Goal: cross-node >= 0.75 x underlay.
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


def iperf(client, server, server_ip) -> float:
    """Gbit/s from client to server_ip (iperf3 server started in `server` for one test)."""
    server.spawn(["iperf3", "-s", "-1", "-p", "5201"])
    wait_for(lambda: 5201 in listening_ports(server), timeout=5, what="iperf3 to listen")
    done = client.run(["iperf3", "-c", server_ip, "-p", "5201", "-t", str(SECONDS), "-J"], timeout=SECONDS + 20)
    return json.loads(done.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9


def throughput(rounds: int = 5) -> dict[str, float]:
    """Median Gbit/s per path over ``rounds`` rounds; the paths of one lab alternate within a round,
    so the underlay baseline and the overlay share the machine's state of the moment."""
    stage6 = load_stage(6, TESTS)
    samples: dict[str, list[float]] = {}
    for mode in ("p2p", "routed"):
        with Lab() as lab:
            nodes = stage6.build(lab, "cluster", mode=mode, node_kind="netns")["cluster"]
            n1, n2 = nodes[0], nodes[1]
            (a, _), (b, b_ip) = n1.pods["n1p1"], n1.pods["n1p2"]
            (c, c_ip) = n2.pods["n2p1"]
            for _ in range(rounds):
                samples.setdefault(f"node->node underlay ({mode} lab)", []).append(iperf(n1.ns, n2.ns, n2.ip))
                samples.setdefault(f"cross-node pod->pod ({mode})", []).append(iperf(a, c, c_ip))
                samples.setdefault(f"same-node pod->pod ({mode} lab)", []).append(iperf(a, b, b_ip))
                if mode == "routed":  # the tunnel alone, without the pods' veths and bridges: where the cost is
                    samples.setdefault("node->node over VXLAN (routed lab)", []).append(iperf(n1.ns, n2.ns, n2.vtep_ip))
    return {k: statistics.median(v) for k, v in samples.items()}


def bringup(target, **given) -> float:
    t0 = time.perf_counter()
    with Lab() as lab:
        target(lab, **given)
    return time.perf_counter() - t0


def main() -> int:
    figures = throughput()
    print(f"iperf3 TCP, {SECONDS} s each, median of 5 alternating rounds (Gbit/s):")
    worst = 1.0
    for mode in ("p2p", "routed"):
        base = figures[f"node->node underlay ({mode} lab)"]
        for name, gbps in figures.items():
            if f"({mode}" in name:
                print(f"  {name:36s} {gbps:6.1f}  ({gbps / base:.2f} x underlay)")
        worst = min(worst, figures[f"cross-node pod->pod ({mode})"] / base)
    print(f"  goal cross-node >= 0.75 x underlay: {'met' if worst >= 0.75 else 'MISSED'} (worst {worst:.2f})")

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
