"""The lock's holder is a process, and the runs of one incident keep their events apart.

Pure parts and files only: whether a holder is provably gone (its process on this host, its
own timeline), two runs of one incident interleaving on one timeline, an earlier attempt of the
incident sealed on its own behalf, and the bad release named from history. The real Lease and
two real runs at once are in ``tests/adapters/test_lease.py`` and ``tests/e2e/test_game_day.py``.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helm_history import helm_history

from runbook_lib.adapters.lease import LeaseState
from runbook_lib.adapters.processes import process_started
from runbook_lib.core.revisions import resolve_target
from runbook_lib.core.run_identity import RunIdentity, process_gone
from runbook_lib.core.settings import Entry, from_flat
from runbook_lib.evidence.incident_record import build_record
from runbook_lib.record.facts import (
    Decided,
    Finished,
    LockTaken,
    Outcome,
    RollbackStarted,
    RolledBack,
    RunFacts,
    attempts,
    record_fact,
)
from runbook_lib.record.timeline import EventKind, Timeline
from runbook_lib.steps import RunContext, start_run
from runbook_lib.steps import earlier_runs as earlier
from runbook_lib.steps.lock import holder_gone
from runbook_lib.steps.plan import rollout_message

T0 = datetime(2026, 12, 1, 14, 0, 0, tzinfo=UTC)
# Above Linux's largest pid (2**22): no process ever has it.
NO_SUCH_PID = 2**22 + 4242


@pytest.mark.parametrize(
    ("host", "pid", "started", "started_now", "gone"),
    [
        pytest.param("other", 7, 100.0, None, "", id="another-host-is-never-judged"),
        pytest.param("here", 7, 100.0, None, "its process 7 on here no longer exists",
                     id="no-such-process"),
        pytest.param("here", 7, 100.0, 250.0, "pid 7 on here is now another process",
                     id="pid-reused"),
        pytest.param("here", 7, 100.0, 100.2, "", id="the-same-process"),
        pytest.param("here", 7, 100.0, 0.0, "", id="start-unreadable"),
        pytest.param("", 0, 0.0, None, "", id="a-lease-without-a-process"),
    ],
)  # fmt: skip
def test_a_holder_is_gone_only_when_this_host_proves_it(
    host: str, pid: int, started: float, started_now: float | None, gone: str
) -> None:
    why = process_gone(host=host, pid=pid, started=started, here="here", started_now=started_now)
    assert why.startswith(gone) if gone else why == ""


def test_the_lease_holder_names_the_process_so_one_incident_id_is_two_holders() -> None:
    alice = RunIdentity("INC-7@oncall.box", "INC-7", "box", 4242, 1.0, "run-a")
    bob = RunIdentity("INC-7@oncall.box", "INC-7", "box", 4243, 2.0, "run-b")
    assert alice.holder == "INC-7@oncall.box (pid 4242 on box)"
    assert alice.holder != bob.holder


def _state(**over: Any) -> LeaseState:
    values: dict[str, Any] = {
        "holder": "INC-7@oncall.box (pid 1 on box)", "acquired_at": T0, "renewed_at": T0,
        "duration_s": 60.0, "incident_id": "INC-7",
    }  # fmt: skip
    return LeaseState(**(values | over))


def test_a_holder_whose_process_is_gone_on_this_host_is_gone_at_once() -> None:
    here = socket.gethostname()
    assert process_started(NO_SUCH_PID) is None
    why = holder_gone(_state(host=here, pid=NO_SUCH_PID, process_started=1.0))
    assert why == f"its process {NO_SUCH_PID} on {here} no longer exists"
    # This very process is alive, whatever the Lease's name says.
    mine = process_started(os.getpid())
    assert mine
    assert holder_gone(_state(host=here, pid=os.getpid(), process_started=mine)) == ""
    # The same pid started at another time: reused, so the holder is gone.
    reused = holder_gone(_state(host=here, pid=os.getpid(), process_started=mine - 3600))
    assert reused.startswith(f"pid {os.getpid()} on {here} is now another process")
    # On another host nothing is provable from here.
    assert holder_gone(_state(host="elsewhere", pid=NO_SUCH_PID, process_started=1.0)) == ""


def test_a_holder_whose_own_timeline_says_it_ended_is_gone(tmp_path: Path) -> None:
    folder = tmp_path / "INC-7"
    tl = Timeline(folder / "timeline.jsonl", clock=lambda: T0, run="run-a")
    tl.record("start_run", EventKind.INFO, "run started", params={}, dry_run=False)
    state = _state(host="elsewhere", run_id="run-a", evidence_dir=str(folder))
    assert holder_gone(state) == ""  # still running, as far as anyone can tell
    record_fact(tl, "finish", Finished("recovered", 10.0, 20.0, 300.0), "outcome: recovered")
    assert holder_gone(state) == "its timeline says its run ended (recovered)"
    # Another run of the incident ending says nothing about this one.
    assert holder_gone(_state(host="elsewhere", run_id="run-b", evidence_dir=str(folder))) == ""


def _two_runs_of_one_incident(path: Path) -> list[Any]:
    """Alice's and Bob's runs of INC-7 started together, written as they happened."""
    alice = Timeline(path, clock=lambda: T0, run="run-alice")
    bob = Timeline(path, clock=lambda: T0 + timedelta(seconds=1), run="run-bob")
    alice.record("start_run", EventKind.INFO, "run started", params={}, dry_run=False)
    bob.record("start_run", EventKind.INFO, "run started", params={}, dry_run=False)
    for tl in (alice, bob):
        record_fact(tl, "decide", Decided("rollback", True, T0, T0), "verdict rollback")
    record_fact(alice, "preflight", LockTaken("alice (pid 1 on box)", "default/l", 60.0), "took")
    bob.record("preflight", EventKind.STEP_FAILED, "preflight failed: LockHeld: held by alice",
               error_type="LockHeld", error_kind="precondition")  # fmt: skip
    record_fact(alice, "helm_rollback", RolledBack(2, 1, "helm rollback app 1"), "ran")
    record_fact(alice, "finish", Finished("recovered", 5.0, 9.0, 300.0), "outcome: recovered")
    return Timeline(path).events


def test_two_runs_of_one_incident_each_read_their_own_facts(tmp_path: Path) -> None:
    events = _two_runs_of_one_incident(tmp_path / "timeline.jsonl")
    assert [key for key, _ in attempts(events)] == ["run-alice", "run-bob"]
    alice = RunFacts.read(events, run="run-alice")
    bob = RunFacts.read(events, run="run-bob")
    assert alice.outcome is Outcome.RECOVERED
    assert alice.rolled_back is not None
    assert bob.outcome is Outcome.REFUSED
    assert bob.rolled_back is None
    # Alice rolled back after Bob started: not "earlier in this incident" for Bob.
    assert bob.earlier_rollback is None
    assert not bob.changed_cluster
    assert RunFacts.read(events).run == "run-bob"  # without a run: the latest started
    record = build_record(events, pd.DataFrame(), incident_id="INC-7", release="app",
                          namespace="default", now=T0, run="run-alice")  # fmt: skip
    assert record.rolled_back_by_this_run
    assert {event.run for event in record.timeline} == {"run-alice"}
    assert "preflight" not in {s.step for s in record.failed_steps}  # Bob's failure is his


def test_an_earlier_attempt_that_crashed_is_sealed_on_its_own_behalf(tmp_path: Path) -> None:
    common = {
        "expected_cluster": "kwok-runbook", "replay_csv": str(tmp_path / "r.csv"),
        "output_dir": str(tmp_path / "evidence"), "incident_id": "INC-7",
        "helm_binary": str(tmp_path / "no-helm"),
    }  # fmt: skip
    (tmp_path / "r.csv").write_text("timestamp,error_ratio,p99_latency_s\n")
    first = start_run(clock=lambda: T0, out=lambda _t: None,
                      environ={"RUNBOOK_RUN_ID": "run-first"}, **common)  # fmt: skip
    record_fact(first.timeline, "preflight", LockTaken("INC-7 (pid 1 on box)", "d/l", 60.0),
                "took")  # fmt: skip
    record_fact(first.timeline, "helm_rollback", RollbackStarted(2, 1, "helm rollback app 1"),
                "running")  # fmt: skip
    # ... killed here. The incident is run again:
    second: RunContext = start_run(clock=lambda: T0, out=lambda _t: None, environ={}, **common)
    assert second.run_id.startswith("run-")
    assert second.run_id != "run-first"
    linked = earlier.link_earlier_runs(second, "preflight", None)
    assert len(linked) == 1
    assert linked[0].incident_id == "INC-7"
    assert linked[0].outcome.startswith("interrupted")
    events = Timeline(second.incident_dir / "timeline.jsonl").events
    crashed = RunFacts.read(events, run="run-first")
    assert crashed.outcome is Outcome.INTERRUPTED
    # No helm here: the read-back could not say, and the crashed run's record says so.
    assert any(e.run == "run-first" and e.data.get("read_back_failed") for e in events)
    assert second.facts.outcome is Outcome.INCOMPLETE  # this run's own facts are untouched
    assert second.facts.earlier_runs == tuple(linked)
    # Sealed once: a third run finds nothing more to seal.
    third = start_run(clock=lambda: T0, out=lambda _t: None, environ={}, **common)
    assert earlier.link_earlier_runs(third, "preflight", None) == []


def test_a_rerun_names_the_bad_release_from_history_not_the_current_revision() -> None:
    history = helm_history("v1.0.0", "v1.1.0", "v1.0.0 rollback 1")
    target = resolve_target(history)
    assert target.already_rolled_back
    assert target.bad_release.number == 2
    settings = from_flat(
        {"expected_cluster": "k", "replay_csv": "x.csv", "incident_id": "I"},
        used_by=Entry.ROLLBACK,
    )
    assert rollout_message(settings, target) == (
        "Rolling back app from v1.1.0 to v1.0.0 (revision 2 -> 1, incident I)"
    )


def test_a_run_that_failed_then_took_the_lock_again_by_hand_has_not_ended(tmp_path: Path) -> None:
    tl = Timeline(tmp_path / "timeline.jsonl", clock=lambda: T0, run="run-a")
    tl.record("start_run", EventKind.INFO, "run started", params={}, dry_run=False)
    tl.record("preflight", EventKind.STEP_FAILED, "preflight failed: LockHeld",
              error_type="LockHeld", error_kind="precondition")  # fmt: skip
    assert RunFacts.read(tl.events).ended  # refused: it wrote its own ending
    # The person re-runs the cell a minute later, and this time takes the lock.
    later = Timeline(tmp_path / "timeline.jsonl", clock=lambda: T0 + timedelta(minutes=1),
                     run="run-a")  # fmt: skip
    record_fact(later, "preflight", LockTaken("a (pid 1 on box)", "d/l", 60.0), "took")
    facts = RunFacts.read(Timeline(tmp_path / "timeline.jsonl").events)
    assert not facts.ended  # alive and holding the lock
    state = _state(host="elsewhere", run_id="run-a", evidence_dir=str(tmp_path))
    assert holder_gone(state) == ""
