"""Nodes: the lab's stand-ins for machines.

By default a node is a network namespace, like every other lab object. With
``kind="docker"`` (pytest ``--nodes=docker``) a node is a Docker container, as
in the seed's setup: started with testcontainers from an image built locally
(busybox only, never pulled), with no network of Docker's own
(``network_mode=none``). Its network namespace is then attached under
/run/netns (``ip netns attach``), so every recipe configures it from outside
exactly as it configures a plain namespace -- the container needs no tools.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..core.errors import LabError
from ..core.names import check_nsname
from ..core.step import Step, shell
from .rootfs import BUSYBOX, busybox_rootfs, is_static

if TYPE_CHECKING:
    from ..core.lab import Lab
    from ..core.netns import Namespace

IMAGE = "cnilab-node:1"
LABEL = "cnilab.prefix"
#: the private daemon `./lab.sh dockerd` starts (no bridge, no iptables: hermetic)
PRIVATE_SOCKET = "/run/cnilab/docker.sock"
KINDS = ("netns", "docker")


def docker_host() -> str:
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    if os.path.exists(PRIVATE_SOCKET):
        return f"unix://{PRIVATE_SOCKET}"
    return "unix:///var/run/docker.sock"


def _client():
    import docker

    return docker.DockerClient(base_url=docker_host())


def docker_unavailable() -> str | None:
    """Why Docker nodes cannot run here, or None when they can."""
    try:
        import docker  # noqa: F401
        import testcontainers  # noqa: F401
    except ImportError:
        return "the Python packages docker/testcontainers are missing: `.venv/bin/pip install -e .`"
    try:
        _client().ping()
    except Exception:  # noqa: BLE001 -- any failure means: no daemon to talk to
        return (f"no Docker daemon answers at {docker_host()}: start one with `./lab.sh dockerd` "
                "(private, no bridge, no iptables)")
    if not is_static(BUSYBOX):
        return f"{BUSYBOX} (a static busybox) is needed to build the node image: `apt-get install -y busybox-static`"
    return None


def require_docker() -> str:
    """For tests: "docker" when Docker nodes can run, else skip the test saying why."""
    import pytest

    reason = docker_unavailable()
    if reason:
        pytest.skip(f"Docker nodes: {reason}")
    return "docker"


def ensure_image() -> str:
    """Build the node image from a rootfs tar (busybox + applet links), like `docker import`; never pull."""
    client = _client()
    if not client.images.list(name=IMAGE):
        repo, tag = IMAGE.split(":")
        client.api.import_image_from_data(busybox_rootfs(("sh", "sleep", "ip", "ping")), repository=repo, tag=tag)
    return IMAGE


def node(lab: "Lab", short: str, kind: str = "netns") -> "Namespace":
    """A machine of the lab: a namespace (default) or a Docker container's namespace (``kind="docker"``)."""
    if kind not in KINDS:
        raise LabError(f"Unknown node kind {kind!r}: use one of {', '.join(KINDS)}.")
    return docker_node(lab, short) if kind == "docker" else lab.netns(short)


def docker_node(lab: "Lab", short: str) -> "Namespace":
    """Start a node container and attach its network namespace as ``<prefix><short>``."""
    from testcontainers.core.container import DockerContainer

    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # Ryuk's image cannot be pulled
    os.environ.setdefault("DOCKER_HOST", docker_host())
    reason = docker_unavailable()
    if reason:
        raise LabError(f"Docker nodes are unavailable: {reason}.")
    name = check_nsname(lab.name(short))
    container = (DockerContainer(ensure_image())
                 .with_name(name)
                 .with_command("/bin/sleep 2147483647")
                 # /sys a tmpfs: Docker would mount the node's sysfs read-only, and every later mount of
                 # it (the lab's, to steer flows) shares that read-only superblock
                 .with_tmpfs_mount("/sys")
                 # --privileged fails where root lacks CAP_SYS_RESOURCE; these caps are enough
                 .with_kwargs(network_mode="none", labels={LABEL: lab.prefix},
                              cap_add=["NET_ADMIN", "SYS_ADMIN"],
                              security_opt=["seccomp=unconfined", "apparmor=unconfined"]))

    def start() -> int:
        container.start()
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        return wrapped.attrs["State"]["Pid"]

    pid = lab.apply(Step(shell("docker", "run", "-d", "--name", name, "--network", "none", "--cap-add", "NET_ADMIN",
                               IMAGE, "sleep", "infinity"),
                         do=start, undo=lambda: container.stop(), undo_command=shell("docker", "rm", "-f", name)))
    return lab.attach(short, pid)


def remove_containers(prefixes: set[str] | None) -> list[str]:
    """Remove lab node containers (of ``prefixes``, or all); [] when no daemon answers."""
    try:
        client = _client()
        found = client.containers.list(all=True, filters={"label": LABEL})
    except Exception:  # noqa: BLE001 -- no daemon: nothing of ours can be running in it
        return []
    removed = []
    for c in found:
        if prefixes is None or c.labels.get(LABEL) in prefixes:
            c.remove(force=True)
            removed.append(c.name)
    return removed


def list_containers(prefixes: set[str] | None) -> list[str]:
    try:
        found = _client().containers.list(all=True, filters={"label": LABEL})
    except Exception:  # noqa: BLE001
        return []
    return sorted(c.name for c in found if prefixes is None or c.labels.get(LABEL) in prefixes)
