"""The CNI conformance checker: any plugin, requirement by requirement, each tied to its spec sentence.

``spec``        the requirement model: level, citation, verdicts
``checks_*``    the requirements themselves (verbs, errors and hostile input, lifecycle and faults)
``target``      the plugin under test: path, configuration template, claimed versions
``session``     one fresh lab node per case, pods on demand, the node's state for leak checks
``deviations``  known deviations of widely used plugins, in one place
``run``         runs the cases; ``report`` prints them (terminal, JUnit XML, Markdown)

Used by ``cnilab conformance`` and by the stage-07 tests: both run the same cases.
"""

from .run import Outcome, Report, check, cnilab_target, target_for
from .spec import REQUIREMENTS, Level, Verdict

__all__ = ["REQUIREMENTS", "Level", "Outcome", "Report", "Verdict", "check", "cnilab_target", "target_for"]
