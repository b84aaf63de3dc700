"""How long the conformance checker takes for one plugin. Run as root:
`sudo .venv/bin/python bench/conformance_speed.py [PLUGIN ...]` (default: cnilab's plugin and the reference bridge).

The figure is the whole check (every case, each in a fresh lab node) in seconds. Its baseline,
measured in the same run, is the smallest unit of work the checker repeats: one case's lab (node,
uplink, outside host) with one ADD + DEL of the reference bridge; the ratio says how many such
units a whole check costs.
"""

from __future__ import annotations

import statistics
import sys
import time

from cnilab.conformance.run import check, cnilab_target, discover_versions, target_for
from cnilab.conformance.session import open_session
from cnilab.conformance.target import Target


def unit_seconds(rounds: int = 10) -> float:
    """The median time of a fresh case lab with one ADD + DEL of the reference bridge."""
    target = Target.load("/usr/lib/cni/bridge")
    target.supported = discover_versions(target)
    times = []
    for _ in range(rounds):
        start = time.monotonic()
        lab, session = open_session(target, target.highest)
        try:
            _, att, _ = session.add()
            session.runtime.delete(session.conflist(), att)
        finally:
            lab.teardown()
        times.append(time.monotonic() - start)
    return statistics.median(times)


def main() -> None:
    plugins = sys.argv[1:] or [None, "/usr/lib/cni/bridge"]
    unit = unit_seconds()
    print(f"baseline: one case lab + ADD + DEL of the reference bridge: {unit * 1000:.0f} ms (median of 10)")
    for plugin in plugins:
        context = cnilab_target() if plugin is None else target_for(plugin)
        with context as target:
            report = check(target)
        cases = len(report.outcomes)
        ran = cases - sum(o.verdict.value == "not applicable" for o in report.outcomes)
        print(f"{plugin or 'cnilab (thick)'}: whole check {report.seconds:.1f} s, {cases} cases ({ran} run), "
              f"{report.seconds / cases * 1000:.0f} ms per case; {report.seconds / unit:.0f}x the baseline")


if __name__ == "__main__":
    main()
