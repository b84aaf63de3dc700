"""Run the requirements against a target: one fresh lab per case, each verdict kept apart.

A plugin's failure (``Violation``, or a CNI error where success was due) is a FAIL; an exception of
any other kind is the checker's own bug, reported as an ERROR with where it happened -- never as
the plugin's fault.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ..runtime.cni import CNIError, PluginDaemon, install_plugin, is_thick
from ..core.errors import LabError
from . import checks_input, checks_lifecycle, checks_verbs  # noqa: F401 -- they register the requirements
from .deviations import deviation
from .session import open_session
from .spec import REQUIREMENTS, Level, NotApplicable, Requirement, Skipped, Verdict, Violation, version_key
from .target import PLACEHOLDER, Target, shipped_config


@dataclass
class Outcome:
    case: str
    requirement: Requirement
    verdict: Verdict
    detail: str = ""
    seconds: float = 0.0

    def fails_run(self, strict: bool) -> bool:
        return self.verdict is Verdict.FAIL and (self.requirement.level is Level.MUST or strict)


@dataclass
class Report:
    target: Target
    strict: bool
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, verdict: Verdict, level: Level | None = None) -> int:
        return sum(o.verdict is verdict and (level is None or o.requirement.level is level) for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        """0 conformant; 1 the plugin failed a MUST (or a SHOULD with --strict); 3 the checker itself failed;
        4 nothing could be checked here (every case skipped, e.g. a kernel without the plugin's link kind)."""
        if self.count(Verdict.ERROR):
            return 3
        if not any(self.count(v) for v in (Verdict.PASS, Verdict.FAIL, Verdict.DEVIATION)):
            return 4  # every case skipped or not applicable: nothing was judged
        return 1 if any(o.fails_run(self.strict) for o in self.outcomes) else 0


def _claims(target: Target, executable: str, asked: str) -> list[str] | None:
    """What VERSION of ``executable`` says it supports (None: no usable answer)."""
    env = {"CNI_COMMAND": "VERSION", "CNI_PATH": ":".join(target.bin_dirs), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    try:
        done = subprocess.run([executable], input=json.dumps({"cniVersion": asked}).encode(), env=env,
                              capture_output=True, timeout=30)
        versions = json.loads(done.stdout)["supportedVersions"]
    except (OSError, ValueError, KeyError, TypeError, subprocess.TimeoutExpired):
        return None
    return versions if isinstance(versions, list) and all(isinstance(v, str) for v in versions) else None


def discover_versions(target: Target) -> list[str]:
    """VERSION first: the spec versions the plugin claims decide which requirements apply. In a chain,
    only the versions every plugin of the chain claims can be used (a runtime sends one cniVersion)."""
    conf = json.loads(PLACEHOLDER.sub("x", target.template))
    asked = conf.get("cniVersion", "0.4.0")
    own = _claims(target, str(target.path), asked)
    if own is None:
        return [asked]  # VERSION is broken (its own check says so): trust the configuration
    target.limits = {}
    for plugin in conf.get("plugins") or []:
        other = next((os.path.join(d, plugin["type"]) for d in target.bin_dirs
                      if os.access(os.path.join(d, plugin["type"]), os.X_OK)), None)
        if plugin["type"] == target.type or other is None:
            continue
        theirs = _claims(target, other, asked) or [asked]
        if set(own) - set(theirs):
            target.limits[plugin["type"]] = max(theirs, key=version_key)
        own = [v for v in own if v in theirs]
    return own


def cases(select: Callable[[str], bool] | None = None) -> list[tuple[str, Requirement, str | None]]:
    return [(case, req, variant) for req in REQUIREMENTS.values() for case, variant in req.cases()
            if select is None or select(case)]


def applicable_version(target: Target, req: Requirement, variant: str | None) -> str:
    """The cniVersion a case runs with, or NotApplicable when the plugin claims no version that has it."""
    if "per-version" in req.tags:
        if not target.claims(variant):
            raise NotApplicable(f"spec {variant} is not claimed: {_claimed(target)}")
        return variant
    if not target.highest or version_key(target.highest) < version_key(req.since):
        raise NotApplicable(f"a spec {req.since} requirement; {_claimed(target)}")
    return target.highest


def _claimed(target: Target) -> str:
    if target.limits:
        limits = ", ".join(f"{t} supports up to {v}" for t, v in target.limits.items())
        return f"with this chain a runtime can use up to {target.highest or 'nothing'} ({limits})"
    return f"the plugin claims up to {target.highest or 'nothing'}"


def run_case(target: Target, case: str, req: Requirement, variant: str | None) -> Outcome:
    start = time.monotonic()

    def done(verdict: Verdict, detail: str = "") -> Outcome:
        return Outcome(case, req, verdict, detail, time.monotonic() - start)

    try:
        version = applicable_version(target, req, variant)
    except NotApplicable as na:
        return done(Verdict.NOT_APPLICABLE, str(na))
    lab = None
    try:
        lab, session = open_session(target, version)
        detail = req.check(session, variant) if variant is not None else req.check(session)
        outcome = done(Verdict.PASS, detail or "")
    except (Violation, CNIError) as exc:
        outcome = done(Verdict.FAIL, str(exc))
    except NotApplicable as exc:
        outcome = done(Verdict.NOT_APPLICABLE, str(exc))
    except Skipped as exc:
        outcome = done(Verdict.SKIPPED, str(exc))
    except Exception as exc:  # noqa: BLE001 -- the checker's own bug: kept apart from the plugin's failures
        where = traceback.extract_tb(exc.__traceback__)[-1]
        outcome = done(Verdict.ERROR, f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})")
    finally:
        if lab is not None:
            lab.teardown()
    if outcome.verdict is Verdict.FAIL:
        known = (deviation(target.family, target.type, case, outcome.detail)
                 or deviation(target.family, target.type, req.id, outcome.detail))
        if known:
            outcome.verdict, outcome.detail = Verdict.DEVIATION, f"{known} ({outcome.detail})"
    return outcome


def check(target: Target, *, strict: bool = False, select: Callable[[str], bool] | None = None,
          progress: Callable[[Outcome], None] | None = None) -> Report:
    target.supported = discover_versions(target)
    report = Report(target, strict)
    start = time.monotonic()
    for case, req, variant in cases(select):
        outcome = run_case(target, case, req, variant)
        report.outcomes.append(outcome)
        if progress:
            progress(outcome)
    report.seconds = time.monotonic() - start
    return report


@contextlib.contextmanager
def cnilab_target(config: str | Path | None = None, source: str | Path | None = None) -> Iterator[Target]:
    """cnilab's own plugin installed as a runtime finds it (thick, with its node daemon, where gcc exists)."""
    with tempfile.TemporaryDirectory(prefix="cnilab-conformance-") as tmp:
        bin_dir = Path(tmp) / "bin"
        plugin = install_plugin(bin_dir, source=source)
        with (PluginDaemon(bin_dir, source=source) if is_thick(plugin) else contextlib.nullcontext()):
            yield Target.load(plugin, config or shipped_config("cnilab"))


@contextlib.contextmanager
def target_for(plugin: str | None, config: str | None = None) -> Iterator[Target]:
    """The target the command line names: cnilab's plugin when ``plugin`` is None, else that executable."""
    if plugin is None:
        with cnilab_target(config) as target:
            yield target
    else:
        if not Path(plugin).exists():
            raise LabError(f"No CNI plugin at {plugin}: give the path of the plugin executable, e.g. /usr/lib/cni/bridge.")
        yield Target.load(plugin, config)
