"""What a restarted receiver reads from its journal, and what compaction keeps (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alert_payloads import alert, payload

from runbook_lib.core.alerts import parse_webhook
from runbook_lib.receiver.journal import Journal
from runbook_lib.receiver.replay import compacted, replay

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _alert(release: str, minute: int = 0) -> dict[str, Any]:
    raw = alert(release, starts_at=f"2026-12-01T11:{minute:02d}:00Z")
    return parse_webhook(payload(raw)).alerts[0].to_json_dict()


def _key(a: dict[str, Any]) -> str:
    return str(a["fingerprint"]) + "@" + str(a["startsAt"])


def _accepted(release: str, disposition: str = "queued", minute: int = 0) -> dict[str, Any]:
    a = _alert(release, minute)
    return {
        "event": "alert",
        "at": T0.isoformat(),
        "key": _key(a),
        "disposition": disposition,
        "release": release,
        "namespace": "default",
        "alert": a,
    }


def _started(release: str, run_id: str, at: datetime = T0, minute: int = 0) -> dict[str, Any]:
    a = _alert(release, minute)
    return {
        "event": "run_started",
        "at": at.isoformat(),
        "run_id": run_id,
        "release": release,
        "namespace": "default",
        "alert_key": _key(a),
        "alert": a,
        "action": "auto_rollback",
        "parameters": {"release": release},
    }


def _finished(run_id: str, at: datetime = T0, **fields: Any) -> dict[str, Any]:
    return {
        "event": "run_finished",
        "at": at.isoformat(),
        "run_id": run_id,
        "outcome": "recovered",
        "verdict": "rollback",
        "changed": True,
        "reassess": False,
        **fields,
    }


def test_accepted_and_not_started_is_pending_once_finished_is_not() -> None:
    entries = [
        _accepted("a"),
        _accepted("b"),
        _accepted("b", "coalesced", minute=1),
        _started("a", "run-a"),
        _finished("run-a"),
        _accepted("c"),
        _started("c", "run-c"),
        {"event": "run_dispatched", "at": T0.isoformat(), "run_id": "run-c", "pid": 42},
    ]
    found = replay(entries)
    assert [p.alert["labels"]["release"] for p in found.pending] == ["b"]
    assert found.pending[0].more == 1
    (unfinished,) = found.unfinished
    assert (unfinished["run_id"], unfinished["dispatched"]) == ("run-c", {"pid": 42})
    assert [s["run_id"] for s, _ in found.finished] == ["run-a"]
    assert len(found.seen) == 4


def test_a_follow_up_run_is_pending_after_its_reassess_line() -> None:
    later = _alert("a", minute=5)
    entries = [
        _accepted("a"),
        _started("a", "run-a"),
        {**_accepted("a", "coalesced", minute=5)},
        _finished("run-a", verdict="no_rollback", outcome="no_rollback", reassess=True),
        {
            "event": "reassess",
            "at": T0.isoformat(),
            "key": _key(later),
            "release": "a",
            "namespace": "default",
            "alert": later,
        },
    ]
    found = replay(entries)
    assert [_key(p.alert) for p in found.pending] == [_key(later)]
    assert found.ended() == {}  # nothing to roll back: no cooldown


def test_cooldown_and_breaker_history_come_back() -> None:
    found = replay(
        [
            _started("a", "r1", T0),
            _finished("r1", T0 + timedelta(minutes=1)),
            _started("a", "r2", T0 + timedelta(minutes=2)),
            _finished(
                "r2",
                T0 + timedelta(minutes=3),
                outcome="dispatch_failed",
                changed=False,
                reassess=True,
            ),
            _started("b", "r3", T0),
            _finished("r3", T0, outcome="dry_run", changed=False),
        ]
    )
    assert found.ended() == {("default", "b"): T0}  # a's last run started no cooldown
    assert found.automatic_rollbacks(frozenset()) == {("default", "a"): [T0]}


def test_a_coalesced_alert_during_an_unfinished_run_comes_back_with_it() -> None:
    found = replay([_accepted("a"), _started("a", "r1"), _accepted("a", "coalesced", minute=3)])
    assert list(found.arrived) == [("default", "a")]
    assert found.pending == []


def _summary(entries: list[dict[str, Any]]) -> Any:
    found = replay(entries)
    return (
        [(p.alert["labels"]["release"], p.more) for p in found.pending],
        [r["run_id"] for r in found.unfinished],
        [r.get("dispatched") for r in found.unfinished],
        sorted(found.seen),
        list(found.arrived),
        found.ended(),
        found.automatic_rollbacks(frozenset()),
    )


def test_compaction_keeps_what_replay_needs_and_drops_the_rest() -> None:
    now = T0 + timedelta(days=2)
    history = []
    for i in range(500):  # runs long finished: beyond the horizon, beyond the recent rows
        history += [_started("old", f"old-{i}", T0), _finished(f"old-{i}", T0)]
        history += [{"event": "notified", "at": T0.isoformat(), "text": "x" * 200}]
    recent_run = [
        _started("a", "ra", now - timedelta(minutes=10)),
        _finished("ra", now - timedelta(minutes=9)),
    ]
    live = [
        _accepted("b"),
        _accepted("b", "coalesced", minute=2),
        _accepted("c"),
        _started("c", "rc", now),
        {"event": "run_dispatched", "at": now.isoformat(), "run_id": "rc", "pid": 7},
        _accepted("c", "coalesced", minute=4),
    ]
    entries = history + recent_run + live
    kept = compacted(replay(entries), now=now, breaker_s=3600, cooldown_s=3600, recent=3)
    assert len(kept) < 20
    before, after = _summary(entries), _summary(kept)
    assert after[:5] == before[:5]  # pending, unfinished, dispatch, keys, arrived
    assert after[5][("default", "a")] == before[5][("default", "a")]  # within the horizon
    assert after[6][("default", "a")] == before[6][("default", "a")]
    # Compacting again changes nothing.
    again = compacted(replay(kept), now=now, breaker_s=3600, cooldown_s=3600, recent=3)
    assert _summary(again) == _summary(kept)


def test_the_journal_swaps_atomically_and_survives_a_cut_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl", clock=lambda: T0)
    for i in range(3):
        journal.write("alert", durable=True, key=f"k{i}", disposition="queued")
    with (tmp_path / "journal.jsonl").open("a") as out:
        out.write('{"event": "alert", "key": "cut')  # a crash in the middle of a line
    assert [e["key"] for e in journal.entries()] == ["k0", "k1", "k2"]
    journal.compact(lambda entries: entries[1:])
    journal.write("alert", durable=True, key="k3", disposition="queued")
    assert [e["key"] for e in journal.entries()] == ["k1", "k2", "k3"]
    assert not list(tmp_path.glob(".*compacting"))
    journal.close()


def test_a_journal_that_cannot_be_written_stays_broken(tmp_path: Path) -> None:
    # /dev/full: every write fails with "No space left on device", as on a full disk.
    (tmp_path / "journal.jsonl").symlink_to("/dev/full")
    journal = Journal(tmp_path / "journal.jsonl")
    with pytest.raises(OSError, match="No space left"):
        journal.write("alert", durable=True, key="k0")
    assert journal.broken is not None
    # Later lines are refused too: a line after a hole would be read as if nothing was lost.
    with pytest.raises(OSError, match="No space left"):
        journal.write("alert", key="k1")
