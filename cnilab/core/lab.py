"""The ``Lab``: one run of the lab, owner of everything it creates.

A lab has a short unique prefix that starts the name of every object it
makes, and a registry of those objects. Teardown undoes the registry in
reverse order of creation -- on success, on failure, on Ctrl-C (Python's
KeyboardInterrupt) and on SIGTERM/SIGHUP (turned into KeyboardInterrupt while
a lab is open) -- and at interpreter exit as a last resort. A signal that comes
during teardown waits until teardown is done.

Use it as a context manager::

    with Lab() as lab:
        host, pod = lab.netns("host"), lab.netns("pod")
        ...

or from the ``lab`` pytest fixture, which does the same per test.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from pyroute2.netlink.exceptions import NetlinkError

from .advice import StepFailed
from .errors import LabError
from .names import check_nsname, new_prefix
from .netns import Namespace
from .step import Step, is_gone

Narrator = Callable[[Step], None]

_open_labs: "weakref.WeakSet[Lab]" = weakref.WeakSet()
#: Every prefix used by this process: the leak guard checks them at exit.
used_prefixes: set[str] = set()
#: A file (set by the pytest plugin, inherited by child processes) where every lab of a run and of the
#: runs it starts -- a demo, a workbook's pytest, `cnilab conformance` -- notes its prefix, so the
#: leak guard sees what nested runs left too.
PREFIX_LOG_ENV = "CNILAB_PREFIX_LOG"


def _note_prefix(prefix: str) -> None:
    used_prefixes.add(prefix)
    log = os.environ.get(PREFIX_LOG_ENV)
    if log:
        try:
            with open(log, "a") as f:
                f.write(prefix + "\n")
        except OSError:
            pass  # the note is for the leak guard; a lab works without it


def logged_prefixes() -> set[str]:
    """The prefixes noted in the run's prefix log, by this process and its children."""
    log = os.environ.get(PREFIX_LOG_ENV)
    try:
        return set(open(log).read().split()) if log else set()
    except OSError:
        return set()


class Lab:
    """One run: a prefix, a registry, and teardown.

    Args:
        prefix: force a prefix (tests of the library); default: a fresh one.
        keep: leave everything up at teardown (``--keep``); ``cnilab cleanup`` removes it later.
        narrator: called with every ``Step`` before it runs (demo mode, transcripts).
    """

    def __init__(self, *, prefix: str | None = None, keep: bool = False, narrator: Narrator | None = None):
        self.prefix = prefix or new_prefix(_taken_names())
        self.keep = keep
        self.narrator = narrator
        self.registry: list[Step] = []
        self.transcript: list[str] = []
        self.namespaces: dict[str, "Namespace"] = {}
        #: what a demo shows of things happening in other processes (an agent's decisions), line by line
        self.on_event: Callable[[str], None] | None = None
        self._closed = False
        _note_prefix(self.prefix)
        _open_labs.add(self)

    @classmethod
    def adopt(cls, prefix: str) -> "Lab":
        """A handle on a lab left up earlier (``--keep``): its namespaces, not its registry.

        What is done through this handle (a capture, a server for a trace) is undone at
        teardown; the adopted namespaces themselves stay until ``cnilab cleanup``.
        """
        lab = cls(prefix=prefix)
        for name in sorted(_taken_names()):
            if name.startswith(prefix):
                lab.namespaces[name] = Namespace(lab, name)
        return lab

    # -- naming ---------------------------------------------------------------
    def name(self, short: str) -> str:
        """The full name of a lab object: the run prefix + ``short``."""
        return short if short.startswith(self.prefix) else self.prefix + short

    # -- the registry ---------------------------------------------------------
    def apply(self, step: Step) -> Any:
        """Narrate, run and register ``step``; return what it returned."""
        if self._closed:
            raise LabError(f"Lab {self.prefix} is already torn down: create a new Lab for more work.")
        if self.narrator:
            self.narrator(step)
        self.transcript.append(step.command)
        with _signals_held():  # a Ctrl-C between making a thing and registering its undo would leak it
            try:
                result = step.do()
            except NetlinkError as exc:  # one sentence naming the step, not a page of pyroute2's internals
                raise StepFailed(step.command, exc.code, os.strerror(exc.code) if exc.code > 0 else str(exc)) from None
            self.registry.append(step)
        return result

    def defer(self, command: str, undo: Callable[[], None], note: str = "") -> None:
        """Register a cleanup for something created outside ``apply`` (a process, a thread)."""
        self.registry.append(Step(command=command, do=lambda: None, undo=undo, undo_command=command, note=note))

    def teardown(self) -> None:
        """Undo every registered step, newest first; tolerate objects already gone.

        Every undo is attempted even if one fails; failures are reported
        together afterwards so one stuck object does not leak the others.
        """
        if self._closed:
            return
        self._closed = True
        _open_labs.discard(self)
        if self.keep:
            return
        with _signals_held():
            self._undo_all()

    def _undo_all(self) -> None:
        failures: list[str] = []
        while self.registry:
            step = self.registry.pop()
            if step.undo is None:
                continue
            try:
                step.undo()
            except Exception as exc:  # noqa: BLE001 -- collected and reported below
                if not is_gone(exc):
                    failures.append(f"{step.undo_command or step.command}: {exc}")
        for ns in self.namespaces.values():
            ns.close()
        if failures:
            raise LabError(f"Teardown of lab {self.prefix} could not undo: {'; '.join(failures)}; run `cnilab cleanup`.")

    # -- objects --------------------------------------------------------------
    def netns(self, short: str) -> "Namespace":
        """Create network namespace ``<prefix><short>`` (``ip netns add``)."""
        name = check_nsname(self.name(short))
        if name in self.namespaces:
            raise LabError(f"Namespace {name} already exists in this lab: give the second one another name.")
        ns = Namespace(self, name)
        ns.create()
        self.namespaces[name] = ns
        return ns

    def attach(self, short: str, pid: int) -> "Namespace":
        """Name the network namespace of process ``pid`` (a container, a pod sandbox) as ``<prefix><short>``."""
        name = check_nsname(self.name(short))
        ns = Namespace(self, name)
        ns.attach(pid)
        self.namespaces[name] = ns
        return ns

    def get(self, short: str) -> "Namespace":
        """This lab's namespace ``short`` (e.g. "pod1"), which an earlier step created."""
        try:
            return self.namespaces[self.name(short)]
        except KeyError:
            have = ", ".join(ns.short for ns in self) or "none"
            raise LabError(f"Lab {self.prefix} has no namespace {short!r} (it has: {have}): "
                           "build the stage that creates it first.") from None

    def enter_hints(self) -> list[str]:
        """How to step into each namespace of this lab from a shell."""
        return [f"ip netns exec {name} bash" for name in self.namespaces]

    def __iter__(self) -> Iterator["Namespace"]:
        return iter(self.namespaces.values())

    # -- context manager ------------------------------------------------------
    def __enter__(self) -> "Lab":
        _install_signal_handlers()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.teardown()

    def __repr__(self) -> str:
        return f"Lab({self.prefix!r}, {len(self.namespaces)} namespaces)"


def _taken_names() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


_handler_pid = os.getpid()


def _died_as_forked_helper(signum: int, owner: int) -> bool:
    """A forked helper (pyroute2 forks to create namespaces) inherits the lab's handlers: in it the
    signal must kill as usual, not resume the parent's code. True if this process is such a helper."""
    if os.getpid() == owner:
        return False
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return True


def _raise_interrupt(signum: int, frame: Any) -> None:
    if not _died_as_forked_helper(signum, _handler_pid):
        raise KeyboardInterrupt(f"signal {signum}")


_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block ends, then raise the first as KeyboardInterrupt.

    Teardown runs because of the first signal more often than not; a second one (an impatient
    Ctrl-C, a supervisor's repeated TERM) must not stop it halfway and leave half the lab behind.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner, held = os.getpid(), []

    def hold(signum: int, frame: Any) -> None:
        if os.getpid() == owner:
            held.append(signum)
        # else: a helper forked inside the block (pyroute2 forks to create a namespace) finishes its
        # short job; killed halfway, it would leave a namespace nobody registered

    previous = {sig: signal.getsignal(sig) for sig in _HELD_SIGNALS}
    for sig in _HELD_SIGNALS:
        signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
    if held:
        raise KeyboardInterrupt(f"signal {held[0]} held until the lab's bookkeeping was done")


def _install_signal_handlers() -> None:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so ``finally`` blocks and finalizers run."""
    global _handler_pid
    if threading.current_thread() is not threading.main_thread():
        return
    _handler_pid = os.getpid()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _raise_interrupt)


@atexit.register
def _teardown_forgotten() -> None:
    for lab in list(_open_labs):
        try:
            lab.teardown()
        except LabError as exc:  # the process is ending: say what stayed, it is the last chance to
            print(f"cnilab: {exc}", file=sys.stderr)


