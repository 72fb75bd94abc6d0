"""The incident timeline: timestamped UTC events, appended as JSON lines.

Every step writes here; the incident record, the plots' markers and the timing against the
5-minute target are all computed from these events, never from notebook variables. Each event is
flushed to disk as it happens so a crash mid-run still leaves the evidence of what was done.

Runs of one incident share its timeline (a rerun after a crash; two people answering one page):
each event carries its run's id (``Event.run``), so the attempts stay apart even when their
events interleave (``runbook_lib.record.facts.attempts``).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from runbook_lib.core.redact import redact_structure
from runbook_lib.errors import (
    InputFileError,
    ParameterError,
    PreconditionFailed,
    VerificationFailed,
)

__all__ = [
    "RUN_ID_ENV",
    "Event",
    "EventKind",
    "FailureKind",
    "Repair",
    "Timeline",
    "new_run_id",
    "repair_torn_tail",
]

# The run's id, when whoever started the kernel chose it (``runbook run`` does, so it can tell
# its run's events from another run's on a shared incident timeline even after a crash).
RUN_ID_ENV = "RUNBOOK_RUN_ID"


def new_run_id() -> str:
    """A fresh run id: short, unique, safe in a file name and a Lease annotation."""
    return f"run-{uuid.uuid4().hex[:12]}"


class EventKind(StrEnum):
    INFO = "info"
    STEP_START = "step_start"
    STEP_END = "step_end"
    STEP_FAILED = "step_failed"
    DRY_RUN = "dry_run"  # what a mutating step would have done
    DECISION = "decision"
    WARNING = "warning"
    FACT = "fact"  # a typed fact of the run (runbook_lib.record.facts), read back by RunFacts


@dataclass(frozen=True)
class Event:
    at: datetime
    step: str
    kind: EventKind
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)
    run: str = ""  # the run that wrote it ("": a timeline written before runs had ids)

    def to_json(self) -> str:
        raw: dict[str, Any] = {
            "at": self.at.isoformat(),
            "step": self.step,
            "kind": self.kind.value,
            "message": self.message,
            "data": dict(self.data),
        }
        if self.run:
            raw["run"] = self.run
        return json.dumps(raw, default=str, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Event:
        raw = json.loads(line)
        return cls(
            at=datetime.fromisoformat(raw["at"]),
            step=raw["step"],
            kind=EventKind(raw["kind"]),
            message=raw["message"],
            data=raw.get("data", {}),
            run=str(raw.get("run") or ""),
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _append_nofollow(path: Path, text: str) -> None:
    """Append to ``path`` (0640), never through a symlink planted at it."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o640)
    try:
        view = memoryview(text.encode("utf-8"))
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


class FailureKind(StrEnum):
    """What a failed step means for the run's ending (``step_failed``'s ``error_kind``)."""

    PARAMETER = "parameter"  # bad input: a parameter, or an input file that cannot be read
    PRECONDITION = "precondition"  # a safety check stopped the run before any change
    VERIFICATION = "verification"  # rolled back but not verified: escalate
    INTERRUPTED = "interrupted"  # a signal (or the kernel's interrupt) stopped the step
    OTHER = "other"


def error_kind(err: BaseException) -> FailureKind:
    """What a failure means for the run's outcome (read back by ``runbook_lib.record.facts``)."""
    if isinstance(err, KeyboardInterrupt | SystemExit):
        return FailureKind.INTERRUPTED
    if isinstance(err, ParameterError | InputFileError):
        return FailureKind.PARAMETER
    if isinstance(err, PreconditionFailed):
        return FailureKind.PRECONDITION
    if isinstance(err, VerificationFailed):
        return FailureKind.VERIFICATION
    return FailureKind.OTHER


class Timeline:
    """An append-only list of events, mirrored to ``path`` (JSON lines) when one is given.

    ``redact`` is applied to every message and data value before it is stored, so secrets never
    reach the file. ``append(path, text)`` writes to the file (the run passes the evidence
    writer, which never follows a symlink); the default opens it with ``O_NOFOLLOW``.

    A write that fails (disk full, folder gone) never stops the run: the event is kept in
    memory, the first error is kept in ``lost`` and later writes are still tried. Whoever ends
    the run reports ``lost`` (the cluster work matters more than its evidence).

    ``run`` is the id stamped on every event this object writes (``record_for`` writes for
    another run: a later run sealing a crashed attempt of the same incident).
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
        redact: Callable[[str], str] = lambda s: s,
        append: Callable[[Path, str], object] | None = None,
        run: str = "",
    ) -> None:
        self.path = path
        self.run = run
        self._clock = clock
        self._redact = redact
        self._append = append or _append_nofollow
        self.lost: OSError | None = None
        self.events: list[Event] = []
        # Events the file did not take (kept in order): whoever ends the run can still read
        # them, e.g. ``runbook run`` from the kernel's summary when the disk filled up.
        self.unwritten: list[Event] = []
        # Lines that could not be read back (a run killed mid-write, a disk that filled up):
        # skipped, not fatal, and reported once on the timeline by the next ``record``.
        self.damaged: tuple[str, ...] = ()
        self._unterminated = False
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.exists():
                    self._load(path)
            except OSError as err:
                self.lost = err

    def _load(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8", errors="replace")
        self._unterminated = bool(text) and not text.endswith("\n")
        damaged: list[str] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                self.events.append(Event.from_json(line))
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                damaged.append(f"line {number}: {type(err).__name__}: {err}"[:200])
        self.damaged = tuple(damaged)

    def now(self) -> datetime:
        return self._clock()

    def _redact_other(self, value: Any) -> Any:
        # Objects are written with str(); keep one whose text holds no secret as it is.
        text = str(value)
        clean = self._redact(text)
        return value if clean == text else clean

    def _report_damaged(self) -> None:
        if self.damaged:
            damaged, self.damaged = self.damaged, ()
            self.record(
                "timeline",
                EventKind.WARNING,
                f"{len(damaged)} damaged timeline line(s) skipped: {'; '.join(damaged)}",
                damaged=list(damaged),
            )

    def record(self, step: str, kind: EventKind | str, message: str, **data: Any) -> Event:
        return self.record_for(self.run, step, kind, message, **data)

    def record_for(
        self, run: str, step: str, kind: EventKind | str, message: str, **data: Any
    ) -> Event:
        """``record`` on behalf of the run ``run`` (its attempt is the one the event joins)."""
        self._report_damaged()
        # Every value at every nesting level; credential-named keys hide values of any type.
        clean = redact_structure(dict(data), self._redact, other=self._redact_other)
        event = Event(self._clock(), step, EventKind(kind), self._redact(message), clean, run)
        self.events.append(event)
        self._write(event)
        return event

    def _write(self, event: Event) -> None:
        if self.path is None:
            return
        # A damaged last line without its newline must not swallow this event.
        line = ("\n" if self._unterminated else "") + event.to_json() + "\n"
        try:
            self._append(self.path, line)
        except OSError as err:
            self.lost = self.lost or err
            self.unwritten.append(event)
            # Part of the line may have reached the file: the next one starts afresh.
            self._unterminated = True
        else:
            self._unterminated = False

    def restore(self, events: Iterable[Event]) -> int:
        """Put back events another writer of this timeline could not write (the kernel's,
        when the disk was full): each one not here yet is written and placed in time order.

        They were redacted when they were recorded. Returns how many were put back.
        """
        known = {event.to_json() for event in self.events}
        added = [event for event in events if event.to_json() not in known]
        if added:
            self._report_damaged()  # e.g. the line the disk cut short when it filled up
        for event in added:
            self.events.append(event)
            self._write(event)
        self.events.sort(key=lambda event: event.at)
        return len(added)

    @contextmanager
    def span(self, step: str, message: str = "", **data: Any) -> Iterator[None]:
        """Record a step's start and end; a failure is recorded with its error and re-raised."""
        self.record(step, EventKind.STEP_START, message or f"{step} started", **data)
        try:
            yield
        except BaseException as err:
            self.record(
                step,
                EventKind.STEP_FAILED,
                f"{step} failed: {type(err).__name__}: {err}",
                error_type=type(err).__name__,
                error_kind=error_kind(err),
            )
            raise
        self.record(step, EventKind.STEP_END, f"{step} finished")

    def first(self, step: str, kind: EventKind | str) -> Event | None:
        kind = EventKind(kind)
        return next((e for e in self.events if e.step == step and e.kind == kind), None)

    def last(self, step: str, kind: EventKind | str) -> Event | None:
        kind = EventKind(kind)
        return next((e for e in reversed(self.events) if e.step == step and e.kind == kind), None)


@dataclass(frozen=True)
class Repair:
    """A torn end of a timeline file cut off before sealing, and what it held."""

    line: int  # the torn line's number
    removed_bytes: int
    excerpt: str  # its first characters (already redacted when it was written)
    recorded: bool = True  # the repair's own event reached the file

    def message(self) -> str:
        return (
            f"timeline repaired before sealing: line {self.line} was torn (a write cut short, "
            f"e.g. by a full disk or a kill); its {self.removed_bytes} bytes were removed"
        )


def _cut_point(data: bytes) -> tuple[int, int]:
    """(offset where the whole lines end, number of whole lines) of a timeline's bytes."""
    end = len(data)
    if data and not data.endswith(b"\n"):
        end = data.rfind(b"\n") + 1  # 0 when the only line is torn
    else:
        # A last line that ends in a newline but is not an event (torn, then terminated by
        # a later write) is torn too.
        start = data.rfind(b"\n", 0, max(end - 1, 0)) + 1
        last = data[start:end].strip()
        if last:
            try:
                Event.from_json(last.decode("utf-8"))
            except (ValueError, KeyError, TypeError, AttributeError):
                end = start
    return end, data[:end].count(b"\n")


def repair_torn_tail(
    path: Path,
    *,
    clock: Callable[[], datetime] = _utcnow,
    append: Callable[[Path, str], object] | None = None,
) -> Repair | None:
    """Cut a torn last line off the timeline file and record the cut; None when whole.

    A timeline ends torn when its writer was killed mid-line or the disk filled during a
    write; sealing it as is would seal a line no reader can parse. The file is truncated to its
    last whole line (never through a symlink), then a warning event saying what was removed is
    appended. Damage in the middle of the file is left to ``Timeline`` (skipped and reported).
    Raises ``OSError`` when the file cannot be read or cut.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read()
    end, whole = _cut_point(data)
    if end == len(data):
        return None
    torn = data[end:]
    _truncate(path, end)
    repair = Repair(
        line=whole + 1,
        removed_bytes=len(torn),
        excerpt=torn[:160].decode("utf-8", "replace").strip(),
    )
    noted = {"repaired_line": repair.line, "removed_bytes": len(torn), "excerpt": repair.excerpt}
    event = Event(clock(), "timeline", EventKind.WARNING, repair.message(), noted)
    try:
        (append or _append_nofollow)(path, event.to_json() + "\n")
    except OSError:
        # Part of the note may have reached the file: cut again. A whole file without the
        # note beats a torn one; the caller says the repair went unrecorded.
        _truncate(path, end)
        return replace(repair, recorded=False)
    return repair


def _truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
