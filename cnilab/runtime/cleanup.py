"""Find and remove what any lab run left behind.

Leftovers are recognised by the lab's name pattern (``cl`` + 4 base-36
characters + ``-``): network namespaces under /run/netns, links in the root
namespace (the lab never makes any there, so one found is a bug's leftover),
processes still running inside a lab namespace, and node containers (by their
``cnilab.prefix`` label). Nothing else is touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import IPRoute, netns as pyr_netns

from . import nodes
from ..core.names import PREFIX_RE
from ..core.nsexec import NETNS_RUN_DIR

RUN_DIR = "/run/cnilab"  # private daemons' state (containerd of stage 07)


@dataclass
class Leftovers:
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    processes: list[tuple[int, str]] = field(default_factory=list)  # (pid, namespace)
    containers: list[str] = field(default_factory=list)  # Docker node containers (labelled)
    dirs: list[str] = field(default_factory=list)  # private daemons' directories (/run/cnilab/<prefix>...)

    def __bool__(self) -> bool:
        return bool(self.namespaces or self.links or self.processes or self.containers or self.dirs)

    def describe(self) -> str:
        parts = [f"netns {n}" for n in self.namespaces]
        parts += [f"link {n} (root namespace)" for n in self.links]
        parts += [f"process {pid} in {ns}" for pid, ns in self.processes]
        parts += [f"container {c}" for c in self.containers]
        parts += [f"directory {d}" for d in self.dirs]
        return ", ".join(parts) or "nothing"


def find(prefixes: set[str] | None = None) -> Leftovers:
    """Lab objects present now; only those of ``prefixes`` when given."""

    def ours(name: str) -> bool:
        return bool(PREFIX_RE.match(name)) and (prefixes is None or any(name.startswith(p) for p in prefixes))

    found = Leftovers(containers=nodes.list_containers(prefixes))
    try:
        found.dirs = sorted(f"{RUN_DIR}/{n}" for n in os.listdir(RUN_DIR) if ours(n))
    except FileNotFoundError:
        pass
    try:
        found.namespaces = sorted(n for n in os.listdir(NETNS_RUN_DIR) if ours(n))
    except FileNotFoundError:
        pass
    with IPRoute() as ipr:
        found.links = sorted(n for n in (m.get("IFLA_IFNAME") for m in ipr.get_links()) if ours(n))
    inodes = {}
    for name in found.namespaces:
        try:
            inodes[os.stat(f"{NETNS_RUN_DIR}/{name}").st_ino] = name
        except FileNotFoundError:
            pass
    if inodes:
        for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
            if pid == os.getpid():
                continue
            try:
                ino = os.stat(f"/proc/{pid}/ns/net").st_ino
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            if ino in inodes:
                found.processes.append((pid, inodes[ino]))
    return found


def remove(found: Leftovers) -> Leftovers:
    """Remove ``found`` (processes first: they pin their namespace); return what was removed."""
    removed = Leftovers()
    for pid, ns in found.processes:
        try:
            os.kill(pid, signal.SIGKILL)
            removed.processes.append((pid, ns))
        except ProcessLookupError:
            pass
    if found.links:
        with IPRoute() as ipr:
            for name in found.links:
                idx = ipr.link_lookup(ifname=name)
                if idx:
                    try:
                        ipr.link("del", index=idx[0])
                        removed.links.append(name)
                    except Exception:  # noqa: BLE001 -- deleting a veth end removes its peer
                        pass
    for name in found.namespaces:
        try:
            pyr_netns.remove(name)
            removed.namespaces.append(name)
        except FileNotFoundError:
            pass
    if found.containers:
        removed.containers = nodes.remove_containers({c[:7] for c in found.containers})
    for d in found.dirs:
        release_dir(Path(d))
        removed.dirs.append(d)
    return removed


def release_dir(path: Path) -> None:
    """Stop every process started from ``path`` (a private containerd, its shims and containers),
    unmount what is mounted below it, and remove it."""
    marker = str(path)
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and pid != os.getpid():
            try:
                os.killpg(pid, signal.SIGKILL)  # a shim leads its own group with its containers
            except (ProcessLookupError, PermissionError):
                pass
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
              if line.split()[1].startswith(marker)]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def cleanup(prefixes: set[str] | None = None) -> Leftovers:
    """Remove every leftover lab object (of ``prefixes`` if given); idempotent."""
    return remove(find(prefixes))
