"""Stage 07 conformance: every case of the CNI conformance checker (``cnilab.conformance``), one test each.

These are the very cases ``cnilab conformance`` runs, with the same verdicts: a MUST failure fails its
test; a SHOULD failure fails it for cnilab's own plugin (which must meet every SHOULD) and for
``--cni-plugin`` with ``--cni-strict``, and is a warning otherwise; "not applicable" and "skipped"
skip with the reason; a known deviation of a reference plugin is an expected failure; a bug of the
checker itself is a test error, never the plugin's failure.
"""

import warnings

import pytest

from cnilab.conformance.run import cases, run_case
from cnilab.conformance.spec import Verdict

CASES = cases()


class ConformanceWarning(UserWarning):
    """A SHOULD of the spec that the plugin under test does not meet."""


@pytest.fixture
def outcome(conformance_target, request):
    """Name: outcome. Scope: function. Depends: conformance_target. The case's verdict; a checker bug errors here."""
    case, req, variant = request.param
    result = run_case(conformance_target.target, case, req, variant)
    if result.verdict is Verdict.ERROR:
        raise RuntimeError(f"checker error (a bug of cnilab's checker, not of the plugin): {result.detail}")
    return result


@pytest.mark.parametrize("outcome", CASES, ids=[c for c, _, _ in CASES], indirect=True)
def test_requirement(outcome, conformance_target):
    req = outcome.requirement
    said = f"{req.level.value}: {req.title}. {req.cite}"
    if outcome.verdict is Verdict.PASS:
        return
    if outcome.verdict in (Verdict.NOT_APPLICABLE, Verdict.SKIPPED):
        pytest.skip(f"{outcome.verdict.value}: {outcome.detail}")
    if outcome.verdict is Verdict.DEVIATION:
        pytest.xfail(f"known deviation: {outcome.detail}")
    if outcome.fails_run(conformance_target.strict):
        pytest.fail(f"{outcome.detail}\n{said}", pytrace=False)
    warnings.warn(ConformanceWarning(f"{outcome.case}: {outcome.detail} ({said})"))
