"""A lab operation that can describe itself as the shell command it stands for.

Every change the lab makes to the kernel goes through a ``Step``: the recipe
code stays plain Python, yet a demo can show ``ip -n cl7k2q-host link add ...``
before running it, and the transcript of a run is a shell script a student
could type by hand.
"""

from __future__ import annotations

import errno
import shlex
from dataclasses import dataclass
from typing import Any, Callable, Sequence

# Undo steps tolerate objects that are already gone (deleted by a test, or
# taken away with their namespace): the goal "it does not exist" is reached.
GONE_ERRNOS = {errno.ENODEV, errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL, errno.EINVAL}


@dataclass
class Step:
    command: str
    do: Callable[[], Any]
    undo: Callable[[], None] | None = None
    undo_command: str | None = None
    note: str = ""


def shell(*argv: Any) -> str:
    """The shell form of an argv, quoted only where needed."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def ip_cmd(ns: str | None, *argv: Any) -> str:
    """An iproute2 command, run inside ``ns`` when given (``ip -n NS ...``)."""
    return shell("ip", *(("-n", ns) if ns else ()), *argv)


def ns_cmd(ns: str | None, argv: Sequence[Any]) -> str:
    """Any command run inside ``ns`` (``ip netns exec NS ...``)."""
    return shell(*(("ip", "netns", "exec", ns) if ns else ()), *argv)


def is_gone(exc: BaseException) -> bool:
    code = getattr(exc, "code", None) or getattr(exc, "errno", None)
    return code in GONE_ERRNOS
