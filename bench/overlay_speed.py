"""Overlay figures (issue: stages 05-06). Run as root: `sudo .venv/bin/python bench/overlay_speed.py [seconds] [rounds]`.

1. iperf3 TCP throughput: same-node pod->pod, cross-node pod->pod (p2p and routed overlays) and
   node->node on the underlay (the baseline). Each round measures the underlay and then the other
   paths back to back; a path's figure is the median of its per-round ratios to the underlay (paired,
   so drift of the machine cancels). Goal: cross-node >= 0.75 x underlay.

   Every path is CPU-bound here (no NIC: a veth is a memory copy), so two things decide the figures
   and the bench sets both itself instead of inheriting them from the machine:
   - the congestion control (iperf3 -C): cubic, Linux's default, and every other one the kernel has
     loaded (bbr, where the machine uses it: its pacing holds a veth path near 10 Gbit/s, which flatters
     every ratio to the underlay);
   - where the work runs:
     "steered"   the lab as built: each flow received on one CPU (RPS, stage 06's keep_flows_in_order);
     "unsteered" RPS off: a veth receives each packet on its sender's CPU, and TCP sends from two
                 (the lab before flow steering; shows what steering is worth);
     "one core"  iperf3 and every lab cable's receive work on CPU 0: the path's cost per byte.
2. Bring-up + teardown of a 3-node, 6-pod overlay lab, against the 2-namespace lab of
   stage 02 measured in the same run. Goal: <= 1 s.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

from cnilab import Lab
from cnilab.observe.probes import listening_ports, wait_for
from cnilab.teach.recipe import load_stage

TESTS = Path(__file__).resolve().parent.parent / "tests"
SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
ALL_CPUS = os.sched_getaffinity(0)
PLACEMENTS = {  # name: (iperf3 prefix, CPUs that receive each lab cable's flows)
    "steered": ([], ALL_CPUS),
    "unsteered": ([], set()),
    "one core": (["taskset", "-c", "0"], {0}),
}


def congestion_controls() -> list[str]:
    loaded = Path("/proc/sys/net/ipv4/tcp_available_congestion_control").read_text().split()
    return ["cubic", *sorted(set(loaded) - {"cubic", "reno"})]


def steer(lab: Lab, cpus: set[int]) -> None:
    """Receive every veth of the lab on ``cpus`` (empty: RPS off)."""
    for ns in lab:
        ns.steer_flows(*(ns.link(s.name) for s in ns.link_states() if s.kind == "veth"), cpus=cpus)


def iperf(client, server, server_ip, pin: list[str], cc: str) -> tuple[float, int]:
    """(Gbit/s, retransmits) from client to server_ip (iperf3 server started in `server` for one test)."""
    server.spawn([*pin, "iperf3", "-s", "-1", "-p", "5201"])
    wait_for(lambda: 5201 in listening_ports(server), timeout=5, what="iperf3 to listen")
    done = client.run([*pin, "iperf3", "-c", server_ip, "-p", "5201", "-t", str(SECONDS), "-C", cc, "-J"],
                      timeout=SECONDS + 20)
    end = json.loads(done.stdout)["end"]
    return end["sum_received"]["bits_per_second"] / 1e9, end["sum_sent"].get("retransmits", 0)


def throughput(ccs: list[str]) -> dict[tuple[str, str, str], dict[str, list[float]]]:
    """Per (cc, placement, path): Gbit/s samples, per-round ratios to the underlay, retransmits."""
    stage6 = load_stage(6, TESTS)
    out: dict[tuple[str, str, str], dict[str, list[float]]] = {}
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
                for placement, (pin, cpus) in PLACEMENTS.items():
                    steer(lab, cpus)
                    for cc in ccs:
                        under, retr = iperf(n1.ns, n2.ns, n2.ip, pin, cc)
                        row = out.setdefault((cc, placement, base), {"gbps": [], "ratio": [], "retr": []})
                        row["gbps"].append(under)
                        row["retr"].append(retr)
                        for name, (cl, sv, ip) in (paths.items() if r % 2 else reversed(paths.items())):
                            gbps, retr = iperf(cl, sv, ip, pin, cc)
                            row = out.setdefault((cc, placement, name), {"gbps": [], "ratio": [], "retr": []})
                            row["gbps"].append(gbps)
                            row["ratio"].append(gbps / under)
                            row["retr"].append(retr)
    return out


def bringup(target, **given) -> float:
    t0 = time.perf_counter()
    with Lab() as lab:
        target(lab, **given)
    return time.perf_counter() - t0


def main() -> int:
    ccs = congestion_controls()
    default = Path("/proc/sys/net/ipv4/tcp_congestion_control").read_text().strip()
    out = throughput(ccs)
    print(f"iperf3 TCP, {SECONDS} s each, {ROUNDS} rounds, {len(ALL_CPUS)} CPUs; this machine's default "
          f"congestion control: {default}.")
    print("Gbit/s median; x underlay = median of per-round ratios (min-max); retransmits per test (median)")
    missed = []
    for cc in ccs:
        for placement in PLACEMENTS:
            print(f" {cc}, {placement}:")
            for (c, pl, name), row in out.items():
                if (c, pl) != (cc, placement):
                    continue
                r = row["ratio"]
                extra = f"{statistics.median(r):.2f} x underlay ({min(r):.2f}-{max(r):.2f})" if r else "baseline"
                print(f"  {name:36s} {statistics.median(row['gbps']):6.1f}  {extra:34s} "
                      f"retr {statistics.median(row['retr']):.0f}")
                if name.startswith("cross-node") and statistics.median(r) < 0.75:
                    missed.append(f"{cc}/{placement}/{name.split('(')[1].rstrip(')')} {statistics.median(r):.2f}")
    print(f"  goal cross-node >= 0.75 x underlay: {'met everywhere' if not missed else 'MISSED in ' + ', '.join(missed)}")

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
