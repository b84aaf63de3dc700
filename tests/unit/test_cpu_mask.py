"""The CPU bitmap written to rps_cpus, in the kernel's syntax."""

import pytest

from cnilab.core.netns import cpu_mask


@pytest.mark.parametrize("cpus, mask", [
    (set(), "0"),
    ({0}, "1"),
    ({0, 1}, "3"),
    ({1, 3}, "a"),
    (range(32), "ffffffff"),
    ({0, 33}, "2,00000001"),
    (range(64), "ffffffff,ffffffff"),
    ({64}, "1,00000000,00000000"),
])
def test_cpu_mask(cpus, mask):
    assert cpu_mask(cpus) == mask
