"""What happened during a run: typed facts on the timeline, and the one reader of them.

A step that learns something the rest of the run depends on (the decision, the target revision,
the rollback, the rollout, recovery, the outcome) records it once as a fact event
(``EventKind.FACT``, ``data["fact"]`` naming one of the classes below). ``RunFacts.read`` turns a
timeline back into those facts; ``finish``, the incident record, the post-mortem and the
salvage path all read them from there, never from step names, message text or notebook
variables, so a run re-read from its ``timeline.jsonl`` after a crash tells the same story.

The runs of one incident share its timeline; ``attempts`` keeps them apart by the run id on
their events, and ``RunFacts.read(events, run=...)`` reads one run's facts even when another
run's events interleave with them.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, dataclass_transform

from runbook_lib.core import readable
from runbook_lib.core.read_back import ReadBack
from runbook_lib.core.verdict import Verdict
from runbook_lib.record.timeline import Event, EventKind, FailureKind, Timeline

__all__ = [
    "Assessed",
    "BadPodsCaptured",
    "ClusterReadBack",
    "Confirmed",
    "Decided",
    "EarlierRunFound",
    "EvidenceLost",
    "EvidenceRoom",
    "Fact",
    "Finished",
    "FixBranchCreated",
    "LockTaken",
    "MigrationsReverted",
    "NotRecovered",
    "Outcome",
    "Recovered",
    "ReleaseChanged",
    "RollbackStarted",
    "RolledBack",
    "RolloutCompleted",
    "RunFacts",
    "StepFailure",
    "TargetResolved",
    "TracesCollected",
    "attempt_file",
    "attempt_number",
    "attempts",
    "fact_data",
    "read_fact",
    "record_fact",
]


class Outcome(StrEnum):
    """How a run ended, as the incident record and ``runbook run`` report it."""

    RECOVERED = "recovered"  # rolled back, recovery verified
    NO_ROLLBACK = "no_rollback"  # the decision: the release is healthy; nothing changed
    INCONCLUSIVE = "inconclusive"  # the data could not be judged; stopped before any change
    DECLINED = "declined"  # the person at the prompt said no; nothing changed
    DRY_RUN = "dry_run"  # every read step ran, nothing changed
    ALREADY_ROLLED_BACK = "already_rolled_back"  # an earlier run did it; nothing changed
    NOT_RECOVERED = "not_recovered"  # rolled back but the error rate did not recover: escalate
    RELEASE_CHANGED = "release_changed"  # rolled back, then someone changed the release again
    REFUSED = "refused"  # a safety check or bad input stopped the run before any change
    FAILED = "failed"  # a step failed; see ``RunFacts.changed_cluster``
    INTERRUPTED = "interrupted"  # stopped by a signal or a crash
    INCOMPLETE = "incomplete"  # the timeline ends without an ending
    ASSESSED = "assessed"  # the read-only assessment notebook ran to its end


_FACTS: dict[str, type[Fact]] = {}


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
class Fact:
    """Base of the typed facts. A subclass is a frozen dataclass whose ``NAME``, the
    ``data["fact"]`` value on the timeline, is its class name in snake case (``TargetResolved``:
    ``target_resolved``); declaring it is all it takes for ``_read_fact`` to read it back."""

    NAME: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.NAME = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
        dataclass(frozen=True)(cls)
        _FACTS[cls.NAME] = cls


class Assessed(Fact):
    deployed_at: datetime
    deployed_at_source: str  # "parameter" or "helm history revision N"
    samples: int


class Decided(Fact):
    """The "When to Rollback" decision (``decision`` is ``Decision.to_json_dict()``)."""

    verdict: Verdict
    rollback: bool  # act on it: the verdict, or a person's / the parameter's override
    deployed_at: datetime
    evaluated_at: datetime
    decision: Mapping[str, Any] = field(default_factory=dict)
    manual_reason: str = ""
    override: str = ""  # why an inconclusive verdict was acted on anyway

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Verdict(self.verdict))  # read back as text


class TargetResolved(Fact):
    current_revision: int
    current_version: str
    target_revision: int
    target_version: str
    already_rolled_back: bool
    expected_images: tuple[str, ...] = ()  # what the target's manifest runs
    # The deploy being undone, from history (not the current revision, which after an earlier
    # rollback is that rollback); 0 / "" in timelines written before it was recorded.
    bad_revision: int = 0
    bad_version: str = ""


class Confirmed(Fact):
    go_ahead: bool
    by: str  # "confirm parameter", "person at the prompt", "dry run"


class RollbackStarted(Fact):
    """``helm rollback`` is about to run: if no ``RolledBack`` follows, it was cut off."""

    from_revision: int
    to_revision: int
    command: str


class RolledBack(Fact):
    from_revision: int
    to_revision: int
    command: str


class RolloutCompleted(Fact):
    deployment: str
    done_at: datetime


class Recovered(Fact):
    recovered_at: datetime  # the sample time the metrics show recovery
    verified_at: datetime  # when this run confirmed it (the timing end point)
    last_error_ratio: float | None


class NotRecovered(Fact):
    reason: str


class MigrationsReverted(Fact):
    count: int
    from_version: int
    to_version: int


class FixBranchCreated(Fact):
    branch: str
    commit: str


class Finished(Fact):
    """How the run ended and, when it rolled back, how long decision -> recovery took (what
    the ``finish`` step returns, too)."""

    outcome: Outcome
    decision_to_rollout_s: float | None
    decision_to_recovery_s: float | None
    target_s: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", Outcome(self.outcome))  # read back as text

    @property
    def within_target(self) -> bool | None:
        """Decision -> verified recovery within the runbook's target (None: no recovery)."""
        if self.decision_to_recovery_s is None:
            return None
        return self.decision_to_recovery_s <= self.target_s

    def __repr__(self) -> str:  # the finish cell's output and the fact's timeline message
        parts = [f"Finished: {self.outcome.value}"]
        if self.decision_to_rollout_s is not None:
            parts.append(
                f"decision -> rollout complete {readable.duration(self.decision_to_rollout_s)}"
            )
        if self.decision_to_recovery_s is not None:
            verdict = "within" if self.within_target else "OVER"
            parts.append(
                f"decision -> verified recovery {readable.duration(self.decision_to_recovery_s)}"
                f" ({verdict} the {readable.duration(self.target_s)} target)"
            )
        return "; ".join(parts)


class LockTaken(Fact):
    """The run took the release's Lease; ``takeover`` says from whom and why, if anyone."""

    holder: str
    lease: str  # namespace/name
    ttl_s: float
    takeover: str = ""  # "", "stale" (its run stopped renewing) or "deliberate"
    previous_holder: str = ""
    reason: str = ""  # lock_takeover_reason, for a deliberate takeover; why, for "gone"
    # The holder process (core.run_identity.RunIdentity): a later run tells by these whether
    # this run is gone.
    run_id: str = ""
    host: str = ""
    pid: int = 0
    process_started: float = 0.0


class EarlierRunFound(Fact):
    """An earlier run of this release that never finished (it crashed), found and sealed."""

    incident_id: str
    path: str
    outcome: str  # what that run's evidence now says: "interrupted", or why it was not sealed


class ReleaseChanged(Fact):
    """The release changed under the run: its current revision is not the one rolled back to."""

    expected_revision: int
    current_revision: int
    current_version: str
    changed_at: datetime | None
    images: tuple[str, ...] = ()  # what the pods run now


class ClusterReadBack(Fact, ReadBack):
    """What the cluster says after a change step did not end cleanly, read from the cluster.

    Recorded when ``helm rollback`` was cut off (its timeout, a signal, a failure) and when a
    later run seals a run that crashed: ``helm history`` and the pods, read at ``read_at``.
    The fields of ``core.read_back.ReadBack``: ``revision``/``version``/``description``/
    ``made_at`` describe the release's newest revision; ``rollback_applied`` says whether the
    run's rollback is in the release (a revision after the one the run started from restores
    its target and was deployed); ``pod_images`` are what the pods run; ``sentence`` says it
    all for people, and every ending (record, summary, exit line, notification) uses it as it
    is.
    """

    reason: str  # why it was read: "helm rollback was started at ... and killed after 40 s"
    read_at: datetime

    @classmethod
    def of(cls, found: ReadBack, *, reason: str, read_at: datetime) -> ClusterReadBack:
        fields = {f.name: getattr(found, f.name) for f in dataclasses.fields(ReadBack)}
        return cls(reason=reason, read_at=read_at, **fields)


class BadPodsCaptured(Fact):
    """The release's pods captured just before ``helm rollback`` (``kubernetes/before-rollback/``).

    ``revision``/``version``: what those pods ran; ``started_at``: when they were listed (before
    the rollback changed anything); ``gaps``: what could not be read (a pod that vanished, the
    total bound reached); ``truncated``: logs cut at the bound; ``complete`` False when the
    capture had not finished when the run stopped waiting for it.
    """

    revision: int
    version: str
    pods: tuple[str, ...]
    gaps: tuple[str, ...]
    truncated: tuple[str, ...]
    bytes_captured: int
    started_at: datetime
    dry_run: bool = False
    complete: bool = True


class TracesCollected(Fact):
    """The trace evidence (``traces/summary.md``): collected, or why not."""

    collected: bool
    reason: str  # why not, when not collected
    service: str
    tracing_url: str
    failing: int = 0  # failing traces kept in traces/failing.json
    slowest: int = 0
    # Failing traces among those sampled, by "period / version" ("deploy window / v1.1.0").
    failing_sampled: Mapping[str, int] = field(default_factory=dict)


class EvidenceRoom(Fact):
    """Preflight's check of the evidence folder: writable, and how much room it has.

    ``problem`` is why the bundle cannot be written ("" when it can); a run refused for it
    writes nothing more than its record and manifest (they fit in the ending's reserve).
    """

    directory: str
    free_bytes: int
    needed_bytes: int
    problem: str = ""


class EvidenceLost(Fact):
    """Evidence the run could not write (``runbook run`` records it when the timeline can)."""

    what: tuple[str, ...]


def fact_data(fact: Fact) -> dict[str, Any]:
    """A fact as timeline data: JSON values, ``fact`` naming its class."""
    data: dict[str, Any] = {"fact": fact.NAME}
    for f in dataclasses.fields(fact):  # type: ignore[arg-type]
        value = getattr(fact, f.name)
        data[f.name] = value.isoformat() if isinstance(value, datetime) else value
    return data


def record_fact(
    timeline: Timeline, step: str, fact: Fact, message: str, *, run: str | None = None
) -> Event:
    """Put ``fact`` on the timeline (kind ``fact``) with a sentence for people.

    ``run``: on behalf of that run (a later run sealing a crashed one), else the timeline's.
    """
    return timeline.record_for(
        timeline.run if run is None else run, step, EventKind.FACT, message, **fact_data(fact)
    )


def read_fact(event: Event) -> Fact | None:
    """The typed fact an event carries (kind ``fact``), or None (another kind, another version)."""
    return _read_fact(event.data) if event.kind == EventKind.FACT else None


def _read_fact(data: Mapping[str, Any]) -> Fact | None:
    cls = _FACTS.get(str(data.get("fact", "")))
    if cls is None:
        return None
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        value = data[f.name]
        hint = hints[f.name]
        accepts = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        if datetime in accepts and isinstance(value, str):
            value = datetime.fromisoformat(value)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    try:
        return cls(**values)
    except (TypeError, ValueError):
        return None  # a fact written by another version of the tool: not ours to guess


@dataclass(frozen=True)
class StepFailure:
    """A step that raised: which, with what, and when."""

    step: str
    error_type: str
    message: str
    at: datetime
    kind: FailureKind

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FailureKind(self.kind))


def _failure_kind(value: object) -> FailureKind:
    try:
        return FailureKind(str(value))
    except ValueError:
        return FailureKind.OTHER  # written by another version of the tool


# The step that begins each run of an incident on its timeline.
START_STEP = "start_run"


def attempts(events: Iterable[Event]) -> list[tuple[str, list[Event]]]:
    """The runs in a timeline, in the order they first wrote to it: (run id, its events).

    An event belongs to the run whose id it carries. An event without one (a timeline written
    before runs had ids) belongs to the attempt its position says: each ``start_run`` begins
    one (keyed "#1", "#2", ...), and later events without an id join the last one begun.
    """
    groups: dict[str, list[Event]] = {}
    current: str | None = None
    legacy = 0
    for event in events:
        if event.run:
            key = event.run
        elif event.step == START_STEP:
            legacy += 1
            key = f"#{legacy}"
        else:
            key = current if current is not None else "#0"
        if event.step == START_STEP:
            current = key
        groups.setdefault(key, []).append(event)
    return list(groups.items())


def _latest_started(events: list[Event]) -> str | None:
    """The run id (or positional key) of the attempt that started last."""
    found = attempts(events)
    started = [key for key, group in found if any(e.step == START_STEP for e in group)]
    if started:
        # Ordered by first event; an attempt's first event is its start_run.
        return started[-1]
    return found[-1][0] if found else None


def attempt_number(events: Iterable[Event], run: str) -> int:
    """Which attempt of its incident the run ``run`` is (1, 2, ...), by when it started; the
    next number when it has not started (yet)."""
    started = [key for key, group in attempts(events) if any(e.step == START_STEP for e in group)]
    return started.index(run) + 1 if run in started else len(started) + 1


def attempt_file(name: str, attempt: int) -> str:
    """The file name of an attempt's executed notebook (``rollback.ipynb``, 1, 2, ...).

    The first attempt keeps the notebook's own name; a re-run of the same incident writes
    beside it (``rollback.attempt-2.ipynb``), never over an earlier attempt's.
    """
    if attempt <= 1:
        return name
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}.attempt-{attempt}.{suffix}" if dot else f"{name}.attempt-{attempt}"


# The ``RunFacts`` field each fact is read into (the last of its kind wins), and the field
# that keeps when it was recorded; ``EarlierRunFound`` and ``EvidenceLost`` accumulate.
_FIELD: dict[type[Fact], str] = {
    Assessed: "assessed",
    Decided: "decided",
    TargetResolved: "target",
    Confirmed: "confirmed",
    RollbackStarted: "rollback_started",
    RolledBack: "rolled_back",
    RolloutCompleted: "rollout",
    Recovered: "recovered",
    NotRecovered: "not_recovered",
    MigrationsReverted: "migrations",
    FixBranchCreated: "fix_branch",
    Finished: "finished",
    LockTaken: "lock",
    ReleaseChanged: "release_changed",
    BadPodsCaptured: "bad_pods",
    TracesCollected: "traces",
    ClusterReadBack: "read_back",
    EvidenceRoom: "room",
}
_WHEN: dict[type[Fact], str] = {
    Decided: "decided_at",
    RollbackStarted: "rollback_started_at",
    RolledBack: "rolled_back_at",
    LockTaken: "lock_at",
}


# Facts that happened more than once in a run (a step's cell re-run) keep the last.
@dataclass(frozen=True)
class RunFacts:
    """Everything a run established, read back from its timeline."""

    assessed: Assessed | None = None
    decided: Decided | None = None
    decided_at: datetime | None = None
    target: TargetResolved | None = None
    confirmed: Confirmed | None = None
    rollback_started: RollbackStarted | None = None
    rollback_started_at: datetime | None = None
    rolled_back: RolledBack | None = None
    rolled_back_at: datetime | None = None
    rollout: RolloutCompleted | None = None
    recovered: Recovered | None = None
    not_recovered: NotRecovered | None = None
    migrations: MigrationsReverted | None = None
    fix_branch: FixBranchCreated | None = None
    finished: Finished | None = None
    failures: tuple[StepFailure, ...] = ()
    dry_run: bool = False
    started_at: datetime | None = None
    earlier_rollback: RolledBack | None = None  # by an earlier attempt of the same incident
    lock: LockTaken | None = None
    lock_at: datetime | None = None  # when the run (last) took the lock
    earlier_runs: tuple[EarlierRunFound, ...] = ()  # crashed runs this one found and sealed
    release_changed: ReleaseChanged | None = None
    bad_pods: BadPodsCaptured | None = None
    traces: TracesCollected | None = None
    read_back: ClusterReadBack | None = None  # the cluster as read after a change cut off
    room: EvidenceRoom | None = None  # preflight's check of the evidence folder
    lost: tuple[str, ...] = ()  # evidence that could not be written (EvidenceLost facts)
    run: str = ""  # the run these facts are of (its id; "#n" for a timeline without ids)

    @classmethod
    def read(cls, events: Iterable[Event], *, run: str | None = None) -> RunFacts:
        """The facts of one run in ``events``: ``run`` (its id), else the latest started.

        Runs of the same incident share the timeline (``attempts``); a rollback made by a run
        whose events come before this run's first one is ``earlier_rollback``. A ``run``
        with no events in ``events`` has no facts.
        """
        listed = list(events)
        key = run if run is not None else _latest_started(listed)
        own = [e for k, group in attempts(listed) if k == key for e in group]
        found: dict[str, Any] = {"failures": [], "earlier_runs": [], "lost": [], "run": key or ""}
        if own:
            first = next(i for i, e in enumerate(listed) if e is own[0])
            for event in listed[:first]:
                fact = _read_fact(event.data) if event.kind == EventKind.FACT else None
                if isinstance(fact, RolledBack):
                    found["earlier_rollback"] = fact
        for event in own:
            if event.step == START_STEP:
                found["started_at"] = event.at
                found["dry_run"] = bool(event.data.get("dry_run", False))
            if event.kind == EventKind.STEP_FAILED:
                found["failures"].append(
                    StepFailure(
                        step=event.step,
                        error_type=str(event.data.get("error_type", "")),
                        message=event.message,
                        at=event.at,
                        kind=_failure_kind(event.data.get("error_kind")),
                    )
                )
            if event.kind != EventKind.FACT:
                continue
            fact = _read_fact(event.data)
            if isinstance(fact, EarlierRunFound):
                found["earlier_runs"].append(fact)
            elif isinstance(fact, EvidenceLost):
                found["lost"] += [w for w in fact.what if w not in found["lost"]]
            elif fact is not None and type(fact) in _FIELD:
                found[_FIELD[type(fact)]] = fact
                if type(fact) in _WHEN:
                    found[_WHEN[type(fact)]] = event.at
        for name in ("failures", "earlier_runs", "lost"):
            found[name] = tuple(found[name])
        return cls(**found)

    @property
    def rolling_back(self) -> bool:
        """False once the decision (or a stop on an inconclusive verdict) says "do nothing"."""
        return self.decided is None or self.decided.rollback

    @property
    def deployed_at(self) -> datetime | None:
        if self.decided is not None:
            return self.decided.deployed_at
        return self.assessed.deployed_at if self.assessed else None

    @property
    def rollback_applied(self) -> bool:
        """Whether this run's rollback is in the release: helm reported it, or, when helm was
        cut off, the cluster read back says so."""
        return self.rolled_back is not None or (
            self.read_back is not None and self.read_back.rollback_applied
        )

    @property
    def changed_cluster(self) -> bool:
        """Whether any attempt of this incident changed the release (a rollback applied)."""
        return self.rollback_applied or self.earlier_rollback is not None

    @property
    def cut_off(self) -> bool:
        """``helm rollback`` started and neither reported back nor was the cluster read back:
        what it did is unknown until someone reads the release (``steps.read_back``)."""
        return (
            self.rollback_started is not None
            and self.rolled_back is None
            and self.read_back is None
        )

    @property
    def ended(self) -> bool:
        """The run wrote its own ending: a ``Finished`` fact, or a failed step since it last
        took the lock (a failing step gives the lock back; a cell re-run by hand after a
        failure takes it again, and the run goes on)."""
        if self.finished is not None:
            return True
        failure = self.failure
        if failure is None:
            return False
        return self.lock_at is None or failure.at >= self.lock_at

    @property
    def failure(self) -> StepFailure | None:
        return self.failures[-1] if self.failures else None

    @property
    def outcome(self) -> Outcome:
        """How the run ended: the one place that works it out from the facts."""
        if self.finished is not None:
            return self.finished.outcome
        failure = self.failure
        if failure is not None and failure.kind is FailureKind.INTERRUPTED:
            return Outcome.INTERRUPTED
        decided = self.decided
        if decided is not None and not decided.rollback:
            if decided.verdict is Verdict.INCONCLUSIVE:
                return Outcome.INCONCLUSIVE
            return Outcome.NO_ROLLBACK
        if self.release_changed is not None:
            return Outcome.RELEASE_CHANGED
        if self.not_recovered is not None:
            return Outcome.NOT_RECOVERED
        if failure is not None:
            before_any_change = (FailureKind.PRECONDITION, FailureKind.PARAMETER)
            if failure.kind in before_any_change and self.rolled_back is None:
                if self.confirmed is not None and not self.confirmed.go_ahead:
                    return Outcome.DECLINED
                return Outcome.REFUSED
            return Outcome.FAILED
        if self.dry_run:
            return Outcome.DRY_RUN
        if self.recovered is not None:
            if self.rolled_back is None and self.target and self.target.already_rolled_back:
                return Outcome.ALREADY_ROLLED_BACK
            return Outcome.RECOVERED
        if self.target is not None and self.target.already_rolled_back and not self.rolled_back:
            return Outcome.ALREADY_ROLLED_BACK
        return Outcome.INCOMPLETE

    def seconds_from_decision(self, moment: datetime | None) -> float | None:
        if self.decided_at is None or moment is None:
            return None
        return (moment - self.decided_at).total_seconds()
