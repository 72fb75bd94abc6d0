"""The timeline feeds the incident record: it must persist, redact and survive failures."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from clocks import TickingClock

from runbook_lib.record.timeline import EventKind, Timeline

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def test_events_are_flushed_as_json_lines_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "inc" / "timeline.jsonl"
    tl = Timeline(path, clock=TickingClock(T0))
    tl.record("notify", EventKind.INFO, "posted", channel="#incidents")
    # A second process (the CLI collecting evidence after a crash) sees the same events.
    again = Timeline(path)
    assert [(e.step, e.kind, e.data) for e in again.events] == [
        ("notify", EventKind.INFO, {"channel": "#incidents"})
    ]
    assert again.events[0].at.tzinfo is not None


def test_span_records_failure_then_reraises(tmp_path: Path) -> None:
    tl = Timeline(tmp_path / "t.jsonl", clock=TickingClock(T0))
    with pytest.raises(RuntimeError, match="boom"), tl.span("helm_rollback"):
        raise RuntimeError("boom")
    kinds = [e.kind for e in tl.events]
    assert kinds == [EventKind.STEP_START, EventKind.STEP_FAILED]
    failed = tl.last("helm_rollback", EventKind.STEP_FAILED)
    assert failed is not None
    assert "boom" in failed.message


def test_redaction_applies_to_messages_and_string_data(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    tl = Timeline(path, redact=lambda s: s.replace("s3cr3t", "[REDACTED]"))
    tl.record("notify", "warning", "webhook s3cr3t failed", url="https://x/s3cr3t", n=3)
    text = path.read_text()
    assert "s3cr3t" not in text
    assert "[REDACTED]" in text
    assert '"n": 3' in text
