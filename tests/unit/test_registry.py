"""The Lab's registry: reverse-order teardown, tolerance of vanished objects, keep (no root needed)."""

import errno

import pytest

from cnilab.core.errors import LabError
from cnilab.core.lab import Lab
from cnilab.core.step import Step, ip_cmd, ns_cmd, shell

pytestmark = pytest.mark.unit


def make_lab(**kw):
    return Lab(prefix="cltest-", **kw)


def test_teardown_undoes_in_reverse_order():
    undone = []
    lab = make_lab()
    for i in range(4):
        lab.apply(Step(f"make {i}", do=lambda: None, undo=lambda i=i: undone.append(i)))
    lab.teardown()
    assert undone == [3, 2, 1, 0]
    assert lab.registry == []


def test_narrator_sees_every_step_before_it_runs_and_transcript_records_it():
    seen, ran = [], []
    lab = make_lab(narrator=lambda step: seen.append((step.command, list(ran))))
    lab.apply(Step("ip netns add x", do=lambda: ran.append("x")))
    assert seen == [("ip netns add x", [])]
    assert lab.transcript == ["ip netns add x"]


def test_context_manager_tears_down_on_error():
    undone = []
    with pytest.raises(RuntimeError):
        with make_lab() as lab:
            lab.apply(Step("a", do=lambda: None, undo=lambda: undone.append("a")))
            raise RuntimeError("test failed midway")
    assert undone == ["a"]


def test_context_manager_tears_down_on_ctrl_c():
    undone = []
    with pytest.raises(KeyboardInterrupt):
        with make_lab() as lab:
            lab.apply(Step("a", do=lambda: None, undo=lambda: undone.append("a")))
            raise KeyboardInterrupt
    assert undone == ["a"]


def test_objects_already_gone_are_tolerated_other_failures_reported_after_all_undos():
    undone = []

    def gone():
        raise OSError(errno.ENODEV, "No such device")

    def stuck():
        raise OSError(errno.EBUSY, "Device or resource busy")

    lab = make_lab()
    lab.apply(Step("first", do=lambda: None, undo=lambda: undone.append("first")))
    lab.apply(Step("stuck", do=lambda: None, undo=stuck))
    lab.apply(Step("gone", do=lambda: None, undo=gone))
    with pytest.raises(LabError, match=r"could not undo: stuck.*busy.*cnilab cleanup"):
        lab.teardown()
    assert undone == ["first"], "a failing undo must not stop the others"


def test_a_failed_step_is_not_registered():
    lab = make_lab()

    def boom():
        raise OSError(errno.EEXIST, "File exists")

    with pytest.raises(OSError):
        lab.apply(Step("dup", do=boom, undo=lambda: pytest.fail("undo of a step that never happened")))
    lab.teardown()


def test_keep_leaves_everything_and_torn_down_lab_refuses_work():
    undone = []
    lab = make_lab(keep=True)
    lab.apply(Step("a", do=lambda: None, undo=lambda: undone.append("a")))
    lab.teardown()
    assert undone == []
    with pytest.raises(LabError, match="already torn down"):
        lab.apply(Step("b", do=lambda: None))


def test_commands_describe_themselves_in_shell_form():
    assert ip_cmd("ns1", "link", "set", "veth0", "up") == "ip -n ns1 link set veth0 up"
    assert ip_cmd(None, "link") == "ip link"
    assert ns_cmd("ns1", ["sysctl", "-w", "net.ipv4.ip_forward=1"]) == "ip netns exec ns1 sysctl -w net.ipv4.ip_forward=1"
    assert shell("echo", "two words") == "echo 'two words'"
