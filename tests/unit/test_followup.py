"""Post-mortem draft, invitation and reminder; the good commit read from a manifest.

Creating the fix branch in a real git repository: tests/adapters/test_fix_forward_git.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from helm_manifests import annotated_manifest

from runbook_lib.evidence.fixforward import commit_from_manifest
from runbook_lib.evidence.postmortem import (
    calendar_invite,
    postmortem_markdown,
    postmortem_slot,
    runbook_reminder,
)


def test_annotation_on_other_deployments_is_ignored() -> None:
    assert commit_from_manifest(annotated_manifest("abc"), deployment="other") is None
    assert commit_from_manifest("{not yaml: [", deployment="app") is None


RECORD = {
    "incident_id": "INC-42",
    "release": "app",
    "namespace": "default",
    "outcome": "recovered",
    "bad_version": "v1.1.0",
    "good_version": "v1.0.0",
    "rolled_back": True,
    "decision_to_recovery_s": 412.0,
    "target_s": 300.0,
    "within_target": False,
    "root_cause_hypothesis": "connection pool size halved in v1.1.0",
    "impact": {
        "minutes_above_threshold": 6.5,
        "failed_requests": 1234.4,
        "error_threshold": 0.01,
        "peak_error_ratio": 0.0579452541770352,
        "mean_error_ratio": 0.031,
        "peak_p99_latency_s": 1.9959000000000011,
    },
    "headline": "Rolled back, recovered",
    "story": [
        {"at": "2026-11-27T10:03:00+00:00", "sentence": "Rule error_rate fired on error_ratio"},
        {"at": "2026-11-27T10:04:10+00:00", "sentence": "Rolled back revision 2 -> 1"},
    ],
    "triggers": [{"rule": "error_rate", "metric": "error_ratio", "peak": 0.2, "threshold": 0.01}],
    "steps": [
        {"step": "notify", "status": "done", "duration_s": 0.4, "message": ""},
        {"step": "wait_for_rollout", "status": "done", "duration_s": 185.0, "message": ""},
        {
            "step": "revert_migrations",
            "status": "failed",
            "duration_s": 2.0,
            "message": "revert_migrations failed: CommandFailed: exit 1",
        },
    ],
    "timeline": [],
}


@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 11, 27, 10, 0, tzinfo=UTC),  # Friday morning
        datetime(2026, 11, 27, 23, 30, tzinfo=UTC),  # Friday night: Saturday/Sunday only
        datetime(2026, 11, 29, 13, 0, tzinfo=UTC),  # Sunday, just before 14:00
    ],
    ids=["friday-morning", "friday-night", "sunday"],
)
def test_invitation_is_rfc5545_utc_within_48_hours(now: datetime) -> None:
    ics = calendar_invite(RECORD, now=now)
    assert ics.startswith("BEGIN:VCALENDAR\r\n")
    assert ics.endswith("END:VCALENDAR\r\n")
    lines = ics.split("\r\n")
    assert all(len(line.encode()) <= 75 for line in lines)
    unfolded = ics.replace("\r\n ", "")
    fields = dict(line.split(":", 1) for line in unfolded.split("\r\n") if ":" in line)
    for name in ("VERSION", "PRODID", "UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY"):
        assert fields.get(name), name
    assert fields["VERSION"] == "2.0"
    assert re.fullmatch(r"[0-9a-f-]{36}@runbook-lib", fields["UID"])
    stamp = datetime.strptime(fields["DTSTAMP"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    start = datetime.strptime(fields["DTSTART"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    end = datetime.strptime(fields["DTEND"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert stamp == now
    assert now < start < end <= now + timedelta(hours=48)
    assert "INC-42" in fields["SUMMARY"]
    # The same incident always gets the same UID, so a re-sent invitation updates the event.
    assert calendar_invite(RECORD, now=now + timedelta(minutes=5)).count(fields["UID"]) == 1


def test_slot_prefers_a_weekday_afternoon() -> None:
    friday = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert postmortem_slot(friday) == datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
    late_friday = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    # Monday 14:00 is more than 48 hours away: the rule wins over the weekend.
    assert postmortem_slot(late_friday) == datetime(2026, 11, 28, 14, 0, tzinfo=UTC)


def test_invitation_outside_48_hours_is_refused() -> None:
    now = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="48 hours"):
        calendar_invite(RECORD, now=now, start=now + timedelta(hours=60))


def test_reminder_lists_failed_slow_and_late() -> None:
    reminder = runbook_reminder(RECORD, slow_s=60)
    assert reminder.items == (
        "wait_for_rollout was slow: 3 min 5 s (more than 1 min)",
        "revert_migrations failed: revert_migrations failed: CommandFailed: exit 1",
        "decision to recovery took 6 min 52 s, over the 5 min target",
    )
    # The target is the run's own (parameter ``target``), as the record carries it.
    late = runbook_reminder(RECORD | {"target_s": 240.0}, slow_s=60)
    assert late.items[-1] == "decision to recovery took 6 min 52 s, over the 4 min target"
    assert "no step failed" in str(runbook_reminder({"steps": [], "within_target": True}))


def test_postmortem_draft_is_prefilled_from_the_record() -> None:
    slot = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
    text = postmortem_markdown(RECORD, slot=slot, fix_branch="fix/INC-42")
    assert text.startswith("# Post-mortem draft: INC-42")
    for expected in ("v1.1.0 rolled back to v1.0.0", "2026-11-28 14:00 UTC",
                     "Failed requests (estimated): 1,234", "**Rolled back, recovered**",
                     "connection pool size halved", "Fix forward on `fix/INC-42`",
                     "Runbook: wait_for_rollout was slow", "Blameless"):  # fmt: skip
        assert expected in text, expected
    # Figures in their unit, to a sensible precision, each saying what it is.
    assert "peak 5.79 %, mean 3.1 %" in text
    assert "p99 latency between the deploy and the last sample: peak 2.00 s" in text
    assert "0.0579452541770352" not in text
    assert "1.9959" not in text
    assert "error_rate on error_ratio: peak of the breach that fired 20 %, threshold 1 %" in text
    # What happened, as sentences from the facts, not "step: step finished".
    assert "- 10:04:10 Rolled back revision 2 -> 1" in text.split("## What happened (UTC)")[1]
    untouched = postmortem_markdown(RECORD | {"rolled_back": False}, slot=slot)
    assert "nothing was rolled back" in untouched
    assert "rolled back to v1.0.0" not in untouched
