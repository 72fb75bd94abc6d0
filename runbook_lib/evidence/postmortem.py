"""Post-mortem (Post-Rollback Actions, steps 4 and 5): a draft, an invitation, a reminder.

All three are built from ``record.json`` (a dict), so they can be regenerated from a bundle
long after the run. The invitation is an iCalendar (RFC 5545) event in UTC within 48 hours,
written by the ``icalendar`` library (escaping, line folding and CRLF line ends are its own).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar

from runbook_lib.core import readable

__all__ = [
    "Reminder",
    "calendar_invite",
    "postmortem_markdown",
    "postmortem_slot",
    "runbook_reminder",
]

POSTMORTEM_WITHIN = timedelta(hours=48)  # "schedule a blameless post-mortem within 48 hours"


def postmortem_slot(
    now: datetime,
    *,
    hour_utc: int = 14,
    duration: timedelta = timedelta(hours=1),
    min_lead: timedelta = timedelta(hours=4),
) -> datetime:
    """When to hold the post-mortem: the first weekday ``hour_utc``:00 UTC at least ``min_lead``
    from ``now`` whose meeting ends within 48 hours; any day if no weekday fits. Raises nothing.
    """
    now = now.astimezone(UTC)
    first = now.replace(hour=hour_utc, minute=0, second=0, microsecond=0)
    candidates = [first + timedelta(days=d) for d in range(4)]
    fitting = [
        c for c in candidates if now + min_lead <= c and c + duration <= now + POSTMORTEM_WITHIN
    ]
    weekdays = [c for c in fitting if c.weekday() < 5]
    if weekdays:
        return weekdays[0]
    if fitting:
        return fitting[0]
    # Only when min_lead + duration exceed 48 h: still honour the 48-hour rule.
    return now + POSTMORTEM_WITHIN - duration


def calendar_invite(
    record: Mapping[str, Any],
    *,
    now: datetime,
    start: datetime | None = None,
    duration: timedelta = timedelta(hours=1),
    organizer: str | None = None,
    attendees: Sequence[str] = (),
) -> str:
    """An iCalendar invitation to the blameless post-mortem (Post-Rollback Actions, step 4).

    ``start`` defaults to ``postmortem_slot(now)``. Raises ``ValueError`` when ``start`` is not
    within 48 hours of ``now`` (the runbook's rule).
    """
    start = start or postmortem_slot(now, duration=duration)
    if not now <= start <= now + POSTMORTEM_WITHIN - duration:
        raise ValueError(f"post-mortem at {start.isoformat()} is not within 48 hours of {now}")
    incident = str(record.get("incident_id", "incident"))
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//runbook-lib//rollback runbook//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "REQUEST" if organizer and attendees else "PUBLISH")
    event = icalendar.Event()
    # The same incident always gets the same UID, so a re-sent invitation updates the event.
    event.add(
        "uid", f"{uuid.uuid5(uuid.NAMESPACE_URL, f'runbook-lib:postmortem:{incident}')}@runbook-lib"
    )
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", start.astimezone(UTC))
    event.add("dtend", (start + duration).astimezone(UTC))
    event.add(
        "summary", f"Blameless post-mortem: {incident} (rollback of {record.get('release', '')})"
    )
    event.add(
        "description",
        f"{record.get('headline') or 'Outcome: ' + str(record.get('outcome'))}. Draft: "
        f"postmortem.md in the evidence bundle {incident}. Please read record.md before the "
        "meeting.",
    )
    event.add("status", "CONFIRMED")
    event.add("transp", "OPAQUE")
    if organizer:
        event.add("organizer", icalendar.vCalAddress(f"mailto:{organizer}"))
    for attendee in attendees:
        address = icalendar.vCalAddress(f"mailto:{attendee}")
        address.params["ROLE"] = icalendar.vText("REQ-PARTICIPANT")
        address.params["RSVP"] = icalendar.vText("TRUE")
        event.add("attendee", address, encode=False)
    calendar.add_component(event)
    text: bytes = calendar.to_ical()
    return text.decode("utf-8")


@dataclass(frozen=True)
class Reminder:
    """Steps to revisit in the runbook (Post-Rollback Actions, step 5)."""

    items: tuple[str, ...]

    def __str__(self) -> str:
        if not self.items:
            return "Runbook update: no step failed or was slow; still note anything unclear."
        return "Update the runbook for these steps:\n" + "\n".join(f"- {i}" for i in self.items)


def runbook_reminder(record: Mapping[str, Any], *, slow_s: float = 60.0) -> Reminder:
    """The steps that failed or took longer than ``slow_s`` seconds, with what happened."""
    items: list[str] = []
    for step in record.get("steps", ()):
        duration = step.get("duration_s")
        if step.get("status") == "failed":
            items.append(f"{step['step']} failed: {step.get('message') or 'see the timeline'}")
        elif duration is not None and duration > slow_s:
            items.append(
                f"{step['step']} was slow: {readable.duration(duration)}"
                f" (more than {readable.duration(slow_s)})"
            )
    if record.get("within_target") is False:
        items.append(
            f"decision to recovery took {readable.duration(record.get('decision_to_recovery_s'))},"
            f" over the {readable.duration(record.get('target_s', 300))} target"
        )
    return Reminder(tuple(items))


def _release_change(record: Mapping[str, Any]) -> str:
    """What happened to the release, as the record (the run's Ending) says it."""
    rolled_back = record.get("rolled_back")
    if rolled_back:
        return f" {record.get('bad_version')} rolled back to {record.get('good_version')};"
    if rolled_back is None:  # helm rollback did not end cleanly and was not read back
        return f" {record.get('cluster')};"
    return " nothing was rolled back;"


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _instant(value: object) -> str:
    try:
        return readable.instant(datetime.fromisoformat(str(value))) if value else "n/a"
    except ValueError:
        return str(value)


def _seconds(value: object) -> str:
    return readable.duration(_number(value))


def _story(record: Mapping[str, Any]) -> list[str]:
    """What happened, as the record tells it (``record.story``): sentences, not step names."""
    lines: list[str] = []
    for moment in record.get("story", ()):
        try:
            at = readable.clock(datetime.fromisoformat(str(moment.get("at"))))
        except ValueError:
            at = "?"
        lines.append(f"- {at} {moment.get('sentence')}")
    return lines or ["- (the record tells nothing that happened)"]


def postmortem_markdown(
    record: Mapping[str, Any], *, slot: datetime | None, fix_branch: str | None = None
) -> str:
    """A blameless post-mortem draft pre-filled from the incident record (step 4)."""
    impact = record.get("impact") or {}
    failed = _number(impact.get("failed_requests"))
    reminder = runbook_reminder(record)
    met = {True: "met", False: "MISSED", None: "n/a"}[record.get("within_target")]
    window = "between the deploy and " + (
        "recovery" if record.get("recovered_at") else "the last sample"
    )
    above = _number(impact.get("minutes_above_threshold")) or 0.0
    lines = [
        f"# Post-mortem draft: {record.get('incident_id')}",
        "",
        f"**{record.get('headline') or record.get('outcome')}**",
        "",
        "_Blameless: describe what the system and the process allowed, not who did what._",
        "",
        f"- Meeting: {slot.strftime('%Y-%m-%d %H:%M UTC') if slot else 'to be scheduled'}"
        " (invitation: postmortem.ics)",
        f"- Release `{record.get('release')}` in `{record.get('namespace')}`:"
        + _release_change(record)
        + f" outcome **{record.get('outcome')}**",
        "",
        "## Summary",
        "",
        "_One paragraph: what broke, who noticed, how it was fixed._",
        "",
        "## Impact",
        "",
        f"- Time with the 5xx ratio above the threshold"
        f" ({readable.percent(_number(impact.get('error_threshold')))}):"
        f" {readable.duration(above * 60)}",
        "- Failed requests (estimated): "
        + ("unknown" if failed is None else readable.count(failed)),
        f"- 5xx ratio {window}: peak {readable.percent(_number(impact.get('peak_error_ratio')))},"
        f" mean {readable.percent(_number(impact.get('mean_error_ratio')))}",
        f"- 5xx ratio before the deploy (mean):"
        f" {readable.percent(_number(impact.get('before_error_ratio')))}"
        + (
            ""
            if _number(impact.get("after_error_ratio")) is None
            else "; after recovery (mean):"
            f" {readable.percent(_number(impact.get('after_error_ratio')))}"
        ),
        f"- p99 latency {window}: peak"
        f" {readable.latency(_number(impact.get('peak_p99_latency_s')))}",
        "",
        "## Detection and response",
        "",
        f"- Deployed {_instant(record.get('deployed_at'))}; decision"
        f" {_instant(record.get('decision_at'))} ({_seconds(record.get('time_to_decision_s'))}"
        " after the deploy)",
        f"- Decision to verified recovery: {_seconds(record.get('decision_to_recovery_s'))}"
        f" (target {_seconds(record.get('target_s'))}: {met})",
        "",
        "## Triggers",
        "",
    ]
    lines += [
        f"- {t.get('rule')} on {t.get('metric')}: peak of the breach that fired"
        f" {readable.metric_value(str(t.get('metric')), _number(t.get('peak')))}, threshold"
        f" {readable.metric_value(str(t.get('metric')), _number(t.get('threshold')))}"
        for t in record.get("triggers", ())
    ] or ["- none recorded"]
    lines += [
        "",
        "## Root cause",
        "",
        f"Hypothesis at rollback time: {record.get('root_cause_hypothesis') or '_none given_'}",
        "",
        "## What went well / what went badly / where we were lucky",
        "",
        "- ",
        "",
        "## Action items",
        "",
        f"- [ ] Fix forward on `{fix_branch}`" if fix_branch else "- [ ] Fix forward",
    ]
    lines += [f"- [ ] Runbook: {item}" for item in reminder.items]
    lines += ["", "## What happened (UTC)", "", *_story(record)]
    return "\n".join(lines) + "\n"
