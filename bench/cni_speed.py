"""CNI plugin speed (issue: stage 07). Run as root: `sudo .venv/bin/python bench/cni_speed.py [pods]`.

1. ADD and DEL p50/p95 of cnilab's plugin against the reference bridge + host-local, measured in
   the same run, pod by pod in rotating order, through the same runtime. Goals: ADD <= 2x, DEL <= 1x.
   cnilab twice: thin (the runtime starts ``python3 -IS`` per call) and thick (the native shim hands
   the call to the node daemon, which forks a warm Python child).
2. The floor of any plugin run as one CPython process per call: a bare ``python3 -IS`` that only
   deletes one veth (one RTM_DELLINK, nothing imported), against ``ip link del`` of the same kind of
   veth, in the same run. It shows how much of DEL is interpreter start and kernel, not plugin.
3. 110 sequential ADDs on one node (Kubernetes' default pod limit): the time per ADD must not grow
   with the count -- the last ten against the first ten, and the slope of a least-squares line; the
   reference and both cnilab modes, each in a lab of its own (with 330 pods on the machine at once
   every plugin slows down as the machine fills, the reference most).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnilab import Lab
from cnilab.core import nsexec
from cnilab.runtime.cni import Attachment, PluginDaemon, Runtime, install_plugin

PODS = int(sys.argv[1]) if len(sys.argv) > 1 else 50
PLUGINS = {"reference": ("bridge", "host-local"), "cnilab-thin": ("cnilab", "cnilab"),
           "cnilab-thick": ("cnilab", "cnilab")}


def conflist(kind: str, data: Path, bridge: str) -> dict:
    ptype, ipam = PLUGINS[kind]
    return {"cniVersion": "1.0.0", "name": f"bench-{kind}", "plugins": [
        {"type": ptype, "bridge": bridge, "isGateway": True, "mtu": 1500,
         "ipam": {"type": ipam, "subnet": SUBNETS[kind], "dataDir": str(data)}}]}


SUBNETS = {"reference": "10.31.0.0/16", "cnilab-thin": "10.30.0.0/16", "cnilab-thick": "10.32.0.0/16"}


FLOOR = """import _socket, sys
name = sys.argv[1].encode() + b"\\0"
s = _socket.socket(16, 3, 0)  # AF_NETLINK, SOCK_RAW, NETLINK_ROUTE
s.bind((0, 0))
size = 4 + len(name)
body = bytes(16) + size.to_bytes(2, "little") + (3).to_bytes(2, "little") + name + bytes((4 - size % 4) % 4)
s.send((16 + len(body)).to_bytes(4, "little") + (17).to_bytes(2, "little") + (5).to_bytes(2, "little")
       + (1).to_bytes(4, "little") + bytes(4) + body)  # RTM_DELLINK, NLM_F_REQUEST|NLM_F_ACK
s.recv(65536)
"""


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="cnilab-bench-"))
    install_plugin(work / "thin", thick=False)
    install_plugin(work / "thick")
    with Lab() as lab, PluginDaemon(work / "thick"):
        node = lab.netns("node")
        runtimes = {"reference": Runtime(["/usr/lib/cni"], work / "cache-ref", node=node.name),
                    "cnilab-thin": Runtime([work / "thin"], work / "cache-thin", node=node.name),
                    "cnilab-thick": Runtime([work / "thick"], work / "cache-thick", node=node.name)}
        confs = {k: conflist(k, work / f"ipam-{k}", f"br{n}") for n, k in enumerate(PLUGINS)}
        times = {k: {"ADD": [], "DEL": []} for k in PLUGINS}
        atts = []
        for i in range(PODS):  # a pod namespace per plugin: each adds its own default route
            atts.append({k: Attachment(f"{k}-{i}", f"/run/netns/{lab.netns(f'b{n}-{i}').name}", "eth0")
                         for n, k in enumerate(PLUGINS)})
        for verb in ("ADD", "DEL"):
            for i, att in enumerate(atts):
                order = list(PLUGINS)[i % 3:] + list(PLUGINS)[:i % 3]  # rotate who goes first
                for k in order:
                    rt = runtimes[k]
                    call = rt.add if verb == "ADD" else rt.delete
                    times[k][verb].append(timed(lambda: call(confs[k], att[k])))
        print(f"ADD/DEL through the same runtime, {PODS} pods, rotating order (ms):")
        for verb, goal in (("ADD", 2.0), ("DEL", 1.0)):
            ref = times["reference"][verb]
            r50, r95 = pct(ref, 50), pct(ref, 95)
            print(f"  {verb}: reference p50 {r50:5.1f} p95 {r95:5.1f}")
            for k in ("cnilab-thin", "cnilab-thick"):
                ours = times[k][verb]
                o50, o95 = pct(ours, 50), pct(ours, 95)
                print(f"       {k:12s} p50 {o50:5.1f} p95 {o95:5.1f} | ratio p50 {o50 / r50:.2f}x p95 {o95 / r95:.2f}x "
                      f"(goal <= {goal}x: {'met' if o50 / r50 <= goal else 'MISSED'})")

    floor_script = work / "floor.py"
    floor_script.write_text(FLOOR)
    with Lab() as lab:
        node = lab.netns("node")
        br = node.bridge("br0").up()
        floor = {"python -IS, one RTM_DELLINK": [], "ip link del": []}
        for i in range(40):
            pod = lab.netns(f"f{i}")
            host, peer = node.veth(f"f{i}", pod, "eth0")
            host.set_master(br).up()
            peer.up()
            kind = list(floor)[i % 2]
            argv = ["/usr/bin/python3", "-IS", str(floor_script), host.name] if i % 2 == 0 else ["ip", "link", "del", host.name]
            # started the way the runtime starts plugins: from a thread inside the node
            floor[kind].append(timed(lambda: nsexec.call_in(node.name, subprocess.run, argv, check=True)))
        ref_del = pct(times["reference"]["DEL"], 50)
        print("floor of a process-per-call plugin's DEL (ms, p50):")
        for kind, values in floor.items():
            print(f"  {kind:30s} {pct(values, 50):5.1f}  ({pct(values, 50) / ref_del:.2f}x the reference's whole DEL)")

    dirs = {"reference": ["/usr/lib/cni"], "cnilab-thin": [work / "thin"], "cnilab-thick": [work / "thick"]}
    print("110 sequential ADDs on one node (a lab of its own per plugin: 110 pods on the machine, not 330):")
    for k in PLUGINS:
        with Lab() as lab, PluginDaemon(work / "thick"):
            runtime = Runtime(dirs[k], work / f"cache110-{k}", node=lab.netns("node").name)
            conf = conflist(k, work / f"ipam110-{k}", "cni0")
            pods = [lab.netns(f"k{i}") for i in range(110)]  # all before any timing
            values = [timed(lambda: runtime.add(conf, Attachment(f"{k}-{i}", f"/run/netns/{pod.name}", "eth0")))
                      for i, pod in enumerate(pods)]
        first, last = statistics.median(values[:10]), statistics.median(values[-10:])
        n = len(values)
        xbar, ybar = (n - 1) / 2, statistics.mean(values)
        slope = sum((x - xbar) * (y - ybar) for x, y in enumerate(values)) / sum((x - xbar) ** 2 for x in range(n))
        print(f"  {k:12s} first ten median {first:5.1f} ms, last ten {last:5.1f} ms (ratio {last / first:.2f}); "
              f"slope {slope * 1000:5.1f} us per additional pod")
    return 0


if __name__ == "__main__":
    sys.exit(main())
