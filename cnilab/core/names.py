"""Names of lab objects: a run prefix and the kernel's limits.

Every object a lab creates is named ``<prefix><short>`` where the prefix is
``cl`` + four base-36 characters + ``-`` (e.g. ``cl7k2q-``). The pattern lets
``cnilab cleanup`` find leftovers of any run, and it is short because a Linux
interface name holds at most 15 bytes (IFNAMSIZ 16 including the NUL).
"""

from __future__ import annotations

import re
import secrets
import string

from .errors import LabError

IFNAMSIZ = 15  # usable bytes; the kernel's IFNAMSIZ is 16 with the trailing NUL
PREFIX_RE = re.compile(r"^cl[0-9a-z]{4}-")
_ALPHABET = string.digits + string.ascii_lowercase
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def new_prefix(taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A fresh run prefix not starting any name in ``taken``."""
    while True:
        prefix = "cl" + "".join(secrets.choice(_ALPHABET) for _ in range(4)) + "-"
        if not any(name.startswith(prefix) for name in taken):
            return prefix


def is_lab_name(name: str) -> bool:
    """True for names any cnilab run could have made."""
    return bool(PREFIX_RE.match(name))


def check_ifname(name: str) -> str:
    """Return ``name`` if the kernel will accept it as an interface name, else raise."""
    size = len(name.encode())
    if size == 0:
        raise LabError("An interface name is empty: give it a name such as `veth0`.")
    if size > IFNAMSIZ:
        raise LabError(
            f"Interface name {name!r} is {size} bytes but Linux allows at most {IFNAMSIZ} (IFNAMSIZ): "
            "choose a shorter name."
        )
    if name in (".", "..") or not _IFNAME_RE.match(name):
        raise LabError(
            f"Interface name {name!r} has characters Linux refuses (space, '/', ':'...): "
            "use letters, digits, '-', '_' or '.'."
        )
    return name


def check_nsname(name: str) -> str:
    """Return ``name`` if it can be a file under /run/netns, else raise."""
    if not name or "/" in name or name in (".", "..") or len(name) > 200:
        raise LabError(
            f"Namespace name {name!r} cannot be a file name under /run/netns: use letters, digits and '-'."
        )
    return name
