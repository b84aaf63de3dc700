"""Lab speed (issue: foundation). Run as root: `sudo .venv/bin/python bench/lab_speed.py`.

1. A 2-namespace lab -- veth, addresses, links up, one ping, teardown -- through the Lab,
   against the same steps typed as iproute2 commands (the baseline, measured in this run).
   Goal: <= 0.3 s per lab.
2. Stages 01-04 through pytest, wall time. Goal: <= 20 s.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPS = 15


def lab_once() -> float:
    from cnilab import Lab
    from cnilab.observe.probes import assert_ping

    t0 = time.perf_counter()
    with Lab() as lab:
        host, pod = lab.netns("host"), lab.netns("pod")
        a, b = host.veth("veth0", pod, "veth1")
        a.add_address("10.0.2.1/24").up()
        b.add_address("10.0.2.2/24").up()
        assert_ping(pod, "10.0.2.1", count=1)
    return time.perf_counter() - t0


SHELL = """set -e
ip netns add {p}host; ip netns add {p}pod
ip -n {p}host link add {p}veth0 type veth peer name {p}veth1 netns {p}pod
ip -n {p}host addr add 10.0.2.1/24 dev {p}veth0; ip -n {p}host link set {p}veth0 up
ip -n {p}pod addr add 10.0.2.2/24 dev {p}veth1; ip -n {p}pod link set {p}veth1 up
ip netns exec {p}pod ping -n -q -c 1 -W 1 10.0.2.1 >/dev/null
ip netns del {p}host; ip netns del {p}pod
"""


def shell_once() -> float:
    t0 = time.perf_counter()
    subprocess.run(["bash", "-c", SHELL.format(p="clbnch-")], check=True)
    return time.perf_counter() - t0


def main() -> int:
    t0 = time.perf_counter()
    import cnilab.core.lab  # noqa: F401
    import cnilab.observe.probes  # noqa: F401
    imports = time.perf_counter() - t0
    lab_once(), shell_once()  # warm caches (page cache, kernel modules)
    lab = statistics.median(lab_once() for _ in range(REPS))
    shell = statistics.median(shell_once() for _ in range(REPS))
    print(f"2-namespace lab up+ping+down: {lab * 1000:.0f} ms median of {REPS} "
          f"(iproute2 shell baseline {shell * 1000:.0f} ms; ratio {lab / shell:.2f}x; goal <= 300 ms: "
          f"{'met' if lab <= 0.3 else 'MISSED'}); one-time import of the library {imports * 1000:.0f} ms")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *[str(p) for p in sorted((ROOT / "tests").glob("stage0[1-4]_*"))]],
                          cwd=ROOT, capture_output=True, text=True)
    stages = time.perf_counter() - t0
    print(f"stages 01-04 via pytest: {stages:.1f} s wall ({done.stdout.strip().splitlines()[-1]}); "
          f"goal <= 20 s: {'met' if stages <= 20 and done.returncode == 0 else 'MISSED'} "
          f"(ratio to goal {stages / 20:.2f})")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
