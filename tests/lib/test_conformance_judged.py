"""The checker judged: for its requirements, a plugin that does the wrong thing must be rejected by exactly
the case that names it, and the honest plugin it was made from must be accepted by that same case.

Each mutant wraps the reference bridge (so all else stays right) and breaks one thing, the way real
plugins get it wrong. The honest wrapper passes everything through unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnilab.core.processes import run_nested
from cnilab.conformance.run import discover_versions, run_case
from cnilab.conformance.spec import REQUIREMENTS, Verdict
from cnilab.conformance.target import Target, shipped_config

REFERENCE = "/usr/lib/cni/bridge"

WRAPPER = '''#!{python} -I
import json, os, subprocess, sys
MUTANT = {mutant!r}
stdin = sys.stdin.buffer.read()
command = os.environ.get("CNI_COMMAND", "")

def real(data=stdin, command=command):
    return subprocess.run([{reference!r}], input=data, capture_output=True, env={{**os.environ, "CNI_COMMAND": command}})

if (MUTANT, command) in (("del-does-nothing", "DEL"), ("check-says-yes", "CHECK")):
    sys.exit(0)  # claims success without doing the work
done = real()
out, code = done.stdout, done.returncode
if MUTANT == "plain-text-errors" and code != 0:
    out = b"something went wrong\\n"
elif MUTANT == "replaces-on-second-add" and command == "ADD" and code != 0:
    real(command="DEL")  # "self-healing": tear the pod down and build it again
    again = real()
    out, code = again.stdout, again.returncode
elif MUTANT == "stale-result-version" and command == "ADD" and code == 0:
    result = json.loads(out)
    result["cniVersion"] = "0.4.0"
    out = json.dumps(result).encode()
elif MUTANT == "gateway-not-on-node" and command == "ADD" and code == 0:
    # isGateway is configured, yet the bridge ends up without the gateway: the pods' next hop is nobody
    subprocess.run(["ip", "addr", "flush", "dev", json.loads(stdin).get("bridge", "cni0")], capture_output=True)
elif MUTANT == "wrong-error-code" and code != 0:
    err = json.loads(out)
    err["code"] = 999
    out = json.dumps(err).encode()
sys.stdout.buffer.write(out)
sys.exit(code)
'''

#: mutant -> the case that must reject it
MUTANTS = {
    "plain-text-errors": "error.format[undecodable]",
    "replaces-on-second-add": "add.twice",
    "stale-result-version": "add.result[1.0.0]",
    "del-does-nothing": "del.releases",
    "check-says-yes": "check.detects[address-removed]",
    "wrong-error-code": "error.code[missing-env]",
    "gateway-not-on-node": "add.gateway",
}


def wrapped(tmp_path: Path, mutant: str) -> Target:
    """The reference bridge behind a wrapper called ``bridge`` (so the shipped bridge configuration fits)."""
    if not os.access(REFERENCE, os.X_OK):
        pytest.skip("the reference plugins are missing: apt-get install -y containernetworking-plugins")
    bin_dir = tmp_path / mutant
    bin_dir.mkdir()
    plugin = bin_dir / "bridge"
    plugin.write_text(WRAPPER.format(python=sys.executable if not os.access("/usr/bin/python3", os.X_OK) else "/usr/bin/python3",
                                     mutant=mutant, reference=REFERENCE))
    plugin.chmod(0o755)
    target = Target.load(plugin, shipped_config("bridge"))
    target.supported = discover_versions(target)
    return target


def verdict(target: Target, case: str) -> tuple[Verdict, str]:
    req_id, _, rest = case.partition("[")
    outcome = run_case(target, case, REQUIREMENTS[req_id], rest[:-1] or None)
    return outcome.verdict, outcome.detail


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_the_case_rejects_the_mutant(tmp_path, mutant):
    case = MUTANTS[mutant]
    got, detail = verdict(wrapped(tmp_path, mutant), case)
    assert got is Verdict.FAIL, f"{case} let the mutant {mutant!r} through: {got.value} {detail}"


@pytest.mark.parametrize("case", sorted(set(MUTANTS.values())))
def test_the_case_accepts_the_honest_plugin(tmp_path, case):
    got, detail = verdict(wrapped(tmp_path, "honest"), case)
    assert got is Verdict.PASS, f"{case} rejected the honest wrapper of the reference bridge: {got.value} {detail}"


def test_a_checker_bug_is_an_error_not_the_plugins_failure(tmp_path, monkeypatch):
    """An exception inside a check is reported as the checker's error, never as a failure of the plugin."""
    req = REQUIREMENTS["version.reports"]
    monkeypatch.setattr(req, "check", lambda session: {}["no such key"])
    outcome = run_case(wrapped(tmp_path, "honest"), "version.reports", req, None)
    assert outcome.verdict is Verdict.ERROR and "KeyError" in outcome.detail, outcome


def test_a_requirement_of_an_unclaimed_version_is_not_applicable(tmp_path):
    target = wrapped(tmp_path, "honest")
    assert "1.1.0" not in target.supported
    outcome = run_case(target, "gc.no-valid-list", REQUIREMENTS["gc.no-valid-list"], None)
    assert outcome.verdict is Verdict.NOT_APPLICABLE and "claims up to 1.0.0" in outcome.detail, outcome


@pytest.mark.parametrize("plugin,config", [("bridge", None), ("ptp", None), ("macvlan", None), ("ipvlan", None),
                                           ("bridge", "bridge-chained"), ("cnilab", None), ("cnilab", "cnilab-chained")])
def test_plugins_get_only_pass_not_applicable_or_listed_deviations(tmp_path, plugin, config):
    """The checker checks itself on the yardstick -- the four reference plugins, alone and chained -- and on
    cnilab's own plugin (the command without PLUGIN): no checker error, no MUST or SHOULD failure that is
    not a listed deviation (exit 0 with --strict); a kernel without the plugin's link kind says so (exit 4)."""
    path = None if plugin == "cnilab" else f"/usr/lib/cni/{plugin}"
    if path and not os.access(path, os.X_OK):
        pytest.skip("the reference plugins are missing: apt-get install -y containernetworking-plugins")
    junit, md = tmp_path / "r.xml", tmp_path / "r.md"
    argv = [str(Path(sys.executable).parent / "cnilab"), "conformance", *([path] if path else []), "--junit", str(junit),
            "--markdown", str(md), "--strict", *(["--config", config] if config else [])]
    done = run_nested(argv, capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"})
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert "0 checker error" in done.stdout, done.stdout[-3000:]
    if done.returncode == 4:
        assert "cannot make" in done.stdout, done.stdout[-2000:]
        return
    bad = [line for line in done.stdout.splitlines() if line.strip().startswith(("fail", "checker error"))]
    assert done.returncode == 0, f"exit {done.returncode}: " + "\n".join(bad or [done.stdout[-3000:]])
    assert "0 MUST fail, 0 SHOULD fail" in done.stdout, last
    assert junit.read_text().count("<testcase") > 50 and "## CNI conformance" in md.read_text()


def test_ctrl_c_in_the_middle_of_a_check_leaves_nothing(tmp_path):
    """SIGINT to the checker's process group at its third case: the case's lab and the plugin's leftovers go."""
    import signal

    from cnilab.runtime import cleanup

    if not os.access(REFERENCE, os.X_OK):
        pytest.skip("the reference plugins are missing: apt-get install -y containernetworking-plugins")
    log = tmp_path / "prefixes"
    env = {**os.environ, "CNILAB_PREFIX_LOG": str(log), "COLUMNS": "200"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "cnilab"), "conformance", REFERENCE, "--only", "add.*"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    for _ in range(3):
        assert proc.stdout.readline(), "the check ended before its third case"
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, f"exit {proc.returncode}: {out[-1000:]}"
    prefixes = set(log.read_text().split())
    assert len(prefixes) >= 3, prefixes
    assert not cleanup.find(prefixes), f"Ctrl-C left {cleanup.find(prefixes).describe()}"
