"""The command line and the suite as a user meets them: one-sentence errors, cleanup reports (needs root)."""

import subprocess
import sys
from pathlib import Path

from cnilab import Lab
from cnilab.cli import main

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def as_unprivileged(*argv):
    """Run without root: a user namespace with no uid mapping makes geteuid() the overflow uid."""
    return subprocess.run(["unshare", "--user", *argv], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_suite_without_root_says_sudo_in_one_sentence():
    done = as_unprivileged(str(BIN / "pytest"), "tests/stage02_veth")
    assert done.returncode != 0
    out = (done.stdout + done.stderr).strip()
    assert out.count("\n") == 0 and "sudo" in out, out
    assert "Traceback" not in out and "EPERM" not in out


def test_cli_without_root_says_sudo_in_one_sentence():
    for cmd in ("run", "cleanup"):
        done = as_unprivileged(str(BIN / "cnilab"), cmd)
        assert done.returncode != 0
        assert done.stdout == "" and done.stderr.strip().count("\n") == 0 and "sudo" in done.stderr


def test_cleanup_command_reports_what_it_removed_then_nothing(capsys):
    kept = Lab(keep=True)
    kept.netns("left")
    kept.teardown()
    # --prefix: a global cleanup would also remove the labs of any other run going on now
    assert main(["cleanup", "--prefix", kept.prefix]) == 0
    assert f"netns {kept.prefix}left" in capsys.readouterr().out
    assert main(["cleanup", "--prefix", kept.prefix]) == 0
    assert "nothing to clean up" in capsys.readouterr().out


def test_doctor_passes_on_a_capable_machine(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "kernel: vxlan" in out and "kernel: nat" in out


LEAKY = '''
from cnilab import Lab

def test_forgets_to_tear_down():
    Lab().netns("leak")   # no context manager, no fixture: nothing tears it down
'''

KEPT = '''
def test_builds_something(lab):
    lab.netns("kept")
'''


def run_pytest(tmp_path, source, *args):
    (tmp_path / "test_x.py").write_text(source)
    return subprocess.run([str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", str(tmp_path / "test_x.py"), *args],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)


def test_leak_guard_fails_a_session_that_leaves_a_namespace(tmp_path):
    done = run_pytest(tmp_path, LEAKY)
    assert done.returncode == 1, done.stdout
    assert "1 passed" in done.stdout and "LEAK GUARD" in done.stdout and "leak" in done.stdout
    from cnilab.runtime import cleanup
    assert not [n for n in cleanup.find().namespaces if n.endswith("-leak")], "the guard also removes what leaked"


def test_keep_leaves_the_lab_up_and_says_how_to_enter_it(tmp_path):
    from cnilab.runtime import cleanup

    done = run_pytest(tmp_path, KEPT, "--keep")
    assert done.returncode == 0, done.stdout
    kept = [n for n in cleanup.find().namespaces if n.endswith("-kept")]
    try:
        assert len(kept) == 1 and f"ip netns exec {kept[0]} bash" in done.stdout
        assert "cnilab cleanup" in done.stdout
    finally:
        cleanup.cleanup({kept[0][:7]} if kept else set())


WAITS = '''
import sys

def test_waits_for_ctrl_c(lab):
    lab.netns("intr")
    print("READY", lab.prefix, flush=True)
    sys.stdin.readline()   # blocks until the test below interrupts the run
'''


def test_ctrl_c_during_a_pytest_run_tears_the_lab_down(tmp_path):
    import signal

    from cnilab.runtime import cleanup

    (tmp_path / "test_x.py").write_text(WAITS)
    proc = subprocess.Popen([str(BIN / "pytest"), "-q", "-s", "-p", "no:cacheprovider", str(tmp_path / "test_x.py")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    line = ""
    while not line.startswith("READY"):
        line = proc.stdout.readline()
        assert line, "the run ended before its lab was up"
    prefix = line.split()[1]
    assert cleanup.find({prefix}).namespaces
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert not cleanup.find({prefix}), "Ctrl-C left the lab behind"
