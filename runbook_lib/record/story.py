"""How a run is told to people: the headline of its ending and a timeline of what happened.

The incident record, the post-mortem draft and the notebooks' banner say the same thing in the
same words, so each takes them from here: ``headline(ending)`` is the one line a person reads
first ("Rolled back, recovered"), with its tone (green, red, amber); ``story(events)`` is the
run's facts as dated sentences ("Rolled back revision 2 -> 1", "5xx ratio back under 0.1 % at
12:03:10"), never a step's name followed by "finished". Figures go through ``core.readable``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from runbook_lib.core import readable
from runbook_lib.core.verdict import Verdict
from runbook_lib.record.ending import Cluster, Ending
from runbook_lib.record.facts import (
    START_STEP,
    Assessed,
    BadPodsCaptured,
    ClusterReadBack,
    Confirmed,
    Decided,
    EarlierRunFound,
    EvidenceLost,
    Fact,
    Finished,
    FixBranchCreated,
    LockTaken,
    MigrationsReverted,
    NotRecovered,
    Outcome,
    Recovered,
    ReleaseChanged,
    RollbackStarted,
    RolledBack,
    RolloutCompleted,
    RunFacts,
    TargetResolved,
    TracesCollected,
    attempts,
    read_fact,
)
from runbook_lib.record.timeline import Event, EventKind

__all__ = ["Headline", "Moment", "Tone", "headline", "story"]


class Tone(StrEnum):
    """How the headline should strike a reader: all is well, act now, look, or not yet known."""

    GOOD = "good"  # green
    BAD = "bad"  # red
    WARN = "warn"  # amber
    PENDING = "pending"  # grey: the run has not ended


@dataclass(frozen=True)
class Headline:
    words: str
    tone: Tone


_VERDICT = {
    Verdict.ROLLBACK: "roll back",
    Verdict.NO_ROLLBACK: "no rollback",
    Verdict.INCONCLUSIVE: "inconclusive",
}


# The endings whose headline needs nothing but the outcome.
_SAID_AS_IS = {
    Outcome.RECOVERED: Headline("Rolled back, recovered", Tone.GOOD),
    Outcome.NOT_RECOVERED: Headline("Rolled back, NOT recovered: escalated", Tone.BAD),
    Outcome.RELEASE_CHANGED: Headline(
        "Rolled back, then the release was changed by someone else", Tone.BAD
    ),
    Outcome.NO_ROLLBACK: Headline("Not rolled back: healthy", Tone.GOOD),
    Outcome.INCONCLUSIVE: Headline(
        "Not rolled back: inconclusive, the data cannot be judged", Tone.WARN
    ),
    Outcome.DECLINED: Headline("Not rolled back: declined at the prompt", Tone.WARN),
    Outcome.ALREADY_ROLLED_BACK: Headline("Already rolled back: nothing to do", Tone.GOOD),
}


def headline(ending: Ending) -> Headline:
    """What happened, in a few words: the banner's text and the record's first line."""
    outcome, failure = ending.outcome, ending.failure
    where = f" in {failure.step}" if failure is not None else ""
    why = f" ({failure.error_type})" if failure is not None and failure.error_type else ""
    if ending.cluster is Cluster.NOT_KNOWN:
        return Headline(
            f"Stopped{where}: the release's state is NOT KNOWN, read `helm history`", Tone.BAD
        )
    if outcome in _SAID_AS_IS:
        return _SAID_AS_IS[outcome]
    if outcome is Outcome.DRY_RUN:
        verdict = _VERDICT.get(ending.verdict, "none") if ending.verdict else "none"
        return Headline(f"Dry run (verdict: {verdict}): nothing changed", Tone.PENDING)
    if outcome is Outcome.REFUSED:
        return Headline(f"Refused{where}{why}: nothing changed", Tone.WARN)
    if outcome is Outcome.ASSESSED:
        return Headline("Assessed: nothing changed", Tone.PENDING)
    stopped = {
        Outcome.INTERRUPTED: "Interrupted",
        Outcome.INCOMPLETE: "Stopped without an ending",
    }.get(outcome, "Failed")
    if ending.changed_cluster:
        return Headline(f"Rolled back, then {stopped.lower()}{where}{why}", Tone.BAD)
    return Headline(f"{stopped}{where}{why}: nothing changed", Tone.BAD)


@dataclass(frozen=True)
class Moment:
    """One thing that happened, when: a sentence for people."""

    at: datetime
    sentence: str


def _revisions(a: int, b: int) -> str:
    return f"revision {a} -> {b}"


def _trigger_moments(decided: Decided) -> list[Moment]:
    found: list[Moment] = []
    for trigger in decided.decision.get("triggers", ()):
        if not isinstance(trigger, Mapping):
            continue
        fired = _time(trigger.get("fired_at"))
        if fired is None:
            continue
        metric = str(trigger.get("metric", ""))
        if metric == "manual":
            found.append(Moment(fired, f"Rollback called by hand: {trigger.get('reason', '')}"))
            continue
        found.append(
            Moment(
                fired,
                f"Rule {trigger.get('rule')} fired on {metric}: peak "
                f"{readable.metric_value(metric, _float(trigger.get('peak')))}, threshold "
                f"{readable.metric_value(metric, _float(trigger.get('threshold')))}",
            )
        )
    return found


def _decision(decided: Decided) -> str:
    verdict = _VERDICT.get(decided.verdict, str(decided.verdict))
    if decided.rollback and decided.verdict is not Verdict.ROLLBACK:
        why = decided.manual_reason or decided.override or "by hand"
        return f"Decision: {verdict}; rolling back all the same ({why})"
    if decided.rollback:
        return "Decision: roll back"
    return f"Decision: {verdict}; nothing to roll back"


def _of_fact(fact: Fact, at: datetime, recovery_threshold: float | None) -> list[Moment]:
    """The sentence(s) one fact tells, at its own moment where it carries one."""
    if isinstance(fact, Decided):
        return [*_trigger_moments(fact), Moment(at, _decision(fact))]
    sentence = _sentence(fact, recovery_threshold)
    return [Moment(_when(fact, at), sentence)] if sentence else []


def _when(fact: Fact, recorded_at: datetime) -> datetime:
    """When what a fact tells happened: its own time where it carries one (the deploy, the
    rollout's end, the recovery, the read-back), else when it was recorded."""
    if isinstance(fact, Assessed):
        return fact.deployed_at
    if isinstance(fact, RolloutCompleted):
        return fact.done_at
    if isinstance(fact, Recovered):
        return fact.recovered_at
    if isinstance(fact, ClusterReadBack):
        return fact.read_at
    return recorded_at


def _sentence(fact: Fact, recovery_threshold: float | None) -> str:
    """What one fact tells a person; empty for a fact that is not news."""
    if isinstance(fact, LockTaken):
        how = {
            "stale": ", taken over from a run that stopped renewing",
            "deliberate": f", taken over deliberately ({fact.reason})",
            "gone": f", taken over at once ({fact.reason})",
        }.get(fact.takeover, "")
        return f"Lock {fact.lease} taken{how}"
    if isinstance(fact, Assessed):
        return f"Deployed (from the {fact.deployed_at_source}); {fact.samples} samples read"
    if isinstance(fact, TargetResolved):
        if fact.already_rolled_back:
            return f"Already on the good revision {fact.current_revision}"
        return (
            f"Target: {_revisions(fact.current_revision, fact.target_revision)} "
            f"({fact.current_version} -> {fact.target_version})"
        )
    if isinstance(fact, Confirmed):
        return f"{'Go-ahead' if fact.go_ahead else 'Declined'} ({fact.by})"
    if isinstance(fact, RollbackStarted):
        return f"helm rollback started: {_revisions(fact.from_revision, fact.to_revision)}"
    if isinstance(fact, RolledBack):
        return f"Rolled back {_revisions(fact.from_revision, fact.to_revision)}"
    if isinstance(fact, RolloutCompleted):
        return f"Rollout of deployment/{fact.deployment} complete"
    if isinstance(fact, Recovered):
        under = (
            "" if recovery_threshold is None else f" under {readable.percent(recovery_threshold)}"
        )
        last = (
            ""
            if fact.last_error_ratio is None
            else f" (last sample {readable.percent(fact.last_error_ratio)})"
        )
        return f"5xx ratio back{under}{last}"
    if isinstance(fact, NotRecovered):
        return f"Recovery NOT verified: {fact.reason}"
    if isinstance(fact, MigrationsReverted):
        return (
            f"Reverted {fact.count} migration(s): schema {fact.from_version} -> {fact.to_version}"
        )
    if isinstance(fact, FixBranchCreated):
        return f"Fix-forward branch {fact.branch} created"
    if isinstance(fact, Finished):
        return _finished(fact)
    if isinstance(fact, EarlierRunFound):
        return f"Earlier run found and sealed: {fact.path} ({fact.outcome})"
    if isinstance(fact, ReleaseChanged):
        return (
            f"Release changed under the run: now revision {fact.current_revision} "
            f"({fact.current_version}), not {fact.expected_revision}"
        )
    if isinstance(fact, ClusterReadBack):
        return f"Cluster read back: {fact.sentence}"
    if isinstance(fact, BadPodsCaptured):
        return f"Captured {len(fact.pods)} pod(s) of revision {fact.revision} before the rollback"
    if isinstance(fact, TracesCollected):
        if fact.collected:
            return f"Traces collected: {fact.failing} failing, {fact.slowest} slowest"
        return f"Traces not collected: {fact.reason}"
    if isinstance(fact, EvidenceLost):
        return f"Evidence lost: {', '.join(fact.what)}"
    return ""


def _finished(fact: Finished) -> str:
    words = f"Run finished: {fact.outcome.value}"
    if fact.decision_to_recovery_s is not None:
        met = "within" if fact.decision_to_recovery_s <= fact.target_s else "OVER"
        words += (
            f"; decision to verified recovery {readable.duration(fact.decision_to_recovery_s)}"
            f" ({met} the {readable.duration(fact.target_s)} target)"
        )
    return words


def story(
    events: Sequence[Event], *, run: str | None = None, recovery_threshold: float | None = None
) -> tuple[Moment, ...]:
    """What happened in the run (``run``: its id, else the latest started), oldest first.

    Facts, failures, warnings and dry-run notes; a step's start and end are not news.
    ``recovery_threshold``: the 5xx ratio recovery was judged against, for its sentence.
    """
    key = RunFacts.read(events, run=run).run
    own: Iterable[Event] = next((group for k, group in attempts(events) if k == key), [])
    found: list[Moment] = []
    for event in own:
        if event.kind == EventKind.FACT:
            fact = read_fact(event)
            if fact is not None:
                found += _of_fact(fact, event.at, recovery_threshold)
        elif event.step == START_STEP and event.kind in (EventKind.INFO, EventKind.STEP_START):
            found.append(
                Moment(event.at, "Dry run started" if event.data.get("dry_run") else "Run started")
            )
        elif event.kind == EventKind.STEP_FAILED:
            found.append(Moment(event.at, event.message))  # "<step> failed: <Error>: ..."
        elif event.kind == EventKind.WARNING:
            found.append(Moment(event.at, f"Warning ({event.step}): {event.message}"))
        elif event.kind == EventKind.DRY_RUN:
            found.append(Moment(event.at, f"Dry run ({event.step}): {event.message}"))
    # One line each: a message may carry a command's output on lines of its own.
    told = (Moment(m.at, " ".join(m.sentence.split())) for m in found)
    return tuple(sorted(told, key=lambda m: m.at))


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
