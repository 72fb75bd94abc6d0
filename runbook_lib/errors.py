"""The runbook's error tree.

Every error the library raises on purpose derives from ``RunbookError``; the class tells the
on-call engineer what state the world is in and whether trying again may help::

    RunbookError
    ├── ParameterError          bad input; lists every problem at once; nothing changed
    ├── PreconditionFailed      safe abort before any change (wrong cluster, lock held, ...)
    │   ├── WrongCluster
    │   ├── LockHeld
    │   └── LockLost            the lock this run held was taken over or released under it
    ├── AdapterError            an outside program or service failed; carries the command or
    │   │                       query, its stderr, and ``retryable``
    │   ├── CommandFailed       a subprocess (helm, kubectl, ...) exited non-zero or is missing
    │   ├── ApiError            Kubernetes API call failed
    │   ├── MetricsError        Prometheus / replay data could not be read
    │   │   └── InputFileError  a replay file is malformed (names file, row, column)
    │   └── TracesError         the tracing backend (Jaeger) could not be queried
    ├── StepTimeout             a step did not finish in its time budget
    └── VerificationFailed      rolled back but not recovered (or wrong image): escalate
        └── ReleaseChangedUnderRun  someone changed the release during the run

Notebooks never catch these, so papermill marks the failing cell. Always ``raise ... from err``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypedDict, Unpack

__all__ = [
    "AdapterError",
    "ApiError",
    "CommandFailed",
    "InputFileError",
    "LockHeld",
    "LockLost",
    "MetricsError",
    "ParameterError",
    "PreconditionFailed",
    "ReleaseChangedUnderRun",
    "RunbookError",
    "StepTimeout",
    "TracesError",
    "VerificationFailed",
    "WrongCluster",
]


class RunbookError(Exception):
    """Root of every error the runbook raises deliberately."""


class ParameterError(RunbookError, ValueError):
    """One or more parameters are invalid. ``problems`` lists each as "name: what was wrong"."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} invalid parameter(s):\n{lines}")


class PreconditionFailed(RunbookError):
    """A safety check failed before anything was changed; the run stopped cleanly."""


class WrongCluster(PreconditionFailed):
    """The kube context / API server is not the cluster the run was told to expect."""


class LockHeld(PreconditionFailed):
    """Another run holds the release's rollback lock (a Kubernetes Lease).

    ``holder`` is who holds it; ``frees_at`` when it frees itself unless renewed (``None``
    when unknown).
    """

    def __init__(self, message: str, *, holder: str, frees_at: datetime | None = None) -> None:
        self.holder = holder
        self.frees_at = frees_at
        super().__init__(message)


class LockLost(PreconditionFailed):
    """The lock this run took is no longer its own: taken over, or released under it.

    Raised by the step frame before a step that changes the cluster, so nothing was changed.
    ``holder`` is who holds the Lease now (``None`` when nobody does).
    """

    def __init__(self, message: str, *, holder: str | None) -> None:
        self.holder = holder
        super().__init__(message)


class _CallContext(TypedDict, total=False):
    """What every ``AdapterError`` may say of the failed call; its subclasses pass it on."""

    command: str
    stderr: str
    retryable: bool


class AdapterError(RunbookError):
    """An outside program or service failed.

    ``command`` is what was run or asked (argv joined, URL, PromQL), ``stderr`` what it said,
    ``retryable`` whether the same call may succeed later (timeouts, 5xx, connection refused).
    """

    def __init__(
        self,
        message: str,
        *,
        command: str = "",
        stderr: str = "",
        retryable: bool = False,
    ) -> None:
        self.command = command
        self.stderr = stderr
        self.retryable = retryable
        detail = message
        if command:
            detail += f"\n  command: {command}"
        if stderr:
            detail += f"\n  stderr: {stderr.strip()[:2000]}"
        super().__init__(detail)


class CommandFailed(AdapterError):
    """A subprocess exited non-zero, timed out, or could not be found.

    ``timeout_s`` is set when it was killed for running longer than that.
    """

    def __init__(
        self,
        message: str,
        *,
        returncode: int | None = None,
        timeout_s: float | None = None,
        **context: Unpack[_CallContext],
    ) -> None:
        self.returncode = returncode
        self.timeout_s = timeout_s
        super().__init__(message, **context)


class ApiError(AdapterError):
    """A Kubernetes API call failed. ``status`` is the HTTP status when there was one."""

    def __init__(
        self, message: str, *, status: int | None = None, **context: Unpack[_CallContext]
    ) -> None:
        self.status = status
        super().__init__(message, **context)


class MetricsError(AdapterError):
    """Metric samples could not be obtained (Prometheus error, empty result, bad replay file)."""


class TracesError(AdapterError):
    """The tracing backend could not be queried (down, timed out, refused, or bad answer).

    Traces are supporting evidence: callers record this as "traces not collected" and go on.
    """


class InputFileError(MetricsError):
    """A replay file is malformed. The message names the file, the row and the column."""

    def __init__(
        self, message: str, *, path: str, row: int | None = None, column: str = ""
    ) -> None:
        self.path = path
        self.row = row
        self.column = column
        where = path
        if row is not None:
            where += f", row {row}"
        if column:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}", command=path)


class StepTimeout(RunbookError):
    """A step did not complete within its time budget."""

    def __init__(self, message: str, *, step: str, timeout_s: float) -> None:
        self.step = step
        self.timeout_s = timeout_s
        super().__init__(message)


class VerificationFailed(RunbookError):
    """The rollback ran but the service is not verified healthy: escalate, do not migrate."""


class ReleaseChangedUnderRun(VerificationFailed):
    """The release is no longer what this run rolled back to: someone changed it meanwhile.

    ``revision`` is the release's current revision, ``version`` its app version or chart,
    ``changed_at`` when Helm recorded it. Not a failed recovery: the run's rollback was undone.
    """

    def __init__(self, message: str, *, revision: int, version: str, changed_at: str) -> None:
        self.revision = revision
        self.version = version
        self.changed_at = changed_at
        super().__init__(message)
