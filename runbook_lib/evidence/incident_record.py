"""The incident record (Post-Rollback Actions, step 1), built from the timeline and the samples.

Never from notebook variables: a run that crashed half-way, or a run re-assembled by
``runbook run`` from outside the kernel, gives the same record from the same timeline file.
The timeline keys this module reads are listed in docs/CONTRACTS.md ("Timeline events").
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from runbook_lib.core import readable
from runbook_lib.core.redact import redact_structure
from runbook_lib.evidence import files
from runbook_lib.record.ending import Cluster, Ending
from runbook_lib.record.facts import (
    START_STEP,
    Outcome,
    RunFacts,
    attempt_file,
    attempts,
    fact_data,
)
from runbook_lib.record.story import Moment, headline, story
from runbook_lib.record.timeline import Event, EventKind

__all__ = [
    "Impact",
    "IncidentRecord",
    "Outcome",
    "StepTiming",
    "build_record",
    "load_record",
    "write_record",
]

REQUEST_RATE = "request_rate_rps"  # optional samples column: all requests per second


@dataclass(frozen=True)
class StepTiming:
    step: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    status: str  # "done", "failed", "skipped", "dry_run", "running"
    message: str = ""


@dataclass(frozen=True)
class Impact:
    """What users felt between the deploy and recovery (or the last sample)."""

    window_start: datetime | None
    window_end: datetime | None
    minutes_above_threshold: float
    failed_requests: float | None  # None when no request rate is known
    peak_error_ratio: float | None
    peak_p99_latency_s: float | None
    error_threshold: float
    # The 5xx ratio's mean over the window, over the samples before the deploy, and after
    # recovery (None: no sample there).
    mean_error_ratio: float | None = None
    before_error_ratio: float | None = None
    after_error_ratio: float | None = None


@dataclass(frozen=True)
class IncidentRecord:
    incident_id: str
    release: str
    namespace: str
    outcome: Outcome
    verdict: str | None  # the decision's verdict: rollback, no_rollback, inconclusive
    # Whether any attempt of this incident changed the release; None when it is not known
    # (helm rollback started and did not end cleanly, and the release was not read back).
    rolled_back: bool | None
    rolled_back_by_this_run: bool  # this attempt ran it (else an earlier attempt, or none)
    deployed_at: datetime | None
    decision_at: datetime | None
    rollout_done_at: datetime | None
    recovered_at: datetime | None
    time_to_detection_s: float | None  # deploy -> first rule fired (metric time)
    time_to_decision_s: float | None  # deploy -> decision (wall clock of the run)
    decision_to_recovery_s: float | None
    target_s: float  # the decision -> recovery target (parameter ``target``)
    within_target: bool | None  # decision -> recovery under target_s
    bad_version: str | None
    good_version: str | None
    bad_revision: int | None
    good_revision: int | None
    triggers: tuple[Mapping[str, Any], ...]
    rules: tuple[Mapping[str, Any], ...]  # every rule's status and why (the decision's "rules")
    warnings: tuple[str, ...]
    impact: Impact
    steps: tuple[StepTiming, ...]
    root_cause_hypothesis: str
    timeline: tuple[Event, ...] = field(repr=False)
    # The lock (who held it, any takeover and why) and crashed earlier runs found and sealed.
    lock: Mapping[str, Any] | None = None
    earlier_runs: tuple[Mapping[str, Any], ...] = ()
    release_changed: Mapping[str, Any] | None = None
    # The bad release's pods captured before the rollback, and the trace evidence (or why not).
    bad_pods: Mapping[str, Any] | None = None
    traces: Mapping[str, Any] | None = None
    # What the cluster said when read back after helm was cut off or the run crashed.
    cluster_read_back: Mapping[str, Any] | None = None
    # What happened to the release, in the run's Ending's words (the same as `runbook run`).
    cluster: str = ""
    cluster_change: Cluster = Cluster.NOT_CHANGED
    # Every attempt of the incident, oldest first: its number, start, outcome, what it did to
    # the release and its executed notebook's file.
    attempts: tuple[Mapping[str, Any], ...] = ()
    # The ending in a few words (``record.story.headline``) and what happened, as sentences.
    headline: str = ""
    story: tuple[Moment, ...] = ()
    recovery_threshold: float | None = None  # the 5xx ratio recovery was judged against

    @property
    def failed_steps(self) -> tuple[StepTiming, ...]:
        return tuple(s for s in self.steps if s.status == "failed")

    def slow_steps(self, *, slow_s: float = 60.0) -> tuple[StepTiming, ...]:
        return tuple(s for s in self.steps if s.duration_s is not None and s.duration_s > slow_s)

    def to_json_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["timeline"] = [json.loads(e.to_json()) for e in self.timeline]
        data: dict[str, Any] = json.loads(json.dumps(raw, default=_json_default))
        return data


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _step_timings(events: Sequence[Event]) -> tuple[StepTiming, ...]:
    timings: list[StepTiming] = []
    open_: dict[str, Event] = {}
    for event in events:
        if event.kind == EventKind.STEP_START:
            open_[event.step] = event
        elif event.kind in (EventKind.STEP_END, EventKind.STEP_FAILED):
            start = open_.pop(event.step, None)
            status = "failed" if event.kind == EventKind.STEP_FAILED else "done"
            if status == "done" and event.data.get("skipped"):
                status = "skipped"
            elif status == "done" and any(
                e.step == event.step and e.kind == EventKind.DRY_RUN for e in events
            ):
                status = "dry_run"
            begun = start.at if start else event.at
            timings.append(
                StepTiming(
                    event.step,
                    begun,
                    event.at,
                    (event.at - begun).total_seconds(),
                    status,
                    event.message if status == "failed" else "",
                )
            )
    timings.extend(StepTiming(s, e.at, None, None, "running") for s, e in open_.items())
    return tuple(sorted(timings, key=lambda t: t.started_at))


def _mean(values: pd.Series) -> float | None:
    mean = values.mean()
    return None if math.isnan(mean) else float(mean)


def _impact(
    samples: pd.DataFrame,
    *,
    start: datetime | None,
    end: datetime | None,
    error_threshold: float,
    request_rate_rps: float | None,
    recovered_at: datetime | None = None,
) -> Impact:
    frame = samples
    if frame.empty or "error_ratio" not in frame:  # no samples (a crashed run's record)
        return Impact(start, end, 0.0, None, None, None, error_threshold)
    everything = frame["error_ratio"]
    before = _mean(everything[everything.index < pd.Timestamp(start)]) if start else None
    after = (
        _mean(everything[everything.index > pd.Timestamp(recovered_at)]) if recovered_at else None
    )
    if start is not None:
        frame = frame[frame.index >= pd.Timestamp(start)]
    if end is not None:
        frame = frame[frame.index <= pd.Timestamp(end)]
    if frame.empty or "error_ratio" not in frame:
        return Impact(start, end, 0.0, None, None, None, error_threshold)
    spacing = pd.Series(frame.index).diff().dt.total_seconds().median()
    step_s = float(spacing) if not math.isnan(spacing) else 0.0
    errors = frame["error_ratio"]
    above = int((errors > error_threshold).sum())
    failed: float | None = None
    if REQUEST_RATE in frame and frame[REQUEST_RATE].notna().any():
        failed = float((errors * frame[REQUEST_RATE]).sum() * step_s)
    elif request_rate_rps is not None:
        failed = float(errors.sum() * request_rate_rps * step_s)
    p99 = frame["p99_latency_s"].max() if "p99_latency_s" in frame else float("nan")
    return Impact(
        window_start=start,
        window_end=end,
        minutes_above_threshold=above * step_s / 60.0,
        failed_requests=None if failed is None else round(failed, 1),
        peak_error_ratio=None if math.isnan(errors.max()) else float(errors.max()),
        peak_p99_latency_s=None if math.isnan(p99) else float(p99),
        error_threshold=error_threshold,
        mean_error_ratio=_mean(errors),
        before_error_ratio=before,
        after_error_ratio=after,
    )


def build_record(
    events: Sequence[Event],
    samples: pd.DataFrame,
    *,
    incident_id: str,
    release: str,
    namespace: str,
    error_threshold: float = 0.01,
    target_s: float = 300.0,
    request_rate_rps: float | None = None,
    root_cause_hypothesis: str = "",
    now: datetime,
    run: str | None = None,
    recovery_threshold: float | None = None,
) -> IncidentRecord:
    """Assemble the incident record (Post-Rollback Actions, step 1) from what the run recorded.

    Every fact (outcome, verdict, revisions, times) comes from ``RunFacts.read(events)``.
    ``samples`` are the metric samples of the whole run (a ``request_rate_rps`` column, or the
    ``request_rate_rps`` argument, turns "minutes above threshold" into failed requests).
    ``now`` ends the impact window when the service never recovered. ``run`` is the run the
    record is of (its id; None: the latest started): the runs of an incident share its
    timeline. ``recovery_threshold``: the 5xx ratio recovery is judged against (its
    sentence in the story). Raises nothing: missing facts leave the matching fields ``None``,
    so a partial run still gets a record.
    """
    facts = RunFacts.read(events, run=run)
    ending = Ending.read(facts)
    latest = [e for key, group in attempts(events) if key == facts.run for e in group]
    decided = facts.decided
    deployed_at = facts.deployed_at
    decision_at = facts.decided_at
    outcome = ending.outcome
    recovered_at = facts.recovered.recovered_at if facts.recovered else None
    to_decision = (
        (decision_at - deployed_at).total_seconds() if decision_at and deployed_at else None
    )
    to_recovery = facts.seconds_from_decision(
        facts.recovered.verified_at if facts.recovered else None
    )
    decision = dict(decided.decision) if decided else {}
    triggers = [t for t in decision.get("triggers", ()) if isinstance(t, Mapping)]
    fired = sorted(f for f in (_as_time(t.get("fired_at")) for t in triggers) if f is not None)
    to_detection = (fired[0] - deployed_at).total_seconds() if fired and deployed_at else None
    target = facts.target
    rollback = facts.rolled_back or facts.earlier_rollback or facts.rollback_started
    bad_revision = rollback.from_revision if rollback else None
    good_revision = rollback.to_revision if rollback else None
    if target is not None and rollback is None:
        # The deploy being undone as history showed it; the current revision may be an
        # earlier rollback (timelines before bad_revision was recorded: the current one).
        bad_revision = target.bad_revision or target.current_revision
        good_revision = target.target_revision
    # Versions by revision from every attempt's resolved target: a re-run that finds the work
    # done sees only the good version, the earlier attempt saw the bad one.
    versions = _versions_by_revision(events)
    bad_version = versions.get(bad_revision) if bad_revision is not None else None
    good_version = versions.get(good_revision) if good_revision is not None else None
    return IncidentRecord(
        incident_id=incident_id,
        release=release,
        namespace=namespace,
        outcome=outcome,
        verdict=ending.verdict.value if ending.verdict is not None else None,
        rolled_back=ending.changed_cluster,
        rolled_back_by_this_run=facts.rollback_applied,
        deployed_at=deployed_at,
        decision_at=decision_at,
        rollout_done_at=facts.rollout.done_at if facts.rollout else None,
        recovered_at=recovered_at,
        time_to_detection_s=to_detection,
        time_to_decision_s=to_decision,
        decision_to_recovery_s=to_recovery,
        target_s=target_s,
        within_target=None if to_recovery is None else to_recovery <= target_s,
        bad_version=bad_version,
        good_version=good_version,
        bad_revision=bad_revision,
        good_revision=good_revision,
        triggers=tuple(triggers),
        rules=tuple(r for r in decision.get("rules", ()) if isinstance(r, Mapping)),
        warnings=tuple(str(w) for w in decision.get("warnings", ())),
        impact=_impact(
            samples,
            start=deployed_at,
            end=recovered_at or now,
            error_threshold=error_threshold,
            request_rate_rps=request_rate_rps,
            recovered_at=recovered_at,
        ),
        steps=_step_timings(latest),
        root_cause_hypothesis=root_cause_hypothesis,
        timeline=tuple(latest),
        lock=fact_data(facts.lock) if facts.lock else None,
        earlier_runs=tuple(fact_data(run) for run in facts.earlier_runs),
        release_changed=fact_data(facts.release_changed) if facts.release_changed else None,
        bad_pods=fact_data(facts.bad_pods) if facts.bad_pods else None,
        traces=fact_data(facts.traces) if facts.traces else None,
        cluster_read_back=fact_data(facts.read_back) if facts.read_back else None,
        cluster=ending.cluster_sentence,
        cluster_change=ending.cluster,
        attempts=_attempts(events),
        headline=headline(ending).words,
        story=story(events, run=facts.run, recovery_threshold=recovery_threshold),
        recovery_threshold=recovery_threshold,
    )


def _attempts(events: Sequence[Event]) -> tuple[Mapping[str, Any], ...]:
    """Each run of the incident that started (they share its timeline), oldest first."""
    found: list[Mapping[str, Any]] = []
    started = [
        (key, group) for key, group in attempts(events) if any(e.step == START_STEP for e in group)
    ]
    for number, (key, group) in enumerate(started, start=1):
        ending = Ending.read(RunFacts.read(events, run=key))
        begun = next(e for e in group if e.step == START_STEP)
        found.append(
            {
                "attempt": number,
                "run": key,
                "started_at": begun.at.isoformat(),
                "outcome": ending.outcome.value,
                "cluster": ending.cluster_sentence,
                "notebook": attempt_file("rollback.ipynb", number),
            }
        )
    return tuple(found)


_OUTCOME_TEXT = {
    Outcome.RECOVERED: "rolled back, and the error rate recovered",
    Outcome.NO_ROLLBACK: "the metrics say the release is healthy; nothing was changed",
    Outcome.INCONCLUSIVE: "the data could not be judged; stopped before any change",
    Outcome.DECLINED: "the rollback was declined at the prompt; nothing was changed",
    Outcome.DRY_RUN: "rehearsal: every read step ran, nothing was changed",
    Outcome.ALREADY_ROLLED_BACK: "the release already ran the good revision; nothing changed",
    Outcome.NOT_RECOVERED: "rolled back, but recovery is NOT verified: escalate",
    Outcome.RELEASE_CHANGED: "rolled back, then the release was changed again by someone else",
    Outcome.REFUSED: "a safety check or bad input stopped the run before any change",
    Outcome.FAILED: "a step failed",
    Outcome.INTERRUPTED: "the run was interrupted",
    Outcome.INCOMPLETE: "the run stopped without an ending",
    Outcome.ASSESSED: "the read-only assessment ran; nothing was changed",
}


def _versions_by_revision(events: Sequence[Event]) -> dict[int, str]:
    """Each revision's version, from every attempt's resolved target (read as facts)."""
    versions: dict[int, str] = {}
    for key, _ in attempts(events):
        target = RunFacts.read(events, run=key).target
        if target is not None:
            versions.setdefault(target.current_revision, target.current_version)
            versions.setdefault(target.target_revision, target.target_version)
            if target.bad_revision:
                versions.setdefault(target.bad_revision, target.bad_version)
    return versions


def _release_line(record: IncidentRecord) -> str:
    bad = f"{record.bad_version or 'n/a'} (revision {record.bad_revision or 'n/a'})"
    good = f"{record.good_version or 'n/a'} (revision {record.good_revision or 'n/a'})"
    if record.cluster_change is Cluster.NOT_KNOWN:
        return f"- Cluster: {record.cluster}"  # never "nothing was rolled back" of a cut-off helm
    read = record.cluster_read_back
    if record.rolled_back_by_this_run:
        how = " (confirmed by reading the cluster back)" if read else ""
        return f"- Bad release: {bad}; rolled back to {good}{how}"
    if record.rolled_back:
        return (
            f"- Rolled back by an earlier attempt of this incident: {bad} to {good}; "
            "this attempt changed nothing"
        )
    if record.outcome is Outcome.ALREADY_ROLLED_BACK:
        return f"- Release already on {good}: nothing was rolled back by this run"
    if read:
        return f"- Rollback not applied (the cluster read back below): {bad}; the target was {good}"
    if record.bad_revision is not None:
        return f"- Nothing was rolled back: current {bad}; the target would have been {good}"
    return "- Nothing was rolled back"


def _cell(text: str) -> str:
    """Text that stays in its Markdown table cell: one line, no column bar."""
    return " ".join(text.split()).replace("|", "/")


def _fmt_t(value: datetime | None) -> str:
    return readable.instant(value)


def _figure(metric: str, value: object) -> str:
    return readable.metric_value(metric, float(value) if isinstance(value, int | float) else None)


def _lock_lines(record: IncidentRecord) -> list[str]:
    """The lock, any takeover, a release changed under the run, and crashed runs found."""
    lines: list[str] = []
    read = record.cluster_read_back
    if read:
        when = _as_time(read.get("read_at"))
        lines.append(f"- Cluster read back at {_fmt_t(when)}: {read.get('sentence')}")
    lock = record.lock
    if lock:
        line = f"- Lock: Lease {lock.get('lease')} held as {lock.get('holder')}"
        if lock.get("takeover") == "deliberate":
            line += (
                f"; taken over deliberately from {lock.get('previous_holder')} "
                f"(reason: {lock.get('reason')})"
            )
        elif lock.get("takeover") == "stale":
            line += f"; taken over from {lock.get('previous_holder')}, whose run stopped renewing"
        elif lock.get("takeover") == "gone":
            line += f"; taken over at once from {lock.get('previous_holder')}: {lock.get('reason')}"
        lines.append(line)
    changed = record.release_changed
    if changed:
        lines.append(
            f"- Release changed under the run: now revision {changed.get('current_revision')}"
            f" ({changed.get('current_version')}, {changed.get('changed_at') or 'time unknown'}),"
            f" not revision {changed.get('expected_revision')} this run rolled back to"
        )
    lines += [
        f"- Earlier run found: incident {run.get('incident_id')}, evidence {run.get('path')}"
        f" (outcome: {run.get('outcome')})"
        for run in record.earlier_runs
    ]
    return lines


def _evidence_lines(record: IncidentRecord) -> list[str]:
    """What was captured before the rollback, and the traces (linked), or why not."""
    lines = ["", "## Evidence of the bad release", ""]
    captured = record.bad_pods
    if captured:
        pods = list(captured.get("pods") or ())
        cut = list(captured.get("truncated") or ())
        when = _fmt_t(_as_time(captured.get("started_at")))
        rehearsal = " (dry run: captured all the same)" if captured.get("dry_run") else ""
        lines.append(
            f"- Before the rollback{rehearsal}: {len(pods)} pod(s) of revision"
            f" {captured.get('revision')} ({captured.get('version') or 'n/a'}) listed at {when},"
            f" {captured.get('bytes_captured', 0)} bytes of their logs since the deploy in"
            " [kubernetes/before-rollback/](kubernetes/before-rollback/capture.json)"
            + (f"; {len(cut)} log(s) cut at the bound" if cut else "")
            + ("" if captured.get("complete", True) else "; the capture did NOT finish")
        )
        lines += [f"  - {pod}" for pod in pods]
        lines += [f"  - gap: {gap}" for gap in captured.get("gaps") or ()]
        lines.append(
            "- Which pods ran which revision:"
            " [kubernetes/pods-by-revision.json](kubernetes/pods-by-revision.json)"
        )
    else:
        lines.append("- Before the rollback: nothing captured (no rollback by this run)")
    traces = record.traces
    if traces is None:
        lines.append("- Traces: not collected by this run")
    elif traces.get("collected"):
        failing = "; ".join(
            f"{key}: {count}" for key, count in (traces.get("failing_sampled") or {}).items()
        )
        lines.append(
            f"- Traces of `{traces.get('service')}`: [traces/summary.md](traces/summary.md);"
            f" {traces.get('failing')} failing and {traces.get('slowest')} slowest kept in full"
            + (f"; failing among those sampled ({failing})" if failing else "")
        )
    else:
        lines.append(
            f"- Traces were not collected: {traces.get('reason')}"
            " ([traces/summary.md](traces/summary.md))"
        )
    return lines


def _attempt_lines(record: IncidentRecord) -> list[str]:
    """Earlier attempts of the incident, each with its ending and notebook (a re-run)."""
    if len(record.attempts) < 2:
        return []
    lines = [f"- Attempts of this incident: {len(record.attempts)}, this one the last"]
    lines += [
        f"  - attempt {a.get('attempt')} ({a.get('started_at')}): {a.get('outcome')}; "
        f"cluster: {a.get('cluster')}; notebook [{a.get('notebook')}]({a.get('notebook')})"
        for a in record.attempts
    ]
    return lines


# A step's state as the table says it; a step still open is told apart from one that ran.
_STEP_STATE = {"done": "done", "failed": "FAILED", "skipped": "skipped", "dry_run": "dry run"}
_STOPPED = frozenset({Outcome.FAILED, Outcome.INTERRUPTED, Outcome.INCOMPLETE, Outcome.REFUSED})


def _step_state(record: IncidentRecord, step: StepTiming) -> str:
    if step.status != "running":
        state = _STEP_STATE.get(step.status, step.status)
        return f"{state}: {step.message}".replace("|", "/") if step.message else state
    if record.outcome in _STOPPED:
        return "did not end (the run stopped in it)"
    return "in progress: this record was written during it"


def _step_lines(record: IncidentRecord) -> list[str]:
    lines = [
        "",
        "## Steps",
        "",
        "| step | started (UTC) | took | final state |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {s.step} | {readable.clock(s.started_at)} |"
        f" {'' if s.duration_s is None else readable.duration(s.duration_s)} |"
        f" {_step_state(record, s)} |"
        for s in record.steps
    ]
    writing = [s.step for s in record.steps if s.status == "running"]
    if writing and record.outcome not in _STOPPED:
        lines += [
            "",
            f"_Written during {writing[-1]}: what came after it is in"
            " [timeline.jsonl](timeline.jsonl)._",
        ]
    return lines


def _impact_lines(record: IncidentRecord) -> list[str]:
    imp = record.impact
    window = "between the deploy and " + ("recovery" if record.recovered_at else "the last sample")
    lines = [
        "",
        "## Impact",
        "",
        f"- Time with the 5xx ratio above the threshold ({readable.percent(imp.error_threshold)}):"
        f" {readable.duration(imp.minutes_above_threshold * 60)}",
        "- Failed requests (estimated): "
        + ("unknown" if imp.failed_requests is None else readable.count(imp.failed_requests)),
        f"- 5xx ratio {window}: peak {readable.percent(imp.peak_error_ratio)}, mean"
        f" {readable.percent(imp.mean_error_ratio)}",
        f"- 5xx ratio before the deploy (mean): {readable.percent(imp.before_error_ratio)}"
        + (
            ""
            if imp.after_error_ratio is None
            else f"; after recovery (mean): {readable.percent(imp.after_error_ratio)}"
        ),
        f"- p99 latency {window}: peak {readable.latency(imp.peak_p99_latency_s)}",
    ]
    return lines


def render_markdown(record: IncidentRecord) -> str:
    """The record as Markdown for people (``record.md``); ``record.json`` is for tools."""
    target = {True: "met", False: "MISSED", None: "n/a"}[record.within_target]
    recovery = (
        "n/a"
        if record.decision_to_recovery_s is None
        else readable.duration(record.decision_to_recovery_s)
    )
    detection = (
        "no rule fired"
        if record.time_to_detection_s is None
        else f"first rule fired {readable.duration(record.time_to_detection_s)} after the deploy"
    )
    decided = (
        ""
        if record.time_to_decision_s is None
        else f" ({readable.duration(record.time_to_decision_s)} after the deploy)"
    )
    lines = [
        f"# Incident {record.incident_id}: rollback of `{record.release}`",
        "",
        f"**{record.headline or _OUTCOME_TEXT[record.outcome]}**",
        "",
        f"- Outcome: **{record.outcome.value}** ({_OUTCOME_TEXT[record.outcome]})",
        f'- Verdict of "When to Rollback": **{record.verdict or "not reached"}**',
        _release_line(record),
        *_attempt_lines(record),
        f"- Deployed: {_fmt_t(record.deployed_at)}; {detection}; decision:"
        f" {_fmt_t(record.decision_at)}{decided}",
        f"- Rollout complete: {_fmt_t(record.rollout_done_at)}; recovered:"
        f" {_fmt_t(record.recovered_at)}",
        f"- Decision to verified recovery: {recovery}"
        f" (target {readable.duration(record.target_s)}: {target})",
        *_lock_lines(record),
        "",
        "## Why: the rules that fired",
        "",
    ]
    lines += [
        f"- {t.get('rule')} on {t.get('metric')}: peak of the breach that fired"
        f" {_figure(str(t.get('metric')), t.get('peak'))}, threshold"
        f" {_figure(str(t.get('metric')), t.get('threshold'))}; breach from"
        f" {_fmt_t(_as_time(t.get('started_at')))}, fired {_fmt_t(_as_time(t.get('fired_at')))}"
        for t in record.triggers
    ] or ["- (no rule fired)"]
    lines += [
        "",
        "## Every rule, as the decision judged it",
        "",
        "| rule | metric | status | the decision's reason |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r.get('rule')} | {r.get('metric')} | {r.get('status')} |"
        f" {str(r.get('reason', '')).replace('|', '/')} |"
        for r in record.rules
    ] or ["| (no decision was made) | | | |"]
    lines += [f"- warning: {w}" for w in record.warnings]
    lines += _impact_lines(record)
    lines += _evidence_lines(record)
    lines += [
        "",
        "## Root-cause hypothesis",
        "",
        record.root_cause_hypothesis or "_To be filled in by the incident owner._",
        "",
        "## What happened (UTC)",
        "",
    ]
    lines += [
        f"- {readable.clock(m.at)} {m.sentence}" for m in record.story
    ] or ["- (nothing recorded)"]
    lines += _step_lines(record)
    lines += [
        "",
        "## Every event (UTC)",
        "",
        "| time | step | event | message |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {readable.clock(e.at)} | {e.step} | {e.kind.value} | {_cell(e.message)} |"
        for e in record.timeline
    ]
    return "\n".join(lines) + "\n"


def write_record(
    record: IncidentRecord, directory: Path, *, redact: Callable[[str], str]
) -> tuple[Path, Path]:
    """Write ``record.json`` and ``record.md`` into ``directory``, redacted. Raises ``OSError``.

    The JSON is redacted as data (every value at every level, credential-named keys hidden
    whatever their type), the Markdown as text; both are written atomically, 0640, never
    through a symlink (``evidence/files.py``).
    """
    data = redact_structure(record.to_json_dict(), redact)
    json_path = files.write_text(
        directory, "record.json", json.dumps(data, indent=2, sort_keys=True) + "\n"
    )
    md_path = files.write_text(directory, "record.md", redact(render_markdown(record)))
    return json_path, md_path


def load_record(path: Path) -> dict[str, Any]:
    """``record.json`` as a dict (for the post-mortem draft and tests). Raises ``OSError``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data
