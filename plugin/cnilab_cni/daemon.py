"""The node's resident half of the plugin (thick mode): a warm Python that forks one child per call.

The shim (``shim.c``, installed as the plugin executable) connects to ``.cnilab/daemon.sock`` and
sends the call: its environment, and as file descriptors the caller's network and mount
namespaces, stdin, stdout and stderr. A child forked from this process -- the plugin's modules
already imported -- enters those namespaces, takes those descriptors as its own and runs
``plugin.main()``, exactly what the thin shim runs. The child's exit status goes back to the shim,
which exits with it. A child per call keeps calls apart as separate processes do: a crash, a
``setns`` or the environment of one call never reaches another.

Run: ``python3 -IS -c 'import sys; sys.path.insert(0, LIB); from cnilab_cni.daemon import serve; serve(SOCK)'``
(``install.daemon_argv`` builds this line). It exits on SIGTERM/SIGINT, or when its parent dies
if started with ``die_with_parent``.
"""

import array
import os
import selectors
import signal
import socket
import sys
import threading  # imported here, warm: a child that imported it itself would pay ~2 ms per call

from . import plugin  # noqa: F401 -- imported here once, so children start warm
from . import bridgemac, config, fastjson, ipam, nat, netlink  # noqa: F401
from .nsenter import CLONE_NEWNET, CLONE_NEWNS, setns

MAX_ENV = 1 << 20


def _enter(fd: int, kind: str, nstype: int) -> None:
    """Join the caller's namespace unless this process is in it already."""
    if os.fstat(fd).st_ino != os.stat(f"/proc/self/ns/{kind}").st_ino:
        setns(fd, nstype)
    os.close(fd)


def _read_call(conn: socket.socket) -> tuple[dict[str, str], list[int]]:
    data, fds = b"", []
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "little"):
        fd_room = array.array("i", [0] * 5)
        chunk, ancdata, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(fd_room.itemsize * len(fd_room)))
        if not chunk:
            raise EOFError("the shim hung up before sending its call")
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += array.array("i", payload[: len(payload) - len(payload) % fd_room.itemsize])
        data += chunk
        if len(data) > MAX_ENV:
            raise ValueError("the call is larger than any environment")
    env = dict(item.split("=", 1) for item in data[4:].decode(errors="surrogateescape").split("\0") if "=" in item)
    return env, fds


def _child(conn: socket.socket) -> None:
    """In the forked child: become the caller, run the plugin, exit with its code."""
    code = 1
    signal.set_wakeup_fd(-1)  # the daemon's signal plumbing is not the call's
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.setpgid(0, 0)  # a group of its own: killed with its shim, it takes the iptables it runs along
        env, fds = _read_call(conn)
        net, mnt, stdin, stdout, stderr = fds
        _enter(mnt, "mnt", CLONE_NEWNS)
        _enter(net, "net", CLONE_NEWNET)
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
            os.close(fd)
        _die_with_the_shim(conn)
        plugin.CALLER_GONE = lambda: _hung_up(conn)
        os.environ.clear()
        os.environ.update(env)
        plugin.SERVED_BY = "daemon"
        code = plugin.main()
        sys.stdout.flush()
    finally:
        os._exit(code)


def _die_with_the_shim(conn: socket.socket) -> None:
    """The runtime gave up on this call when it killed the shim: then stop at once, as a plugin process
    it killed would, and so do the commands it runs (iptables). (Started after setns: a process with
    threads cannot enter a mount namespace.) Its attachment's lock dies with it, so the runtime's DEL,
    which waits for that lock, clears what the call had made; a call killed before it took the lock
    sees the shim gone once it has it (``plugin.CALLER_GONE``) and begins nothing."""
    def watch() -> None:
        try:
            conn.recv(1)  # the shim sends nothing more: this returns only when it is gone
        except OSError:
            pass
        if os.getpgid(0) == os.getpid():  # its own group (never the daemon's)
            os.killpg(0, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


def _hung_up(conn: socket.socket) -> bool:
    """Has the shim that brought this call gone (its end of the connection closed)?"""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


PR_SET_PDEATHSIG = 1


def serve(sock_path: str, die_with_parent: bool = False) -> None:
    if die_with_parent:
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # no daemon outlives its starter
    try:
        os.unlink(sock_path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)  # root's plugin, root's socket
    listener.bind(sock_path)
    os.umask(old)
    listener.listen(128)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # the wakeup fd tells the loop; the handler does nothing
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    pending: dict[int, socket.socket] = {}
    sys.stdout.flush()
    try:
        while not stop:
            for key, _ in sel.select():
                if key.fileobj is listener:
                    conn, _ = listener.accept()
                    pid = os.fork()
                    if pid == 0:
                        listener.close()
                        _child(conn)
                    pending[pid] = conn
                else:
                    os.read(wake_r, 4096)
                    _reap(pending)
    finally:
        listener.close()
        try:
            os.unlink(sock_path)
        except FileNotFoundError:
            pass


def _reap(pending: dict[int, socket.socket]) -> None:
    """Tell each finished call's shim how its child ended (a signal N as 128+N, like a shell)."""
    while pending:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        conn = pending.pop(pid, None)
        if conn is not None:
            try:
                conn.sendall((code if code >= 0 else 128 - code).to_bytes(4, "little", signed=True))
            except OSError:
                pass  # the shim is gone (its runtime timed out): nobody to tell
            conn.close()
