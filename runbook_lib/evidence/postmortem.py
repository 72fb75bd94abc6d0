"""Post-mortem (Post-Rollback Actions, steps 4 and 5): a draft, an invitation, a reminder.

All three are built from ``record.json`` (a dict), so they can be regenerated from a bundle
long after the run. The invitation is an iCalendar (RFC 5545) event in UTC within 48 hours.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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


def _ics_text(value: str) -> str:
    # RFC 5545 3.3.11: backslash, semicolon, comma and newlines are escaped in TEXT values.
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def _fold(line: str) -> str:
    # RFC 5545 3.1: lines longer than 75 octets are folded with CRLF + one space.
    raw = line.encode("utf-8")
    if len(raw) <= 75:
        return line
    parts: list[str] = []
    start, limit = 0, 75
    while start < len(raw):
        end = min(start + limit, len(raw))
        while end < len(raw) and (raw[end] & 0xC0) == 0x80:  # never split a UTF-8 sequence
            end -= 1
        parts.append(raw[start:end].decode("utf-8"))
        start, limit = end, 74  # continuation lines start with a space
    return "\r\n ".join(parts)


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


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
    uid = uuid.uuid5(uuid.NAMESPACE_URL, f"runbook-lib:postmortem:{incident}")
    summary = f"Blameless post-mortem: {incident} (rollback of {record.get('release', '')})"
    description = (
        f"Outcome: {record.get('outcome')}. Draft: postmortem.md in the evidence bundle "
        f"{incident}. Please read record.md before the meeting."
    )
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//runbook-lib//rollback runbook//EN",
        "CALSCALE:GREGORIAN",
        f"METHOD:{'REQUEST' if organizer and attendees else 'PUBLISH'}",
        "BEGIN:VEVENT",
        f"UID:{uid}@runbook-lib",
        f"DTSTAMP:{_utc(now)}",
        f"DTSTART:{_utc(start)}",
        f"DTEND:{_utc(start + duration)}",
        f"SUMMARY:{_ics_text(summary)}",
        f"DESCRIPTION:{_ics_text(description)}",
        "STATUS:CONFIRMED",
        "TRANSP:OPAQUE",
    ]
    if organizer:
        lines.append(f"ORGANIZER:mailto:{organizer}")
    lines += [f"ATTENDEE;ROLE=REQ-PARTICIPANT;RSVP=TRUE:mailto:{a}" for a in attendees]
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "".join(_fold(line) + "\r\n" for line in lines)


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
            items.append(f"{step['step']} was slow: {duration:.0f} s (more than {slow_s:.0f} s)")
    if record.get("within_target") is False:
        items.append(
            f"decision to recovery took {record.get('decision_to_recovery_s', 0):.0f} s, over "
            f"the {record.get('target_s', 300):.0f} s target"
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


def postmortem_markdown(
    record: Mapping[str, Any], *, slot: datetime | None, fix_branch: str | None = None
) -> str:
    """A blameless post-mortem draft pre-filled from the incident record (step 4)."""
    impact = record.get("impact") or {}
    failed = impact.get("failed_requests")
    reminder = runbook_reminder(record)
    lines = [
        f"# Post-mortem draft: {record.get('incident_id')}",
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
        f"- {impact.get('minutes_above_threshold', 0):.1f} minutes with the 5xx ratio above"
        f" {impact.get('error_threshold', 0.01):.2%}; peak {impact.get('peak_error_ratio')}",
        f"- Failed requests (estimated): {'unknown' if failed is None else round(failed)}",
        f"- Peak p99 latency: {impact.get('peak_p99_latency_s')} s",
        "",
        "## Detection and response",
        "",
        f"- Deployed {record.get('deployed_at')}; decision {record.get('decision_at')}"
        f" ({record.get('time_to_decision_s')} s later)",
        f"- Decision to recovery: {record.get('decision_to_recovery_s')} s"
        f" (target {record.get('target_s')} s; met: {record.get('within_target')})",
        "",
        "## Triggers",
        "",
    ]
    lines += [
        f"- {t.get('rule')}: {t.get('metric')} peak {t.get('peak')} vs {t.get('threshold')}"
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
    lines += ["", "## Timeline (UTC)", ""]
    lines += [
        f"- {str(e.get('at', ''))[11:19]} {e.get('step')}: {e.get('message')}"
        for e in record.get("timeline", ())
        if e.get("kind") in ("step_failed", "decision", "warning", "step_end", "dry_run")
    ]
    return "\n".join(lines) + "\n"
