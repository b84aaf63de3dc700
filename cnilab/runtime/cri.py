"""The kubelet's path, for real: containerd's CRI plugin calling a CNI plugin.

``Containerd`` starts a private containerd (its own root, state, socket and
config) inside a lab namespace that stands for the node, so the bridge and veths
the CNI plugin makes live there, never in the machine's namespace. ``Kubelet``
is the small part of a kubelet that matters here: it speaks CRI v1 over gRPC
(RunPodSandbox, PodSandboxStatus, CreateContainer, ExecSync, StopPodSandbox,
RemovePodSandbox). Images are built locally from busybox and imported with
``ctr``: nothing is ever pulled.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from ..core import processes
from ..core.errors import LabError, Todo
from ..core.netns import Namespace
from ..core.wait import wait_for
from .rootfs import BUSYBOX, busybox_rootfs, is_static

IMAGE = "docker.io/cnilab/busybox:1"
APPLETS = ("sh", "sleep", "ping", "ip", "cat", "nc", "true")
CONFIG = """version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{image}"
  # root here lacks CAP_SYS_RESOURCE: runc must not lower oom_score_adj
  restrict_oom_score_adj = true
  # pod namespaces under our state dir, not /run/netns: stop() can remove exactly ours
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin_dir}"
    conf_dir = "{conf_dir}"
    max_conf_num = 1
"""


def unavailable() -> str | None:
    """Why the containerd tier cannot run here, or None."""
    for tool, pkg in (("containerd", "containerd"), ("ctr", "containerd"), ("runc", "runc"), ("nsenter", "util-linux")):
        if shutil.which(tool) is None:
            return f"`{tool}` is missing: apt-get install -y {pkg}"
    if not is_static(BUSYBOX):
        return "a static busybox is needed for the local image: apt-get install -y busybox-static"
    try:
        import cri_api.v1.api_pb2  # noqa: F401
        import grpc  # noqa: F401
    except ImportError:
        return "the CRI client is missing: .venv/bin/pip install container-runtime-interface-api"
    return None


def image_archive(tag: str = IMAGE) -> bytes:
    """A docker-archive tarball (manifest.json, config, one layer) of busybox and its applets."""
    layer_bytes = busybox_rootfs(APPLETS, dirs=("proc", "sys", "dev", "etc", "tmp"))
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/bin/sleep", "2147483647"], "Env": ["PATH=/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer_bytes).hexdigest()}"]}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [tag.removeprefix("docker.io/")], "Layers": ["layer.tar"]}]).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in (("manifest.json", manifest), ("config.json", config), ("layer.tar", layer_bytes)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


class Containerd:
    """A private containerd running inside ``node``; ``stop()`` leaves nothing behind."""

    def __init__(self, node: Namespace, workdir: Path, bin_dir: Path, conf_dir: Path):
        """``bin_dir`` must hold the plugins of the conflist and ``loopback`` (the CRI plugin always adds it)."""
        self.node, self.workdir = node, Path(workdir)
        self.sock = self.workdir / "c.sock"
        self.root, self.state = self.workdir / "root", self.workdir / "state"
        self.config = self.workdir / "config.toml"
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(CONFIG.format(root=self.root, state=self.state, sock=self.sock, image=IMAGE,
                                             bin_dir=bin_dir, conf_dir=conf_dir))
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Containerd":
        log = open(self.workdir / "containerd.log", "wb")
        # nsenter --net only: containerd keeps the machine's mount namespace, so /run/netns/cni-* are visible
        self.proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.node.name}", "containerd", "--config", str(self.config)],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.node.lab.defer(f"stop containerd ({self.workdir})", self.stop)
        wait_for(self._ready, timeout=30, what="containerd's CRI service")
        archive = self.workdir / "image.tar"
        archive.write_bytes(image_archive())
        self.ctr("images", "import", str(archive))
        return self

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            said = (self.workdir / "containerd.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise LabError(f"containerd exited ({self.proc.returncode}); its last words: {' | '.join(said)}")
        if not self.sock.exists():
            return False
        return subprocess.run(["ctr", "-a", str(self.sock), "version"], capture_output=True).returncode == 0

    def ctr(self, *args: str) -> str:
        done = subprocess.run(["ctr", "-a", str(self.sock), "-n", "k8s.io", *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise LabError(f"`ctr {' '.join(args)}` failed: {done.stderr.strip()}")
        return done.stdout

    def stop(self) -> None:
        """Stop containerd, its shims and their containers; unmount and remove its directories."""
        if self.proc:
            processes.stop(self.proc, group=True, grace=10)
        from .cleanup import release_dir

        release_dir(self.workdir)


def process_in(netns_file: Path) -> int:
    """A process living in the network namespace that ``netns_file`` holds (a pod sandbox's pause)."""
    target = os.stat(netns_file).st_ino
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino == target:
                return int(pid)
        except OSError:
            continue  # it ended while we looked
    raise LabError(f"No process lives in the network namespace {netns_file}: is the pod sandbox running?")


class CRIError(AssertionError):
    """A CRI call failed; the message is containerd's one-line reason (often the CNI plugin's error)."""


class _Stub:
    """The runtime service, each call's gRPC error turned into one line (a workbook TODO into ``Todo``)."""

    def __init__(self, stub) -> None:
        self._stub = stub

    def __getattr__(self, name: str):
        import grpc

        method = getattr(self._stub, name)

        def call(request):
            try:
                return method(request)
            except grpc.RpcError as exc:
                details = exc.details() or str(exc.code())
                if "TODO in stage" in details:
                    raise Todo(details[details.index("TODO in stage"):]) from None
                raise CRIError(f"CRI {name}: {details}") from None

        return call


class Kubelet:
    """The kubelet's CRI calls, v1 over gRPC."""

    def __init__(self, sock: Path):
        import grpc
        from cri_api.v1 import api_pb2, api_pb2_grpc

        self.pb = api_pb2
        self.channel = grpc.insecure_channel(f"unix://{sock}")
        self.rt = _Stub(api_pb2_grpc.RuntimeServiceStub(self.channel))

    def run_pod(self, name: str, log_dir: Path) -> tuple[str, object]:
        pb = self.pb
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="default", attempt=0),
            hostname=name, log_directory=str(log_dir),
            linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD))))
        return self.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=config)).pod_sandbox_id, config

    def pod_status(self, sandbox_id: str):
        return self.rt.PodSandboxStatus(self.pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id)).status

    def start_container(self, sandbox_id: str, sandbox_config, name: str, command: list[str]) -> str:
        pb = self.pb
        config = pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name, attempt=0),
                                    image=pb.ImageSpec(image=IMAGE), command=command, log_path=f"{name}.log")
        cid = self.rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=config,
                                                                sandbox_config=sandbox_config)).container_id
        self.rt.StartContainer(pb.StartContainerRequest(container_id=cid))
        return cid

    def exec(self, container_id: str, cmd: list[str], timeout: int = 10):
        return self.rt.ExecSync(self.pb.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=timeout))

    def stop_pod(self, sandbox_id: str) -> None:
        self.rt.StopPodSandbox(self.pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))

    def remove_pod(self, sandbox_id: str) -> None:
        self.rt.RemovePodSandbox(self.pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))

    def sandbox_pid(self, sandbox_id: str) -> int:
        """The pid of the sandbox's pause process (its network namespace is the pod's), from the verbose status."""
        answer = self.rt.PodSandboxStatus(self.pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=True))
        return int(json.loads(answer.info["info"])["pid"])

    def network_ready(self) -> bool:
        """What the kubelet asks before it creates pods: does the runtime report NetworkReady (a CNI config loaded)?"""
        conditions = self.rt.Status(self.pb.StatusRequest()).status.conditions
        return any(c.type == "NetworkReady" and c.status for c in conditions)

    def pods(self) -> list:
        return list(self.rt.ListPodSandbox(self.pb.ListPodSandboxRequest()).items)

    def close(self) -> None:
        self.channel.close()
