"""``cnilab agent``: the node agent of stage 08, with the datapath steps of the stage recipes.

The agent's loop lives in ``cnilab.cluster.agent``; what it does to the kernel is the recipes' code
(stage 06's VTEP and per-peer entries, stage 08's removal, NAT and conflist), loaded from the tests
folder -- a workbook's own when run from one -- so the agent runs what the tests prove.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import sys
from pathlib import Path

from ..core.errors import LabError

STEP_NAMES = ("make_vtep", "route_to", "forget_peer", "masquerade_leaving", "pod_conflist")


def add_parser(sub: argparse._SubParsersAction) -> None:
    agent = sub.add_parser("agent", help="the node agent of stage 08: lease a pod subnet, program the VXLAN routes to every peer",
                           description="Stops on SIGTERM keeping its lease and datapath for the next agent on the node; "
                                       "on SIGUSR1 the node leaves the cluster (lease, entries, VTEP, NAT rule, conflist removed).")
    agent.add_argument("--name", required=True, help="this node's name in the cluster")
    agent.add_argument("--netns", help="the node's network namespace (a name under /run/netns), or `host`: the agent's own "
                                       "(a DaemonSet pod with hostNetwork); default: host with --backend kube")
    agent.add_argument("--prefix", default="cnilab-", help="the lab run's prefix (names the VTEP and tags NAT rules)")
    agent.add_argument("--backend", choices=("etcd", "kube"), default="etcd")
    agent.add_argument("--store", default="http://127.0.0.1:2379", help="etcd's client URL (backend etcd)")
    agent.add_argument("--cluster", default="cnilab", help="the cluster's name: its leases live under /cnilab/NAME/")
    agent.add_argument("--cidr", default="10.244.0.0/16", help="the cluster CIDR; each node leases a /24 of it")
    agent.add_argument("--ttl", type=int, default=10, help="seconds a lease lives without the agent's keepalive")
    agent.add_argument("--vni", type=int, default=1)
    agent.add_argument("--port", type=int, default=4789, help="the VXLAN UDP port (IANA 4789)")
    agent.add_argument("--conflist", type=Path, help="write the node's CNI conflist here (atomically)")
    agent.add_argument("--ipam-dir", type=Path, default=Path("/var/lib/cni/networks"))
    agent.add_argument("--tests", help="the tests folder whose stage recipes the agent runs (default: this checkout's)")
    agent.set_defaults(func=run)


def steps(tests: Path):
    from ..cluster.agent import Steps
    from .recipe import load_stage

    recipe = load_stage(8, tests)
    return Steps(**{name: recipe.step(name) for name in STEP_NAMES})


def run(args: argparse.Namespace) -> int:
    from ..cluster.agent import Agent, Config
    from ..cluster.probe import warm
    from ..core.lab import Lab
    from ..core.netns import Namespace
    from .runner import default_tests_dir

    netns = args.netns or ("host" if args.backend == "kube" else None)
    if netns is None:
        raise LabError("Which node is this? Pass the node's network namespace with --netns (a name under /run/netns).")
    if netns == "host":
        netns = attach_own_netns(f"{args.prefix}host")
    if not Path(f"/run/netns/{netns}").exists():
        raise LabError(f"There is no network namespace {netns}: pass the node's namespace with --netns.")
    lab = Lab(prefix=args.prefix, keep=True)  # the agent's changes outlive it: the next agent takes them over
    ns = Namespace(lab, netns)
    lab.namespaces[ns.name] = ns
    config = Config(args.name, args.cidr, args.vni, args.port, args.conflist, args.ipam_dir)
    agent = Agent(config, make_store(args), steps(Path(args.tests) if args.tests else default_tests_dir()), ns,
                  log=lambda line: print(line, flush=True))
    leaving = []

    def stop(signum, frame) -> None:
        leaving.append(signum == signal.SIGUSR1)
        agent.stop.set()
        agent.wake.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(sig, stop)
    threading.Thread(target=warm, daemon=True).start()  # the first ARP probe needs scapy; starting needs it not
    agent.run()
    if any(leaving):
        agent.leave()
    else:
        agent.say("stopped (its lease and datapath stay for the next agent on this node)")
    # nothing is left to undo (the lab is kept on purpose), and a normal interpreter exit waits seconds for
    # the watch's streaming HTTP read and pyroute2's helpers: the next agent on this node must not wait for that
    sys.stdout.flush()
    os._exit(0)


def attach_own_netns(name: str) -> str:
    """Give the agent's own network namespace (a hostNetwork pod's: the node's) the name ``name`` under
    /run/netns, the way every lab step finds a namespace. pyroute2 cannot bind-mount an existing namespace,
    ``ip netns attach`` can; a name left by an earlier agent for another namespace is replaced."""
    import subprocess

    path = Path(f"/run/netns/{name}")
    own = os.stat(f"/proc/{os.getpid()}/ns/net")
    if path.exists():
        if (path.stat().st_dev, path.stat().st_ino) == (own.st_dev, own.st_ino):
            return name
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    done = subprocess.run(["ip", "netns", "attach", name, str(os.getpid())], capture_output=True, text=True)
    if done.returncode != 0:
        raise LabError(f"Could not name this namespace {name} (ip netns attach): {done.stderr.strip() or done.returncode}.")
    return name


def make_store(args: argparse.Namespace):
    if args.backend == "kube":
        from ..cluster.kube import KubeStore

        return KubeStore(args.name, args.cidr)
    from ..cluster.store import EtcdStore

    try:
        return EtcdStore(args.store, args.cluster, args.cidr, ttl=args.ttl)
    except ImportError:
        print("cnilab: the etcd client is missing: .venv/bin/pip install etcd3gw", file=sys.stderr)
        raise SystemExit(2) from None
