"""One run per release, a bounded queue, duplicates and resolved alerts ignored (pure state)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alert_payloads import alert, payload

from runbook_lib.core.alerts import parse_webhook
from runbook_lib.core.receiver_state import Disposition, ReceiverState

NOW = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)


def _alert(release: str = "app", **kwargs: object):  # type: ignore[no-untyped-def]
    return parse_webhook(payload(alert(release, **kwargs))).alerts[0]  # type: ignore[arg-type]


def test_one_run_per_release_and_later_alerts_ride_along() -> None:
    state = ReceiverState(capacity=10, cooldown=0)
    assert state.offer(_alert(), NOW) is Disposition.QUEUED
    latency = _alert(name="RunbookLatencyP99High")
    assert state.offer(latency, NOW) is Disposition.COALESCED
    release, waiting = state.take()  # type: ignore[misc]
    assert release == ("default", "app")
    assert waiting.more == 1
    # While it runs, a new episode for the same release does not queue a second run.
    assert state.offer(_alert(starts_at="2026-12-01T12:05:00Z"), NOW) is Disposition.COALESCED
    assert state.take() is None
    state.done(release, NOW)
    assert state.offer(_alert(starts_at="2026-12-01T13:00:00Z"), NOW) is Disposition.QUEUED


def test_the_same_alert_again_is_a_duplicate_even_after_its_run() -> None:
    state = ReceiverState(cooldown=0)
    assert state.offer(_alert(), NOW) is Disposition.QUEUED
    release, _ = state.take()  # type: ignore[misc]
    state.done(release, NOW)
    assert state.offer(_alert(), NOW) is Disposition.DUPLICATE


def test_resolved_and_release_less_alerts_start_nothing() -> None:
    state = ReceiverState()
    assert state.offer(_alert(status="resolved"), NOW) is Disposition.RESOLVED
    assert state.offer(_alert(release=""), NOW) is Disposition.IGNORED
    assert state.take() is None


def test_a_full_queue_refuses_without_remembering_so_the_retry_gets_through() -> None:
    state = ReceiverState(capacity=2)
    assert state.offer(_alert("a"), NOW) is Disposition.QUEUED
    assert state.offer(_alert("b"), NOW) is Disposition.QUEUED
    assert state.offer(_alert("c"), NOW) is Disposition.FULL
    assert state.offer(_alert("a", name="Other"), NOW) is Disposition.COALESCED  # its run is queued
    state.take()
    assert state.offer(_alert("c"), NOW) is Disposition.QUEUED


def test_memory_stays_bounded() -> None:
    state = ReceiverState(capacity=5, remember=100)
    dispositions = [
        state.offer(
            _alert(f"r{i % 50}", starts_at=f"2026-12-01T12:{i // 60:02d}:{i % 60:02d}Z"), NOW
        )
        for i in range(1000)
    ]
    assert dispositions.count(Disposition.QUEUED) == 5
    assert len(state.waiting) == 5
    assert len(state.seen) <= 100


def test_keys_from_before_a_restart_are_duplicates() -> None:
    state = ReceiverState()
    state.remember_keys([_alert().key])
    assert state.offer(_alert(), NOW) is Disposition.DUPLICATE


def test_alerts_right_after_a_run_are_recorded_not_run_again() -> None:
    # After a rollback the release's other alerts keep firing until the rates settle.
    state = ReceiverState(cooldown=300)
    assert state.offer(_alert(), NOW) is Disposition.QUEUED
    release, _ = state.take()  # type: ignore[misc]
    state.done(release, NOW)
    latency = _alert(name="RunbookLatencyP99High")
    assert state.offer(latency, NOW + timedelta(seconds=299)) is Disposition.RECENT
    later = _alert(starts_at="2026-12-01T12:40:00Z")
    assert state.offer(later, NOW + timedelta(seconds=300)) is Disposition.QUEUED


def test_a_run_that_found_nothing_to_roll_back_reassesses_what_fired_during_it() -> None:
    # An early alert (a dip while pods restarted) starts a run that judges seconds of data;
    # the bad deploy's own alerts fire while it runs and must not be lost.
    state = ReceiverState(cooldown=300)
    assert state.offer(_alert(name="RunbookBusinessDrop"), NOW) is Disposition.QUEUED
    release, _ = state.take()  # type: ignore[misc]
    errors = _alert(name="RunbookErrorRatioHigh", starts_at="2026-12-01T12:00:10Z")
    latency = _alert(name="RunbookLatencyP99High", starts_at="2026-12-01T12:00:12Z")
    assert state.offer(errors, NOW) is Disposition.COALESCED
    assert state.offer(latency, NOW) is Disposition.COALESCED
    assert state.done(release, NOW, reassess=True) == latency  # the latest, once
    again, waiting = state.take()  # type: ignore[misc]
    assert (again, waiting.first) == (release, latency)
    assert state.done(release, NOW, reassess=True) is None  # nothing new: no third run
    assert state.take() is None
    # No cooldown after a run that changed nothing: the next episode is assessed at once.
    later = _alert(starts_at="2026-12-01T12:01:00Z")
    assert state.offer(later, NOW + timedelta(seconds=1)) is Disposition.QUEUED


def test_after_a_rollback_verdict_what_fired_during_the_run_is_only_recorded() -> None:
    state = ReceiverState(cooldown=300)
    assert state.offer(_alert(), NOW) is Disposition.QUEUED
    release, _ = state.take()  # type: ignore[misc]
    assert state.offer(_alert(name="RunbookLatencyP99High"), NOW) is Disposition.COALESCED
    assert state.done(release, NOW) is None
    assert state.take() is None
    business = _alert(name="RunbookBusinessDrop")
    assert state.offer(business, NOW + timedelta(seconds=10)) is Disposition.RECENT
