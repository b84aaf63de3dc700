"""Run Python code inside a network namespace.

The network namespace is a per-thread attribute in Linux, so a short-lived
thread that calls ``setns(2)`` on itself can open sockets, read sysctls or
sniff packets inside a namespace while the rest of the process stays where it
is. Python 3.11 has no ``os.setns`` (3.12 does), hence the one ctypes call.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Any, Callable

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
CLONE_FS = 0x00000200
MS_REC = 0x4000
MS_SLAVE = 0x80000
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(name: str) -> str:
    return name if name.startswith("/") else f"{NETNS_RUN_DIR}/{name}"


def enter(name: str) -> None:
    """Move the calling thread into namespace ``name`` (a name or a path)."""
    if hasattr(os, "setns"):
        fd = os.open(netns_path(name), os.O_RDONLY)
        try:
            os.setns(fd, CLONE_NEWNET)
        finally:
            os.close(fd)
        return
    fd = os.open(netns_path(name), os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), netns_path(name))
    finally:
        os.close(fd)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def own_sysfs() -> None:
    """Give the calling thread a private mount namespace whose /sys shows its network namespace's links.

    sysfs shows the links of the namespace that mounted it, so /sys/class/net/X of a lab namespace
    exists only in a sysfs mounted from inside it (``ip netns exec`` does the same, in a new process).
    The new mount namespace is made a slave first, so the sysfs mounted over /sys never reaches the
    machine's; it ends with the thread.
    """
    _check(_libc.unshare(CLONE_NEWNS | CLONE_FS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "mount --make-rslave /")
    _check(_libc.mount(b"sysfs", b"/sys", b"sysfs", 0, None), "mount sysfs /sys")


def call_in(name: str, fn: Callable[..., Any], *args: Any, sysfs: bool = False, **kwargs: Any) -> Any:
    """Call ``fn(*args, **kwargs)`` in a thread inside namespace ``name``; return or raise its outcome.

    ``sysfs=True``: the thread also sees the namespace's own /sys (``own_sysfs``).
    """
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            enter(name)
            if sysfs:
                own_sysfs()
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=body, name=f"netns:{name}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def start_in(name: str, fn: Callable[[], None], *, thread_name: str = "") -> threading.Thread:
    """Start ``fn()`` in a daemon thread inside namespace ``name`` and return the thread."""

    def body() -> None:
        enter(name)
        fn()

    thread = threading.Thread(target=body, name=thread_name or f"netns:{name}", daemon=True)
    thread.start()
    return thread


def remove(name: str) -> None:
    """Remove the named namespace (``ip netns del``) with pyroute2. Its asyncio loop can be stopped mid-call by a
    second Ctrl-C during teardown ("Event loop stopped before Future completed"): the namespace is then still
    there, and is removed again."""
    from pyroute2 import netns as pyr_netns

    try:
        pyr_netns.remove(name)
    except RuntimeError:
        if os.path.exists(netns_path(name)):
            pyr_netns.remove(name)
