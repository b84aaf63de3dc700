"""The lab against the real kernel: cleanup on every exit path, clear errors for bad input (needs root)."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from cnilab import Lab, LabError
from cnilab.runtime import cleanup


def lab_namespaces(prefix):
    return [n for n in os.listdir("/run/netns") if n.startswith(prefix)]


def test_context_manager_removes_everything():
    with Lab() as lab:
        a, b = lab.netns("a"), lab.netns("b")
        a.veth("v0", b, "v1")
        a.spawn(["sleep", "60"])
        assert len(lab_namespaces(lab.prefix)) == 2
    assert lab_namespaces(lab.prefix) == []
    assert not cleanup.find({lab.prefix})


def test_failure_inside_the_lab_still_cleans_up():
    with pytest.raises(LabError):
        with Lab() as lab:
            lab.netns("a").veth("this-name-is-too-long")
    assert lab_namespaces(lab.prefix) == []


def test_long_name_is_refused_before_the_kernel_sees_it(lab):
    ns = lab.netns("a")
    with pytest.raises(LabError, match="at most 15"):
        ns.veth("abcdefghij")  # 7-byte prefix + 10 = 17 bytes
    assert [l for l in ns.links() if l != "lo"] == [], "nothing half-made"


@pytest.mark.parametrize("bad, match", [("10.0.0.1", "no prefix length"), ("10.0.0.300/24", "not an IPv4"),
                                         ("fe80::1/64", "not an IPv4")])
def test_bad_address_is_one_clear_error(lab, bad, match):
    a, _ = lab.netns("a").veth("v0")
    with pytest.raises(LabError, match=match):
        a.add_address(bad)


def test_sysctl_outside_net_is_refused(lab):
    with pytest.raises(LabError, match="not per network namespace"):
        lab.netns("a").set_sysctl("kernel.hostname", "x")


def test_sysctl_changes_only_the_namespace(lab):
    ns = lab.netns("a")
    before = open("/proc/sys/net/ipv4/ip_forward").read().strip()
    ns.set_sysctl("net.ipv4.ip_forward", 1 - int(before))
    assert ns.sysctl("net.ipv4.ip_forward") == str(1 - int(before))
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == before


def test_flow_steering_is_set_on_the_namespaces_link_only(lab):
    a = lab.netns("a")
    v0, _ = a.veth("v0")
    mounts = open("/proc/self/mounts").read()
    assert a.flow_steering(v0) == set()
    a.steer_flows(v0, cpus={0})
    assert a.flow_steering(v0) == {0}
    a.steer_flows(v0)
    assert a.flow_steering(v0) == os.sched_getaffinity(0)
    assert open("/proc/self/mounts").read() == mounts, "the namespace's /sys leaked into the machine's mounts"


def test_flow_steering_on_a_read_only_sysfs_is_one_clear_error(lab):
    a = lab.netns("a")
    v0, _ = a.veth("v0")
    # a process that holds this namespace's sysfs read-only, as Docker does in a container
    a.spawn(["unshare", "-m", "sh", "-c", "mount -o remount,ro /sys && echo ro && exec sleep 60"]).stdout.readline()
    with pytest.raises(LabError, match="read-only.*tmpfs on /sys"):
        a.steer_flows(v0)


SCRIPT = textwrap.dedent("""
    import sys, time
    from cnilab import Lab
    with Lab() as lab:
        a = lab.netns("a"); b = lab.netns("b")
        a.veth("v0", b, "v1")
        a.spawn(["sleep", "60"])
        print(lab.prefix, flush=True)
        time.sleep(60)   # stands for a long test; the signal interrupts it
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_cleans_up(sig):
    """Ctrl-C (SIGINT) and SIGTERM both tear the lab down before the process exits."""
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    prefix = proc.stdout.readline().strip()
    assert prefix and lab_namespaces(prefix)
    proc.send_signal(sig)
    proc.wait(timeout=10)
    assert lab_namespaces(prefix) == [], f"{sig.name} left namespaces behind: {proc.stderr.read()[-500:]}"
    assert not cleanup.find({prefix})


HELD = textwrap.dedent("""
    import os, sys, time
    from cnilab import Lab
    release = sys.argv[1]
    with Lab() as lab:
        hub = lab.netns("hub")
        for k in range(4):
            hub.veth(f"v{k}", lab.netns(f"n{k}"), "eth0")

        def hold_until_released():  # undone first: teardown is halfway while it waits
            print("tearing down", flush=True)
            while not os.path.exists(release):
                time.sleep(0.01)
        lab.defer("wait for the test", hold_until_released)
        print(lab.prefix, flush=True)
        time.sleep(60)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_during_teardown_waits_for_it(sig, tmp_path):
    """The impatient second Ctrl-C (or a supervisor's repeated TERM) lands while teardown is halfway:
    teardown still finishes before the process exits."""
    release = tmp_path / "release"
    proc = subprocess.Popen([sys.executable, "-c", HELD, str(release)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    prefix = proc.stdout.readline().strip()
    proc.send_signal(sig)
    assert proc.stdout.readline().strip() == "tearing down"
    proc.send_signal(sig)
    release.touch()
    proc.wait(timeout=20)
    assert lab_namespaces(prefix) == [], f"the second {sig.name} stopped teardown: {proc.stderr.read()[-500:]}"
    assert proc.returncode != 0, "the signals were swallowed: the process should still stop"


def test_cleanup_removes_leftovers_and_is_idempotent():
    leftover = Lab(keep=True)
    a = leftover.netns("a")
    a.veth("v0")
    a.spawn(["sleep", "60"])
    leftover.teardown()  # keep=True: everything stays, as after `pytest --keep`
    found = cleanup.find({leftover.prefix})
    assert found.namespaces == [f"{leftover.prefix}a"] and found.processes
    removed = cleanup.cleanup({leftover.prefix})
    assert removed.namespaces == [f"{leftover.prefix}a"]
    assert not cleanup.cleanup({leftover.prefix}), "a second cleanup finds nothing"


def test_deleting_a_namespace_takes_its_links_and_their_peers(lab):
    a, b = lab.netns("a"), lab.netns("b")
    end_a, end_b = a.veth("v0", b, "v1")
    b.delete()
    assert lab_namespaces(lab.prefix) == [a.name]
    from cnilab.observe.probes import wait_for
    # the kernel frees a namespace's links asynchronously (cleanup_net), so wait for the peer to go
    wait_for(lambda: not end_a.exists(), timeout=5, what="the veth peer to vanish with its namespace")
