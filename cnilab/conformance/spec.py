"""The requirements the checker judges, each tied to the sentence of the CNI specification it comes from.

A requirement is a function registered with ``@requirement``: it drives the plugin through a
``Session`` and either returns (pass) or raises one of the verdict exceptions below. Anything
else it raises is a bug of the checker, reported as an error and never blamed on the plugin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

SPEC_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


def version_key(version: str) -> tuple[int, ...]:
    """Spec versions compare as numbers ("0.10.0" > "0.4.0"), never as strings."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (-1,)


class Level(str, Enum):
    MUST = "MUST"
    SHOULD = "SHOULD"


class Verdict(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "not applicable"
    SKIPPED = "skipped"
    DEVIATION = "known deviation"
    ERROR = "checker error"


class Violation(AssertionError):
    """The plugin broke the requirement: the message says what it did."""


class NotApplicable(Exception):
    """The requirement cannot apply to this plugin (its type, its configuration or its claimed versions)."""


class Skipped(Exception):
    """The requirement applies but cannot be checked here (a missing tool): the reason says which."""


@dataclass(frozen=True)
class Citation:
    section: str   # e.g. "2 Execution protocol / ADD"
    quote: str     # the spec's words, briefly

    def __str__(self) -> str:
        return f'SPEC {self.section}: "{self.quote}"'


@dataclass
class Requirement:
    id: str
    title: str
    level: Level
    cite: Citation
    check: Callable[..., None]
    since: str = "0.1.0"            # the first spec version that has it
    variants: tuple[str, ...] = ()  # one check per variant (a version, a hostile input, a kill point)
    tags: frozenset[str] = field(default_factory=frozenset)

    def cases(self) -> list[tuple[str, str | None]]:
        """(case id, variant) pairs: one per variant, or the requirement alone."""
        if not self.variants:
            return [(self.id, None)]
        return [(f"{self.id}[{v}]", v) for v in self.variants]


REQUIREMENTS: dict[str, Requirement] = {}


def requirement(id: str, title: str, level: Level, section: str, quote: str, *, since: str = "0.1.0",
                variants: tuple[str, ...] = (), tags: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a check. It is called as ``check(session)`` or ``check(session, variant)``."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if id in REQUIREMENTS:
            raise ValueError(f"requirement {id} is registered twice")
        REQUIREMENTS[id] = Requirement(id, title, level, Citation(section, quote), fn, since, variants, frozenset(tags))
        return fn

    return register


def expect(condition: Any, message: str) -> None:
    """The plugin must satisfy ``condition``; else it broke the requirement (``message`` says how)."""
    if not condition:
        raise Violation(message)


def applies(condition: Any, reason: str) -> None:
    """Stop with "not applicable" unless ``condition``: ``reason`` says why it cannot apply."""
    if not condition:
        raise NotApplicable(reason)
