"""One check's world: a lab node the plugin runs on, an outside network, pods on demand, and the runtime.

Every check gets a fresh ``Session`` (its own ``Lab``), so one plugin's mess never reaches the next
check, and the lab's teardown removes it all: namespaces, the links and rules inside them, the IPAM
data directory, and plugin processes still running.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runtime.cleanup import release_dir
from ..runtime.cni import Attachment, CNIError, Runtime
from ..core.lab import Lab
from ..core.netns import Namespace, ip_of
from .spec import Skipped, Violation
from .target import GATEWAY, SUBNET, Target

OUTSIDE_NET = ("192.0.2.1/24", "192.0.2.254/24")  # the node's uplink and a host beyond it (TEST-NET-1)
_ids = itertools.count(1)


@dataclass
class Call:
    """What one plugin execution did: exit status (negative: killed by that signal), stdout, stderr."""

    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def answer(self) -> Any:
        try:
            return json.loads(self.stdout) if self.stdout.strip() else None
        except ValueError:
            return None

    def describe(self) -> str:
        text = self.stdout.decode(errors="replace").strip()[:300] or self.stderr.decode(errors="replace").strip()[-300:]
        return f"exit {self.returncode}: {text or '(no output)'}"


@dataclass(frozen=True)
class State:
    """What a plugin may leave on the node: links, firewall rules, IPAM files."""

    links: frozenset[str]
    rules: frozenset[str]
    files: frozenset[str]

    def diff(self, later: "State") -> str:
        parts = []
        for what, a, b in (("links", self.links, later.links), ("firewall rules", self.rules, later.rules),
                           ("IPAM files", self.files, later.files)):
            if b - a:
                parts.append(f"new {what}: {', '.join(sorted(b - a)[:6])}")
            if a - b:
                parts.append(f"{what} gone: {', '.join(sorted(a - b)[:6])}")
        return "; ".join(parts)


class Session:
    """A node running ``target``, for one check."""

    def __init__(self, target: Target, lab: Lab, version: str):
        self.target, self.lab, self.version = target, lab, version
        self.node: Namespace = lab.netns("node")
        self.node.link("lo").up()
        # every node has an uplink to an outside host: the master of macvlan/ipvlan, and where ipMasq leads
        self.outside = lab.netns("outside")
        up, far = self.node.veth("up0", self.outside, "eth0")
        up.add_address(OUTSIDE_NET[0]).up()
        far.add_address(OUTSIDE_NET[1]).up()
        self.master = up.name
        self.work = Path(f"/run/cnilab/{lab.prefix}cc")
        self.work.mkdir(parents=True)
        lab.defer(f"rm -r {self.work}", lambda: release_dir(self.work))
        self.data_dir = self.work / "ipam"
        self.values = {"subnet": SUBNET, "gateway": GATEWAY, "dataDir": str(self.data_dir), "bridge": "cni0",
                       "master": self.master}
        self.runtime = Runtime(target.bin_dirs, self.work / "cache", node=self.node.name)
        self.pods: list[Namespace] = []
        self.add_seconds = 0.0  # how long the warm-up ADD took (a kill "halfway" aims at half of it)
        self._node_inode = os.stat(f"/run/netns/{self.node.name}").st_ino

    # -- configuration ------------------------------------------------------------
    def conflist(self, version: str | None = None, name: str = "labnet", **own: Any) -> dict[str, Any]:
        """The target's conflist for ``version`` (default: the session's); ``own`` overrides keys of the plugin under test."""
        conflist = self.target.conflist(self.values, version or self.version, name)
        self.target.own(conflist).update(own)
        return conflist

    def own_conf(self, conflist: dict[str, Any] | None = None) -> dict[str, Any]:
        """The plugin under test's configuration as the runtime passes it (name, cniVersion filled)."""
        conflist = conflist or self.conflist()
        return next(c for c in Runtime.plugin_confs(conflist) if c["type"] == self.target.type)

    @property
    def ip_masq(self) -> bool:
        return bool(self.target.own(self.conflist()).get("ipMasq"))

    @property
    def is_gateway(self) -> bool:
        """The configuration asks the plugin to put the pods' gateway on the node (a bridge's isGateway)."""
        return self.target.own(self.conflist()).get("isGateway") is True

    @property
    def disable_check(self) -> bool:
        return str(self.conflist().get("disableCheck", "")).lower() == "true"

    # -- pods -----------------------------------------------------------------------
    def pod(self) -> Namespace:
        ns = self.lab.netns(f"p{next(_ids)}")
        ns.link("lo").up()
        self.pods.append(ns)
        return ns

    def attachment(self, pod: Namespace, ifname: str = "eth0", container_id: str | None = None) -> Attachment:
        return Attachment(container_id or f"ctr-{pod.short}", f"/run/netns/{pod.name}", ifname)

    def add(self, pod: Namespace | None = None, conflist: dict | None = None, ifname: str = "eth0") -> tuple[Namespace, Attachment, dict]:
        pod = pod or self.pod()
        att = self.attachment(pod, ifname)
        try:
            result = self.runtime.add(conflist or self.conflist(), att)
        except CNIError as exc:
            raise Violation(f"ADD of a plain pod failed: {exc}") from None
        return pod, att, result

    # -- raw executions ----------------------------------------------------------------
    def env(self, att: Attachment | None, command: str) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
               "CNI_PATH": ":".join(self.target.bin_dirs)}
        if att is not None:
            env.update(CNI_CONTAINERID=att.container_id, CNI_NETNS=att.netns, CNI_IFNAME=att.ifname)
        return env

    def spawn(self, env: dict[str, str]) -> subprocess.Popen:
        """Start the plugin under test inside the node, as a runtime living there does."""
        from ..core import nsexec

        return nsexec.call_in(self.node.name, lambda: subprocess.Popen(
            [str(self.target.path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env))

    def raw(self, command: str, stdin: bytes | dict, att: Attachment | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> Call:
        """Run the plugin under test once with exactly this input; nothing is parsed or raised."""
        proc = self.spawn(env if env is not None else self.env(att, command))
        data = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
        try:
            out, err = proc.communicate(data, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise Violation(f"{command} did not answer within {timeout:.0f} s") from None
        except BrokenPipeError:  # it answered without reading all of stdin
            out, err = proc.stdout.read(), proc.stderr.read()
            proc.wait()
        return Call(proc.returncode, out, err)

    # -- the node's state ------------------------------------------------------------
    def state(self) -> State:
        links = frozenset(f"{s.name}({s.kind or 'plain'})" for s in self.node.link_states())
        rules = frozenset(r for table in ("nat", "filter", "mangle") for r in self.node.iptables_rules(table))
        return State(links, rules, self.state_files())

    def state_files(self) -> frozenset[str]:
        if not self.data_dir.is_dir():
            return frozenset()
        return frozenset(str(p.relative_to(self.data_dir)) for p in self.data_dir.rglob("*"))

    def allocated(self) -> list[str]:
        """Addresses the IPAM holds on disk (host-local and cnilab keep one file per address)."""
        if not self.data_dir.is_dir():
            return []
        return sorted(p.name for p in self.data_dir.rglob("*") if p.name.count(".") == 3 and p.name[0].isdigit()
                      and all(x.isdigit() for x in p.name.split(".")))

    def settle(self, timeout: float = 15.0) -> None:
        """Wait until no plugin process runs in the node any more (a killed call's helpers may go on)."""
        deadline = time.monotonic() + timeout
        while (busy := self.processes_in_node()):
            if time.monotonic() > deadline:
                raise Violation(f"plugin processes still run in the node {timeout:.0f} s later: pids {busy}")
            time.sleep(0.005)

    @staticmethod
    def eventually(condition, timeout: float) -> bool:
        """Poll ``condition`` until it holds (True) or ``timeout`` s pass (False): for the kernel's asynchronous work."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def processes_in_node(self) -> list[int]:
        busy = []
        for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
            try:
                if os.stat(f"/proc/{pid}/ns/net").st_ino == self._node_inode:
                    busy.append(pid)
            except OSError:
                continue
        return busy

    def kill_node_processes(self) -> None:
        for pid in self.processes_in_node():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


#: the kernel link kind a plugin type needs, where it needs one beyond veth and bridge
NEEDS_KIND = {"macvlan": "macvlan", "ipvlan": "ipvlan", "vlan": "vlan"}
_kernel_lacks: dict[str, bool] = {}


def require_kernel_kind(session: Session) -> None:
    """Skip (with the reason) a plugin whose link kind this kernel cannot make: the plugin is not at fault."""
    kind = NEEDS_KIND.get(session.target.type)
    if kind is None:
        return
    if kind not in _kernel_lacks:
        from pyroute2 import NetlinkError

        try:
            session.node.ipr.link("add", ifname="probe0", kind=kind, link=session.node.link(session.master).index)
            session.node.ipr.link("del", ifname="probe0")
            _kernel_lacks[kind] = False
        except NetlinkError as exc:
            _kernel_lacks[kind] = exc.code == errno.EOPNOTSUPP
    if _kernel_lacks[kind]:
        raise Skipped(f"this kernel cannot make {kind} links (no {kind} module), so the {session.target.type} plugin "
                      f"cannot work here: load it with `modprobe {kind}` or check on another kernel")


def result_ip(result: dict) -> str:
    """The first address an ADD result gives, without its prefix length."""
    return ip_of(result["ips"][0]["address"])


def open_session(target: Target, version: str) -> tuple[Lab, Session]:
    lab = Lab()
    try:
        session = Session(target, lab, version)
        require_kernel_kind(session)
    except BaseException:
        lab.teardown()
        raise
    lab.defer("kill plugin processes left in the node", session.kill_node_processes)
    return lab, session
