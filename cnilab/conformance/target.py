"""The plugin under test: where it is, what configuration it takes, which spec versions it claims.

A configuration is the plugin's own network configuration (a single plugin or a conflist), with
placeholders the checker fills for each check:

    {{subnet}}   the pod subnet (10.22.0.0/16)     {{gateway}}  its first address (10.22.0.1)
    {{dataDir}}  a fresh IPAM data directory       {{bridge}}   the bridge name on the node (cni0)
    {{master}}   the node's uplink link, which the checker creates (a veth to an "outside" namespace)
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..core.errors import LabError
from .spec import SPEC_VERSIONS, version_key

REFERENCE_DIR = "/usr/lib/cni"
SUBNET, GATEWAY = "10.22.0.0/16", "10.22.0.1"
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
KNOWN_PLACEHOLDERS = {"subnet", "gateway", "dataDir", "bridge", "master"}


def shipped_config(name: str) -> Path | None:
    """A configuration shipped with cnilab for plugin type ``name`` (bridge, ptp, macvlan, ipvlan, cnilab...)."""
    path = resources.files("cnilab.conformance") / "configs" / f"{name}.json"
    return Path(str(path)) if path.is_file() else None


def shipped_configs() -> list[str]:
    return sorted(p.name[:-5] for p in (resources.files("cnilab.conformance") / "configs").iterdir()
                  if p.name.endswith(".json"))


@dataclass
class Target:
    """A plugin executable and its configuration template."""

    path: Path                       # the executable
    template: str                    # configuration text with placeholders
    config_name: str                 # where the template came from (for the report)
    bin_dirs: list[str] = field(default_factory=list)
    supported: list[str] = field(default_factory=list)  # VERSION's supportedVersions (in a chain: of them all)
    limits: dict[str, str] = field(default_factory=dict)  # chained plugins that claim less: type -> their newest

    @classmethod
    def load(cls, plugin: str | Path, config: str | Path | None = None, bin_dirs: list[str] | None = None) -> "Target":
        path = Path(plugin).resolve()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise LabError(f"{plugin} is not an executable CNI plugin: give the path of the plugin binary, "
                           f"e.g. {REFERENCE_DIR}/bridge.")
        if config is None:
            found = shipped_config(path.name)
            if found is None:
                raise LabError(f"cnilab ships no configuration for a plugin called {path.name!r}: pass its network "
                               f"configuration with --config FILE (examples: {', '.join(shipped_configs())}).")
            config = found
        cfg = Path(config)
        if not cfg.is_file() and shipped_config(str(config)):
            cfg = shipped_config(str(config))
        try:
            text = cfg.read_text()
        except OSError as exc:
            raise LabError(f"--config {config}: cannot read it ({exc.strerror}): give a readable JSON file.") from None
        target = cls(path, text, cfg.name, bin_dirs or [str(path.parent), REFERENCE_DIR])
        target.validate()
        return target

    def validate(self) -> None:
        unknown = set(PLACEHOLDER.findall(self.template)) - KNOWN_PLACEHOLDERS
        if unknown:
            raise LabError(f"{self.config_name}: unknown placeholder(s) {', '.join('{{%s}}' % u for u in sorted(unknown))}: "
                           f"the checker fills {', '.join('{{%s}}' % k for k in sorted(KNOWN_PLACEHOLDERS))}.")
        try:
            conf = json.loads(PLACEHOLDER.sub("x", self.template))
        except ValueError as exc:
            raise LabError(f"{self.config_name} is not valid JSON ({exc}): fix the file.") from None
        plugins = conf.get("plugins") if isinstance(conf, dict) and "plugins" in conf else [conf]
        if not isinstance(plugins, list) or not plugins or not all(isinstance(p, dict) and p.get("type") for p in plugins):
            raise LabError(f"{self.config_name}: a network configuration needs a \"type\" (or a conflist a \"plugins\" list).")
        if self.path.name not in {p["type"] for p in plugins}:
            raise LabError(f"{self.config_name} does not use the plugin under test: no plugin of type {self.path.name!r} in it.")

    @property
    def type(self) -> str:
        return self.path.name

    @property
    def family(self) -> str:
        """Who made the plugin, as far as the checker can tell: the known deviations are listed by family."""
        if str(self.path).startswith(REFERENCE_DIR + "/"):
            return "containernetworking-plugins"
        return "cnilab" if self.path.name == "cnilab" else "other"

    def uses(self, placeholder: str) -> bool:
        return "{{%s}}" % placeholder in self.template

    # -- versions --------------------------------------------------------------------
    @property
    def highest(self) -> str:
        """The newest spec version the plugin claims that the checker knows."""
        known = [v for v in self.supported if v in SPEC_VERSIONS]
        return max(known, key=version_key) if known else ""

    def claims(self, version: str) -> bool:
        return version in self.supported

    def result_versions(self) -> list[str]:
        """The claimed versions whose results the checker can check (0.3.0 on: the interfaces/ips layout)."""
        return sorted((v for v in self.supported if v in SPEC_VERSIONS and version_key(v) >= (0, 3, 0)), key=version_key)

    # -- the configuration -----------------------------------------------------------
    def conflist(self, values: dict[str, str], version: str, name: str = "labnet") -> dict[str, Any]:
        """The configuration as a conflist for ``version``, placeholders filled."""
        text = PLACEHOLDER.sub(lambda m: values[m.group(1)], self.template)
        conf = json.loads(text)
        plugins = conf["plugins"] if "plugins" in conf else [{k: v for k, v in conf.items() if k not in ("cniVersion", "name")}]
        out = {k: v for k, v in conf.items() if k != "plugins"} if "plugins" in conf else {}
        out.update({"cniVersion": version, "name": name, "plugins": plugins})
        return out

    def own(self, conflist: dict[str, Any]) -> dict[str, Any]:
        """The plugin under test's entry in ``conflist``."""
        return next(p for p in conflist["plugins"] if p["type"] == self.type)
