"""The package's layers are a contract: each module imports only its own layer or those below, and no
import -- at module level or inside a function -- goes in a circle. (Imports under TYPE_CHECKING do not
run and are not counted.) The layering is the one the package docstring states."""

from __future__ import annotations

import grimp
import pytest

pytestmark = pytest.mark.unit

#: from the top down; the modules of one row may not import each other's rows sideways
LAYERS = [
    {"cnilab.cli", "cnilab.pytest_plugin"},
    {"cnilab.teach", "cnilab.conformance"},
    {"cnilab.cluster"},
    {"cnilab.observe", "cnilab.runtime"},
    {"cnilab.core"},
]


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("cnilab", exclude_type_checking_imports=True)


def layer_of(module: str) -> tuple[int, str] | None:
    for depth, row in enumerate(LAYERS):
        for part in row:
            if module == part or module.startswith(part + "."):
                return depth, part
    return None


def test_every_module_has_a_layer(graph):
    homeless = sorted(m for m in graph.modules if layer_of(m) is None and m not in ("cnilab", "cnilab._moved", "cnilab._suite"))
    assert not homeless, f"modules outside the layers: {homeless}"


def test_imports_go_down_only(graph):
    wrong = []
    for module in graph.modules:
        mine = layer_of(module)
        for imported in graph.find_modules_directly_imported_by(module):
            theirs = layer_of(imported)
            if mine and theirs and (theirs[0] < mine[0] or (theirs[0] == mine[0] and theirs[1] != mine[1])):
                wrong.append(f"{module} -> {imported}")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph.modules):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle(graph):
    assert cycles(graph) == [], f"import circles: {cycles(graph)}"


def test_the_circle_check_can_fail():
    """Negative control: a graph with a circle is caught."""
    g = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a")):
        g.add_import(importer=a, imported=b)
    assert cycles(g) == [["p.a", "p.b", "p.c"]]


@pytest.mark.parametrize("old", sorted(__import__("cnilab._moved", fromlist=["MOVED"]).MOVED))
def test_the_old_flat_names_are_the_same_modules(old):
    """Exported workbooks and users' code import ``cnilab.probes`` & co.: they get the layered module itself."""
    import importlib

    from cnilab._moved import MOVED

    assert importlib.import_module(f"cnilab.{old}") is importlib.import_module(MOVED[old])
    assert importlib.import_module(f"cnilab.{old}").__spec__.name == MOVED[old]


def test_the_checker_knows_every_fault_point_of_cnilabs_plugin():
    """The conformance case ``fault.hook`` crashes cnilab's plugin at each of its points: the same list."""
    import importlib.util

    from cnilab.conformance.checks_lifecycle import CNILAB_FAULT_POINTS
    from cnilab.core.suite import plugin_dir

    spec = importlib.util.spec_from_file_location("plugin_errors", plugin_dir() / "cnilab_cni" / "errors.py")
    errors = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(errors)
    assert CNILAB_FAULT_POINTS == errors.FAULT_POINTS
