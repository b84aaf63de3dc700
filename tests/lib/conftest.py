"""Library tests build topologies with the stage recipes themselves (one home per topology step)."""

from pathlib import Path

import pytest

from cnilab.teach.recipe import load_stage

TESTS = Path(__file__).resolve().parent.parent


@pytest.fixture
def bridged(lab):
    """Name: bridged. Scope: function. Depends: lab. Stage 03's host, bridge and three pods."""
    return load_stage(3, TESTS).build(lab, "pods")
