"""`cnilab demo N`, `show` and `trace` as a presenter meets them (needs root).

Each stage's demo runs `--auto` to its verdict; one runs on a pseudo-terminal, paced by Enter, and
is interrupted with Ctrl-C half way.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cnilab.core.processes import run_nested

ROOT = Path(__file__).resolve().parents[2]
CNILAB = str(Path(sys.executable).parent / "cnilab")
PREFIX = re.compile(r"ip netns add (cl[0-9a-z]{4}-)")

# what each stage's demo must show: the shell forms of its steps, the packets of its traces
SHOWS = {
    1: ["ip netns add", "lo loopback down"],
    2: ["type veth peer name", "addr add 10.0.2.1/24", "3 packets transmitted, 3 received"],
    3: ["type bridge", "master", "ARP who-has 10.0.3.12 tell 10.0.3.11", "captured on pod3 eth0"],
    4: ["socat - TCP:10.0.3.11:7000", "[S]", "[SA]", "captured on host br0"],
    5: ["sysctl -w net.ipv4.ip_forward=1", "-t nat -A POSTROUTING -s 10.0.3.0/24", "-j MASQUERADE",
        "IPv4  10.0.3.11 -> 203.0.113.10", "IPv4  192.0.2.1 -> 203.0.113.10", "NAT: MASQUERADE"],
    6: ["type vxlan id 42 dstport 4789", "fdb append 00:00:00:00:00:00", "UDP", "-> 4789", "VXLAN  vni 42",
        "ICMP echo-request"],
    7: ["ADD container=", "-> ok 10.", "veth peer node/vc"],
}


def demo(*args, cwd, timeout=600):
    return run_nested([CNILAB, "demo", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                      env={**os.environ, "COLUMNS": "200", "TERM": "dumb"})


def lab_namespaces(prefix):
    return [n for n in os.listdir("/run/netns") if n.startswith(prefix)] if os.path.isdir("/run/netns") else []


@pytest.mark.parametrize("stage", sorted(SHOWS))
def test_each_demo_runs_unpaced_to_its_verdict(stage, tmp_path):
    done = demo(stage, "--auto", cwd=tmp_path)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-2000:]
    for text in SHOWS[stage]:
        assert text in out, f"stage {stage:02d}'s demo did not show {text!r}:\n{out[-3000:]}"
    assert "PROVEN" in out and "FAIL" not in out, "the demo ends with the stage's verdict"
    assert (tmp_path / "cnilab-pictures" / f"stage{stage:02d}.svg").is_file()
    prefix = PREFIX.search(out).group(1)
    assert f"lab {prefix} torn down" in out and not lab_namespaces(prefix)
    raw = re.findall(r"``\w+``|\b(?:NODES|PODS_PER_NODE|GATEWAY|POD_IPS|SERVER_IP)\b|`(?:node_kind|mode)`", out)
    assert not raw, f"docstring placeholders shown raw: {sorted(set(raw))}"
    assert "Task was destroyed" not in out + done.stderr, "asyncio complained about tasks left pending at exit"


def test_the_narration_gives_a_why_before_the_steps(tmp_path):
    out = demo(2, "--auto", "--no-verify", "--no-picture", cwd=tmp_path).stdout
    why = out.index("A veth pair is a virtual cable")  # the stage's own docstring
    assert why < out.index("type veth peer name")
    assert "Returns (host_end, pod_end)" in out  # the fixture's docstring, before its commands


def test_show_and_trace_on_a_kept_lab(tmp_path):
    out = demo(3, "--auto", "--no-verify", "--no-picture", "--keep", cwd=tmp_path).stdout
    prefix = PREFIX.search(out).group(1)
    try:
        assert lab_namespaces(prefix), "--keep leaves the lab up"
        shown = subprocess.run([CNILAB, "show", "--prefix", prefix, "--out", str(tmp_path)], capture_output=True,
                               text=True, env={**os.environ, "COLUMNS": "200"})
        assert shown.returncode == 0, shown.stderr
        assert "h-pod1 veth" in shown.stdout and "port of br0" in shown.stdout
        stem = prefix.rstrip("-")
        assert (tmp_path / f"{stem}.svg").is_file() and (tmp_path / f"{stem}.png").is_file()
        traced = subprocess.run([CNILAB, "trace", "3", "--prefix", prefix], capture_output=True, text=True,
                                env={**os.environ, "COLUMNS": "200"})
        assert traced.returncode == 0, traced.stderr
        assert "ARP who-has 10.0.3.12 tell 10.0.3.11" in traced.stdout, "a kept lab had learned pod2's MAC: trace flushes it"
        wrong = subprocess.run([CNILAB, "trace", "5", "--prefix", prefix], capture_output=True, text=True)
        assert wrong.returncode != 0 and "no namespace 'inet'" in wrong.stderr and "Traceback" not in wrong.stderr
    finally:
        subprocess.run([CNILAB, "cleanup", "--prefix", prefix], capture_output=True)
    assert not lab_namespaces(prefix)


def test_a_demo_on_a_terminal_waits_for_enter_and_cleans_up_on_ctrl_c(tmp_path):
    """The presenter's view: each command is shown first and runs only after Enter."""
    pexpect = pytest.importorskip("pexpect", reason="pexpect drives the terminal: pip install pexpect")
    child = pexpect.spawn(CNILAB, ["demo", "2", "--no-picture"], cwd=str(tmp_path), encoding="utf-8", timeout=30,
                          dimensions=(50, 200), env={**os.environ, "TERM": "xterm"})
    try:
        child.expect(r"ip netns add (cl[0-9a-z]{4}-)host")
        prefix = child.match.group(1)
        child.expect(r"\(Enter\)")
        assert not lab_namespaces(prefix), "shown, not yet run: the demo waits for Enter"
        child.send("\r")
        child.expect(r"ip netns add \S+pod")
        assert lab_namespaces(prefix) == [f"{prefix}host"], "Enter ran exactly the command shown"
        child.expect(r"\(Enter\)")
        child.send("\r")
        child.expect(r"type veth peer name")
        child.expect(r"\(Enter\)")
        assert sorted(lab_namespaces(prefix)) == [f"{prefix}host", f"{prefix}pod"]
        child.sendintr()  # Ctrl-C half way through the stage
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 130, child.before
        assert "interrupted; the lab was torn down" in child.before
        assert not lab_namespaces(prefix), "Ctrl-C tore the lab down"
    finally:
        if child.isalive():
            child.terminate(force=True)
