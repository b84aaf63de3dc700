"""Waiting for the kernel: bounded polling for what it does asynchronously (a namespace's links freed,
a daemon's socket bound). Never a fixed sleep: the condition is checked until it holds or time runs out."""

from __future__ import annotations

import time
from typing import Callable


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str, poll: float = 0.002) -> None:
    """Wait until ``condition()`` is true (checked every ``poll`` s) or raise after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout}s waiting for {what}.")
        time.sleep(poll)
