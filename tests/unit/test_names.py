"""Naming rules: the run prefix and the kernel's interface-name limits (no root needed)."""

import pytest

from cnilab.core.errors import LabError
from cnilab.core.names import IFNAMSIZ, check_ifname, check_nsname, is_lab_name, new_prefix

pytestmark = pytest.mark.unit


def test_prefix_is_short_recognisable_and_unique():
    prefixes = {new_prefix() for _ in range(200)}
    assert len(prefixes) > 190
    for p in prefixes:
        assert len(p) == 7 and is_lab_name(p + "x")


def test_prefix_avoids_names_already_taken():
    taken = {new_prefix() + "host" for _ in range(50)}
    fresh = new_prefix(taken)
    assert not any(name.startswith(fresh) for name in taken)


def test_foreign_names_are_not_lab_names():
    for name in ("eth0", "docker0", "cali12345-ab", "cl12-x", "CLabcd-x", "cni0"):
        assert not is_lab_name(name)


def test_fifteen_bytes_is_the_limit():
    assert check_ifname("a" * IFNAMSIZ) == "a" * IFNAMSIZ
    with pytest.raises(LabError, match=r"16 bytes .* at most 15 \(IFNAMSIZ\).*shorter name"):
        check_ifname("a" * 16)


def test_limit_counts_bytes_not_characters():
    with pytest.raises(LabError, match="bytes"):
        check_ifname("é" * 8)  # 8 characters, 16 bytes


@pytest.mark.parametrize("bad", ["", "has space", "a/b", "a:b", ".", ".."])
def test_bad_interface_names_get_one_clear_error(bad):
    with pytest.raises(LabError) as err:
        check_ifname(bad)
    assert "\n" not in str(err.value)


def test_bad_namespace_names():
    for bad in ("", "a/b", "..", "x" * 300):
        with pytest.raises(LabError):
            check_nsname(bad)
