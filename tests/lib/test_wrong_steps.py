"""The wrong steps measured from outside (issue: "a wrong step gets the right diagnosis") fail with a
first message that names the mistake, and each negative proof fails on a lab broken in another way
instead of passing or failing for the wrong reason. Run through the very machinery of
``tools/mutation.py --wrong`` (which runs all of ``tools/wrong_steps.py``) on a scratch suite."""

import importlib.util
import sys
from pathlib import Path

import pytest

from cnilab.teach.workbook import export, source_root

TOOLS = Path(__file__).resolve().parents[2] / "tools"
if not (TOOLS / "mutation.py").exists():
    pytest.skip("the mutation tools live in a checkout; cnilab is installed without one", allow_module_level=True)


def _tool(name: str):
    sys.path.insert(0, str(TOOLS))
    try:
        spec = importlib.util.spec_from_file_location(f"cnilab_tools_{name}", TOOLS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(TOOLS))


mutation, wrong_steps = _tool("mutation"), _tool("wrong_steps")
MEASURED = ["MASQUERADE on the unprefixed uplink name", "the gateway address on a bridge port instead of on the bridge",
            "the peer left in the host namespace", "only the pod end down", "the pod address in another subnet",
            "the default route via the uplink's address"]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """Name: scratch. Scope: module. A copy of the suite with its solutions, for mutants to change."""
    dest = tmp_path_factory.mktemp("mutants") / "suite"
    export(dest, source_root(), solutions=True)
    return dest


def mutant(what: str):
    found = [m for m in mutation.wrong_mutants(source_root(), set(range(1, 9))) if m.wrong.what == what]
    assert len(found) == 1, f"tools/wrong_steps.py has no single wrong step {what!r}"
    return found[0]


@pytest.mark.parametrize("what", MEASURED)
def test_a_measured_wrong_step_fails_naming_the_mistake(scratch, what):
    m = mutant(what)
    mutation.run(m, scratch)
    assert m.killed, f"{what}: the stage's tests all passed"
    assert m.diagnosed, f"{what}: the first failure does not name {m.wrong.words}: {m.message}"


NEGATIVE = [  # (the lab broken this way, the negative proof that must now fail, a word its failure must hold)
    ("only the pod end down", "tests/stage02_veth/test_stage02_veth.py::test_link_down_means_no_ping", "down"),
    ("IPv6 forwarding instead of IPv4",
     "tests/stage05_out/test_stage05_out.py::test_without_masquerade_the_internet_sees_the_private_source_and_replies_never_return",
     "ip_forward"),
    ("the host end left down", "tests/stage03_multi/test_stage03_multi.py::test_detached_port_isolates_its_pod", "down"),
]


@pytest.mark.parametrize("what, proof, word", NEGATIVE, ids=[n[1].rsplit("::", 1)[1] for n in NEGATIVE])
def test_a_negative_proof_fails_on_a_lab_broken_otherwise(scratch, what, proof, word):
    m = mutant(what)
    mutation.run(m, scratch, only=[proof])
    assert m.killed, f"{proof} passed on a lab with {what}: it proved nothing"
    assert word in m.message, f"{proof} failed, but not for the missing positive ({word!r}): {m.message}"


def test_every_wrong_step_applies_to_its_block():
    """Each entry of the catalogue still finds its text exactly once in its solution block."""
    root = source_root()
    for m in mutation.wrong_mutants(root, set(range(1, 9))):
        m.apply((root / m.block.path).read_text())
    assert len(wrong_steps.STEPS) >= 40
