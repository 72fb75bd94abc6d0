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
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from runbook_lib.timeline import Event, EventKind

__all__ = [
    "RECOVERY_TARGET_S",
    "Impact",
    "IncidentRecord",
    "Outcome",
    "StepTiming",
    "build_record",
    "load_record",
    "write_record",
]

# "Time to rollback target: under 5 minutes from decision."
RECOVERY_TARGET_S = 300.0
REQUEST_RATE = "request_rate_rps"  # optional samples column: all requests per second


class Outcome(StrEnum):
    NO_ROLLBACK = "no_rollback"  # the decision said the release is healthy; nothing changed
    DRY_RUN = "dry_run"  # every read step ran, nothing changed
    RECOVERED = "recovered"  # rolled back and the error ratio recovered
    NOT_RECOVERED = "not_recovered"  # rolled back but not healthy: escalate
    FAILED = "failed"  # a step failed before the rollback could be verified
    INCOMPLETE = "incomplete"  # the run stopped without reaching a verdict


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


@dataclass(frozen=True)
class IncidentRecord:
    incident_id: str
    release: str
    namespace: str
    outcome: Outcome
    deployed_at: datetime | None
    decision_at: datetime | None
    rollout_done_at: datetime | None
    recovered_at: datetime | None
    time_to_detection_s: float | None  # deploy -> first rule fired (metric time)
    time_to_decision_s: float | None  # deploy -> decision (wall clock of the run)
    decision_to_recovery_s: float | None
    within_target: bool | None  # decision -> recovery under RECOVERY_TARGET_S
    bad_version: str | None
    good_version: str | None
    bad_revision: int | None
    good_revision: int | None
    triggers: tuple[Mapping[str, Any], ...]
    impact: Impact
    steps: tuple[StepTiming, ...]
    root_cause_hypothesis: str
    timeline: tuple[Event, ...] = field(repr=False)

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


def _last_value(events: Sequence[Event], key: str) -> Any:
    for event in reversed(events):
        if key in event.data and event.data[key] not in (None, ""):
            return event.data[key]
    return None


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
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


def _impact(
    samples: pd.DataFrame,
    *,
    start: datetime | None,
    end: datetime | None,
    error_threshold: float,
    request_rate_rps: float | None,
) -> Impact:
    frame = samples
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
    )


def _decision_data(event: Event | None) -> Mapping[str, Any]:
    """The decision as ``decide`` recorded it (``data.decision``: Decision.to_json_dict())."""
    if event is None:
        return {}
    nested = event.data.get("decision")
    return nested if isinstance(nested, Mapping) else event.data


def _is_dry_run(events: Sequence[Event]) -> bool:
    for event in reversed(events):  # a re-run appends to the timeline: the last run counts
        params = event.data.get("params")
        if event.step == "start_run" and isinstance(params, Mapping):
            return params.get("dry_run") is True
    return any(e.kind == EventKind.DRY_RUN for e in events)


def _outcome(events: Sequence[Event], steps: Sequence[StepTiming]) -> Outcome:
    decision = next((e for e in reversed(events) if e.kind == EventKind.DECISION), None)
    if decision is not None and _decision_data(decision).get("rollback") is False:
        return Outcome.NO_ROLLBACK
    failed = [s for s in steps if s.status == "failed"]
    if any(s.step == "check_recovery" for s in failed) or any(
        e.data.get("error_type") == "VerificationFailed" for e in events
    ):
        return Outcome.NOT_RECOVERED
    if failed:
        return Outcome.FAILED
    if _is_dry_run(events):
        return Outcome.DRY_RUN
    if any(s.step == "check_recovery" and s.status == "done" for s in steps):
        return Outcome.RECOVERED
    return Outcome.INCOMPLETE


def build_record(
    events: Sequence[Event],
    samples: pd.DataFrame,
    *,
    incident_id: str,
    release: str = "",
    namespace: str = "",
    error_threshold: float = 0.01,
    request_rate_rps: float | None = None,
    root_cause_hypothesis: str = "",
    versions: Mapping[int, str] | None = None,
    now: datetime,
) -> IncidentRecord:
    """Assemble the incident record (Post-Rollback Actions, step 1) from what the run recorded.

    ``samples`` are the metric samples of the whole run (a ``request_rate_rps`` column, or the
    ``request_rate_rps`` argument, turns "minutes above threshold" into failed requests).
    ``versions`` maps revision numbers to app versions (from ``helm history``), naming the bad
    and good releases. ``now`` ends the impact window when the service never recovered. Raises
    nothing: missing
    events leave the matching fields ``None``, so a partial run still gets a record.
    """
    # A re-run of the same incident appends to its timeline; the record is of the latest run.
    starts = [i for i, e in enumerate(events) if e.step == "start_run"]
    events = events[starts[-1] :] if starts else events
    steps = _step_timings(events)
    decision_event = next((e for e in reversed(events) if e.kind == EventKind.DECISION), None)
    deployed_at = _as_time(_last_value(events, "deployed_at"))
    decision_at = decision_event.at if decision_event else None
    rollout = next((s for s in steps if s.step == "wait_for_rollout" and s.status == "done"), None)
    recovered_at = _as_time(_last_value(events, "recovered_at"))
    outcome = _outcome(events, steps)
    if outcome != Outcome.RECOVERED:
        recovered_at = None
    to_decision = (
        (decision_at - deployed_at).total_seconds() if decision_at and deployed_at else None
    )
    to_recovery = (
        (recovered_at - decision_at).total_seconds() if recovered_at and decision_at else None
    )
    # ``finish`` measures decision -> verified recovery itself; its figure is the run's own.
    finished = _last_value([e for e in events if e.step == "finish"], "decision_to_recovery_s")
    if recovered_at is not None and isinstance(finished, int | float):
        to_recovery = float(finished)
    triggers = [
        t for t in _decision_data(decision_event).get("triggers", ()) if isinstance(t, Mapping)
    ]
    fired = sorted(f for f in (_as_time(t.get("fired_at")) for t in triggers) if f is not None)
    to_detection = (fired[0] - deployed_at).total_seconds() if fired and deployed_at else None
    preflight = [e for e in events if e.step == "preflight"]
    bad_revision = _as_int(_last_value(preflight, "current"))
    good_revision = _as_int(_last_value(preflight, "target"))
    versions = versions or {}
    return IncidentRecord(
        incident_id=incident_id,
        release=release or str(_last_value(events, "release") or ""),
        namespace=namespace or str(_last_value(events, "namespace") or ""),
        outcome=outcome,
        deployed_at=deployed_at,
        decision_at=decision_at,
        rollout_done_at=rollout.ended_at if rollout else None,
        recovered_at=recovered_at,
        time_to_detection_s=to_detection,
        time_to_decision_s=to_decision,
        decision_to_recovery_s=to_recovery,
        within_target=None if to_recovery is None else to_recovery <= RECOVERY_TARGET_S,
        bad_version=versions.get(bad_revision) if bad_revision is not None else None,
        good_version=versions.get(good_revision) if good_revision is not None else None,
        bad_revision=bad_revision,
        good_revision=good_revision,
        triggers=tuple(triggers),
        impact=_impact(
            samples,
            start=deployed_at,
            end=recovered_at or now,
            error_threshold=error_threshold,
            request_rate_rps=request_rate_rps,
        ),
        steps=steps,
        root_cause_hypothesis=root_cause_hypothesis,
        timeline=tuple(events),
    )


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "n/a"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def _fmt_v(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "n/a"


def _fmt_t(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "n/a"


def render_markdown(record: IncidentRecord) -> str:
    """The record as Markdown for people (``record.md``); ``record.json`` is for tools."""
    imp = record.impact
    target = {True: "met", False: "MISSED", None: "n/a"}[record.within_target]
    failed = f"{imp.failed_requests:.0f}" if imp.failed_requests is not None else "unknown"
    lines = [
        f"# Incident {record.incident_id}: rollback of `{record.release}`",
        "",
        f"- Outcome: **{record.outcome.value}**",
        f"- Bad release: {record.bad_version or 'n/a'} (revision {record.bad_revision or 'n/a'});"
        f" rolled back to {record.good_version or 'n/a'}"
        f" (revision {record.good_revision or 'n/a'})",
        f"- Deployed: {_fmt_t(record.deployed_at)}; first rule fired"
        f" {_fmt_s(record.time_to_detection_s)} after the deploy; decision:"
        f" {_fmt_t(record.decision_at)} ({_fmt_s(record.time_to_decision_s)} after the deploy)",
        f"- Rollout complete: {_fmt_t(record.rollout_done_at)}; recovered:"
        f" {_fmt_t(record.recovered_at)}",
        f"- Decision to recovery: {_fmt_s(record.decision_to_recovery_s)}"
        f" (target {_fmt_s(RECOVERY_TARGET_S)}: {target})",
        "",
        "## Impact",
        "",
        f"- Minutes with 5xx ratio above {imp.error_threshold:.2%}:"
        f" {imp.minutes_above_threshold:.1f}",
        f"- Failed requests (estimated): {failed}",
        f"- Peak 5xx ratio: {_fmt_v(imp.peak_error_ratio)}; peak p99 latency:"
        f" {_fmt_v(imp.peak_p99_latency_s)} s",
        "",
        "## Why we rolled back",
        "",
    ]
    lines += [
        f"- {t.get('rule')}: {t.get('metric')} peaked at {_fmt_v(t.get('peak'))} (threshold"
        f" {_fmt_v(t.get('threshold'))}), breach from {t.get('started_at')}, fired"
        f" {t.get('fired_at')}"
        for t in record.triggers
    ] or ["- (no rule fired)"]
    lines += [
        "",
        "## Root-cause hypothesis",
        "",
        record.root_cause_hypothesis or "_To be filled in by the incident owner._",
        "",
        "## Steps",
        "",
        "| step | started (UTC) | duration | status |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {s.step} | {s.started_at:%H:%M:%S} | {_fmt_s(s.duration_s)} | {s.status} |"
        for s in record.steps
    ]
    lines += ["", "## Timeline", "", "| time (UTC) | step | event | message |", "|---|---|---|---|"]
    lines += [
        f"| {e.at:%H:%M:%S} | {e.step} | {e.kind.value} | {e.message.replace('|', '/')} |"
        for e in record.timeline
    ]
    return "\n".join(lines) + "\n"


def write_record(
    record: IncidentRecord, directory: Path, *, redact: Callable[[str], str]
) -> tuple[Path, Path]:
    """Write ``record.json`` and ``record.md`` into ``directory``, redacted. Raises ``OSError``."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / "record.json", directory / "record.md"
    json_path.write_text(
        redact(json.dumps(record.to_json_dict(), indent=2, sort_keys=True)) + "\n",
        encoding="utf-8",
    )
    md_path.write_text(redact(render_markdown(record)), encoding="utf-8")
    return json_path, md_path


def load_record(path: Path) -> dict[str, Any]:
    """``record.json`` as a dict (for the post-mortem draft and tests). Raises ``OSError``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data
