"""Errors a user can act on.

Every error the lab raises for bad input or a missing precondition is a
``LabError``: its message is one sentence naming the problem and the fix, and
the CLI and the pytest plugin print it without a traceback.
"""


class LabError(Exception):
    """A problem the user can fix; ``str(err)`` says what and how."""


class NotRootError(LabError):
    def __init__(self, what: str = "cnilab"):
        super().__init__(
            f"{what} needs root (CAP_NET_ADMIN) to create network namespaces: "
            "run it with sudo, e.g. `sudo .venv/bin/pytest` or `sudo .venv/bin/cnilab run`."
        )


class Todo(LabError):
    """Raised by a workbook stub that the student has not filled yet: ``stage`` and ``function`` say where."""

    def __init__(self, message: str, stage: int | None = None, function: str | None = None):
        super().__init__(message)
        self.stage, self.function = stage, function

