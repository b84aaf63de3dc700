"""A CNI runtime in Python, in the manner of libcni: what a kubelet's container runtime does.

It runs a network configuration list (SPEC section 1) against a pod: each plugin
executable is found by its ``type`` in the plugin directories and run with the
CNI_* environment and its configuration on stdin (SPEC section 2); ADD chains
``prevResult`` from plugin to plugin; results are cached per attachment so that
CHECK and DEL get the ADD result as ``prevResult`` (SPEC section 3); DEL runs the
list in reverse; GC passes ``cni.dev/valid-attachments``.

Plugins run inside ``node`` (a lab namespace standing for the machine), so the
bridges and rules they make never touch the machine's own namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import nsexec, processes
from ..core.errors import LabError, Todo
from ..core.suite import plugin_dir

TODO_CODE = 103  # the plugin's code for a workbook stub (plugin/cnilab_cni/errors.py)


class CNIError(Exception):
    """A plugin answered with a CNI error (SPEC "Error"): ``code``, ``msg``, ``details``."""

    def __init__(self, plugin: str, code: int, msg: str, details: str = "", raw: dict | None = None):
        super().__init__(f"{plugin}: CNI error {code}: {msg}" + (f" ({details})" if details else ""))
        self.plugin, self.code, self.msg, self.details, self.raw = plugin, code, msg, details, raw or {}


@dataclass(frozen=True)
class Attachment:
    container_id: str
    netns: str
    ifname: str = "eth0"


class Runtime:
    """Runs conflists against attachments. ``node``: namespace name the plugins run in (None: here)."""

    def __init__(self, plugin_dirs: list[str | Path], cache_dir: str | Path, node: str | None = None):
        self.plugin_dirs = [str(d) for d in plugin_dirs]
        self.cache_dir = Path(cache_dir)
        self.node = node

    # -- executing one plugin -----------------------------------------------------
    def find(self, plugin_type: str) -> str:
        for d in self.plugin_dirs:
            path = os.path.join(d, plugin_type)
            if os.access(path, os.X_OK):
                return path
        raise LabError(f"No CNI plugin {plugin_type!r} in {':'.join(self.plugin_dirs)}: install it or fix the `type`.")

    def exec_plugin(self, plugin_type: str, command: str, conf: dict | bytes, env: dict[str, str]) -> dict | None:
        """Run one plugin once; return its JSON result (None when it printed nothing) or raise CNIError."""
        path = self.find(plugin_type)
        full_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
                    "CNI_PATH": ":".join(self.plugin_dirs), **env}
        stdin = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
        def run() -> subprocess.CompletedProcess:
            try:
                return subprocess.run([path], input=stdin, capture_output=True, env=full_env, timeout=60)
            except subprocess.TimeoutExpired:  # the plugin's fault, as any runtime would see it
                raise CNIError(plugin_type, -1, f"{command} did not answer within 60 s (the runtime gave up)") from None

        # spawned from a thread inside the node's namespace, as a runtime living there spawns: the child
        # inherits it, and without a preexec_fn Python can vfork (a fork of this big process costs ms)
        done = nsexec.call_in(self.node, run) if self.node else run()
        out = done.stdout.strip()
        if done.returncode != 0:
            try:
                err = json.loads(out)
            except ValueError:
                raise CNIError(plugin_type, -1, f"exit {done.returncode} without a JSON error",
                               (out or done.stderr).decode(errors="replace")[-500:]) from None
            if err.get("code") == TODO_CODE:
                raise Todo(err.get("msg", "TODO in the plugin"))  # a workbook stub: one line, no traceback
            raise CNIError(plugin_type, err.get("code", -1), err.get("msg", ""), err.get("details", ""), err)
        try:
            return json.loads(out) if out else None
        except ValueError:
            raise CNIError(plugin_type, -1, f"{command} succeeded but printed no JSON result",
                           out.decode(errors="replace")[:300]) from None

    # -- conflists ----------------------------------------------------------------
    @staticmethod
    def plugin_confs(conflist: dict, runtime_config: dict | None = None) -> list[dict]:
        """Each plugin's config with the list's name and cniVersion (SPEC: the runtime MUST replace them),
        and the ``runtimeConfig`` keys of the capabilities it declares (CONVENTIONS: capabilities)."""
        confs = []
        for p in conflist["plugins"]:
            conf = {**p, "name": conflist["name"], "cniVersion": conflist["cniVersion"]}
            caps = {k for k, on in (p.get("capabilities") or {}).items() if on}
            wanted = {k: v for k, v in (runtime_config or {}).items() if k in caps}
            if wanted:
                conf["runtimeConfig"] = wanted
            confs.append(conf)
        return confs

    def _env(self, att: Attachment) -> dict[str, str]:
        return {"CNI_CONTAINERID": att.container_id, "CNI_NETNS": att.netns, "CNI_IFNAME": att.ifname}

    def _cache_path(self, conflist: dict, att: Attachment) -> Path:
        return self.cache_dir / "results" / f"{conflist['name']}-{att.container_id}-{att.ifname}"

    def _cache(self, conflist: dict, att: Attachment) -> dict:
        try:
            return json.loads(self._cache_path(conflist, att).read_text())
        except FileNotFoundError:
            return {}

    def cached(self, conflist: dict, att: Attachment) -> dict | None:
        return self._cache(conflist, att).get("result")

    def add(self, conflist: dict, att: Attachment, runtime_config: dict | None = None) -> dict:
        prev = None
        for conf in self.plugin_confs(conflist, runtime_config):
            if prev is not None:
                conf["prevResult"] = prev
            prev = self.exec_plugin(conf["type"], "ADD", conf, self._env(att)) or prev
        path = self._cache_path(conflist, att)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"kind": "cniCacheV1", "containerId": att.container_id, "ifName": att.ifname,
                                    "networkName": conflist["name"], "result": prev, "runtimeConfig": runtime_config}))
        return prev

    def check(self, conflist: dict, att: Attachment) -> None:
        if str(conflist.get("disableCheck", "")).lower() == "true":
            return  # SPEC 1: runtimes must not call CHECK for such a list
        cache = self._cache(conflist, att)
        prev = cache.get("result")
        for conf in self.plugin_confs(conflist, cache.get("runtimeConfig")):
            self.exec_plugin(conf["type"], "CHECK", {**conf, "prevResult": prev}, self._env(att))

    def delete(self, conflist: dict, att: Attachment) -> None:
        cache = self._cache(conflist, att)
        prev = cache.get("result")
        for conf in reversed(self.plugin_confs(conflist, cache.get("runtimeConfig"))):
            self.exec_plugin(conf["type"], "DEL", {**conf, **({"prevResult": prev} if prev else {})}, self._env(att))
        self._cache_path(conflist, att).unlink(missing_ok=True)

    def gc(self, conflist: dict, valid: list[Attachment]) -> None:
        attachments = [{"containerID": a.container_id, "ifname": a.ifname} for a in valid]
        for conf in self.plugin_confs(conflist):
            self.exec_plugin(conf["type"], "GC", {**conf, "cni.dev/valid-attachments": attachments}, {})

    def status(self, conflist: dict) -> None:
        for conf in self.plugin_confs(conflist):
            self.exec_plugin(conf["type"], "STATUS", conf, {})

    def version(self, plugin_type: str, cni_version: str = "1.1.0") -> dict:
        return self.exec_plugin(plugin_type, "VERSION", {"cniVersion": cni_version}, {})


def _installer(source: str | Path | None) -> tuple[Any, Path]:
    """The plugin's own installer module (``plugin/cnilab_cni/install.py``) and the plugin package dir."""
    import importlib.util

    source = Path(source or plugin_dir())
    installer = source / "cnilab_cni" / "install.py"
    if not installer.is_file():
        raise LabError(f"The plugin sources are not at {source}: run from a checkout of cnilab (or a workbook).")
    spec = importlib.util.spec_from_file_location(f"cnilab_install_{abs(hash(str(installer)))}", installer)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, source / "cnilab_cni"


def plugin_python() -> str:
    """The interpreter plugins run with: the system's (no venv, no site), else this one."""
    import sys

    return "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else os.path.realpath(sys.executable)


def install_plugin(bin_dir: str | Path, name: str = "cnilab", python: str | None = None,
                   source: str | Path | None = None, thick: bool = True) -> Path:
    """Install a cnilab plugin (``source``: a ``plugin/`` folder; default this checkout's) into a runtime's
    plugin directory, with the plugin's own installer. ``thick``: the native shim that hands calls to
    the node daemon when it runs (``PluginDaemon``), else runs the Python plugin itself."""
    module, package = _installer(source)
    return module.install(bin_dir, name, python or plugin_python(), source=package, thick=thick)


def is_thick(plugin: str | Path) -> bool:
    """Is the installed plugin executable the native shim that uses the node daemon (not a script)?"""
    with open(plugin, "rb") as f:
        return f.read(4) == b"\x7fELF"


class PluginDaemon:
    """The node daemon of a thick install, run as a child of this process: ``with PluginDaemon(bin_dir):``.

    It dies with its parent (PR_SET_PDEATHSIG), so not even a killed test run leaves it behind.
    """

    def __init__(self, bin_dir: str | Path, source: str | Path | None = None, python: str | None = None):
        module, _ = _installer(source)
        self.bin_dir = Path(bin_dir)
        self.sock = self.bin_dir / ".cnilab" / "daemon.sock"
        self.argv = module.daemon_argv(self.bin_dir, python or plugin_python(), die_with_parent=True)
        self.proc: subprocess.Popen | None = None

    def _answers(self) -> bool:
        import socket

        if self.proc.poll() is not None:
            raise LabError(f"The plugin daemon exited ({self.proc.returncode}): {self.proc.stderr.read().decode().strip()}")
        with socket.socket(socket.AF_UNIX) as s:
            return s.connect_ex(str(self.sock)) == 0

    def start(self) -> "PluginDaemon":
        from ..core.wait import wait_for

        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(self._answers, timeout=10, what=f"the plugin daemon on {self.sock}")
        return self

    def stop(self) -> None:
        if self.proc:
            processes.stop(self.proc, grace=5)

    def __enter__(self) -> "PluginDaemon":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
