"""The lock's pure parts: what a held lock says, the frame's check before a change, crashed
runs found in ``output_dir``, a release changed under the run, and how the record shows them.

The cluster side (a real Lease renewed, taken over, lost; a real crash) is in
``tests/e2e/test_lock.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helm_history import helm_history

from runbook_lib.adapters.lease import LeaseState, held_message
from runbook_lib.core.drift import expected_revision, release_drift
from runbook_lib.core.images import PodImages
from runbook_lib.errors import (
    LockHeld,
    LockLost,
    PreconditionFailed,
    ReleaseChangedUnderRun,
    VerificationFailed,
)
from runbook_lib.evidence.incident_record import build_record, render_markdown
from runbook_lib.record.facts import (
    Decided,
    EarlierRunFound,
    LockTaken,
    Outcome,
    ReleaseChanged,
    RunFacts,
    record_fact,
)
from runbook_lib.record.timeline import EventKind, Timeline
from runbook_lib.steps import RunContext, start_run
from runbook_lib.steps import earlier_runs as earlier
from runbook_lib.steps.lock import check_lock, renew_every
from runbook_lib.steps.step import runbook_step

T0 = datetime(2026, 12, 1, 14, 0, 0, tzinfo=UTC)


def test_held_message_says_who_since_when_until_when_and_how_to_take_over() -> None:
    state = LeaseState(
        holder="INC-7@alice.laptop",
        acquired_at=T0,
        renewed_at=T0 + timedelta(seconds=40),
        duration_s=60.0,
        incident_id="INC-7",
    )
    text = held_message(
        "app", "default/runbook-rollback-app", state, T0 + timedelta(seconds=47), 60
    )
    assert "'INC-7@alice.laptop'" in text
    assert "incident INC-7" in text
    assert "held since 14:00:00 UTC" in text
    assert "last renewed 14:00:40 UTC, 7 s ago" in text
    assert "frees itself at 14:01:40 UTC, in 53 s" in text  # renewed + the holder's duration
    assert "lock_takeover_reason" in text


def test_a_lease_frees_itself_after_the_holders_own_duration() -> None:
    state = LeaseState("bob", T0, T0, duration_s=30.0)
    assert state.frees_at(600.0) == T0 + timedelta(seconds=30)  # the holder's, not ours
    assert state.live(T0 + timedelta(seconds=30), 600.0)
    assert not state.live(T0 + timedelta(seconds=31), 600.0)
    unknown = LeaseState("bob", T0, None, duration_s=None)
    assert unknown.frees_at(60.0) is None
    assert not unknown.live(T0, 60.0)  # never renewed: free to take
    assert LeaseState("bob", T0, T0, None).frees_at(60.0) == T0 + timedelta(seconds=60)


def test_renewal_interval_leaves_room_for_two_failed_renewals() -> None:
    assert renew_every(60.0) == 20.0


def test_lock_errors_are_preconditions_and_a_changed_release_is_a_verification() -> None:
    assert issubclass(LockLost, PreconditionFailed)
    assert issubclass(LockHeld, PreconditionFailed)
    assert issubclass(ReleaseChangedUnderRun, VerificationFailed)
    err = LockLost("taken over", holder="bob")
    assert err.holder == "bob"


def _pod(name: str, image: str) -> PodImages:
    return PodImages(name=name, phase="Running", ready=True, images=(image,), image_ids=())


GOOD, BAD = "registry.local/api:v1.0.0", "registry.local/api:v1.1.0"


def test_a_revision_after_the_rollback_is_a_changed_release() -> None:
    history = helm_history("v1.0.0", "v1.1.0", "v1.0.0 rollback 1", "v1.1.0")
    expected = expected_revision(2, rolled_back_by_this_run=True)
    assert expected == 3
    drift = release_drift(history, expected=expected, pods=[_pod("a", BAD)],
                          expected_images=[GOOD])  # fmt: skip
    assert drift.changed
    assert drift.newer is not None
    assert drift.newer.number == 4
    text = drift.describe()
    assert "revision 4" in text
    assert "v1.1.0" in text
    assert "not revision 3" in text
    assert BAD in text


def test_the_release_as_the_run_left_it_is_unchanged() -> None:
    history = helm_history("v1.0.0", "v1.1.0", "v1.0.0 rollback 1")
    drift = release_drift(history, expected=3, pods=[_pod("a", GOOD)], expected_images=[GOOD])
    assert not drift.changed
    # Already rolled back by an earlier run: this run expects the revision preflight read.
    assert expected_revision(3, rolled_back_by_this_run=False) == 3
    # No pod at all is a failed service, not a changed release.
    assert not release_drift(history, expected=3, pods=[], expected_images=[GOOD]).changed
    # Pods set to another image without Helm: changed, although the history is not.
    swapped = release_drift(history, expected=3, pods=[_pod("a", BAD)], expected_images=[GOOD])
    assert swapped.changed
    assert swapped.newer is None


def _ctx(tmp_path: Path, **over: Any) -> RunContext:
    replay = tmp_path / "unused.csv"
    replay.write_text("timestamp,error_ratio,p99_latency_s\n")
    params: dict[str, Any] = {
        "expected_cluster": "kwok-runbook",
        "replay_csv": str(replay),
        "output_dir": str(tmp_path / "evidence"),
        "incident_id": "inc-now",
        "lock_holder": "inc-now@me",
        # No helm here: a crashed run's read-back is then a recorded warning, not a call.
        "helm_binary": str(tmp_path / "no-helm"),
    }
    params.update(over)
    return start_run(clock=lambda: T0, out=lambda _t: None, environ={}, **params)


def test_facts_of_the_lock_and_a_changed_release_are_read_back(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    tl = ctx.timeline
    record_fact(tl, "decide", Decided("rollback", True, T0, T0), "verdict rollback")
    taken = LockTaken("inc-now@me", "default/l", 60.0, "deliberate", "bob", "bob's laptop is gone")
    record_fact(tl, "preflight", taken, "took")
    record_fact(tl, "preflight", EarlierRunFound("inc-old", "/e/inc-old", "interrupted"), "found")
    record_fact(tl, "check_recovery", ReleaseChanged(3, 4, "v1.1.0", T0, (BAD,)), "changed")
    facts = RunFacts.read(tl.events)
    assert facts.lock is not None
    assert facts.lock.reason == "bob's laptop is gone"
    assert facts.earlier_runs == (EarlierRunFound("inc-old", "/e/inc-old", "interrupted"),)
    assert facts.release_changed is not None
    assert facts.release_changed.images == (BAD,)
    assert facts.outcome is Outcome.RELEASE_CHANGED  # not "not recovered"
    record = build_record(
        tl.events, pd.DataFrame(), incident_id="inc-now", release="app",
        namespace="default", error_threshold=0.01, target_s=300.0, request_rate_rps=None,
        root_cause_hypothesis="", now=T0,
    )  # fmt: skip
    md = render_markdown(record)
    assert "taken over deliberately from bob (reason: bob's laptop is gone)" in md
    assert "Earlier run found: incident inc-old, evidence /e/inc-old (outcome: interrupted)" in md
    assert "now revision 4 (v1.1.0" in md
    assert "not revision 3" in md
    data = record.to_json_dict()
    assert data["earlier_runs"][0]["path"] == "/e/inc-old"
    assert data["lock"]["takeover"] == "deliberate"


def _crashed_folder(root: Path, incident: str, *, release: str = "app", ended: bool = False,
                    took_lock: bool = True, run: str = "") -> Path:  # fmt: skip
    folder = root / incident
    tl = Timeline(folder / "timeline.jsonl", clock=lambda: T0, run=run or f"run-{incident}")
    tl.record("start_run", EventKind.INFO, "run started",
              params={"release": release, "namespace": "default"}, dry_run=False)  # fmt: skip
    if took_lock:
        record_fact(tl, "preflight", LockTaken(f"{incident}@host", "default/l", 60.0), "took")
    tl.record("helm_rollback", EventKind.STEP_START, "")
    if ended:
        tl.record("helm_rollback", EventKind.STEP_FAILED, "boom", error_type="X",
                  error_kind="other")  # fmt: skip
    return folder


def test_crashed_runs_are_those_that_took_the_lock_and_never_ended(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    crashed = _crashed_folder(root, "inc-crashed")
    _crashed_folder(root, "inc-failed", ended=True)  # it wrote its own ending
    _crashed_folder(root, "inc-assessing", took_lock=False)  # may be alive: never touched
    _crashed_folder(root, "inc-other", release="other")
    (root / "not-an-incident").mkdir()
    found = earlier.crashed_runs(root, release="app", namespace="default", run="run-mine",
                                 exclude=root / "mine")  # fmt: skip
    assert [c.path for c in found] == [crashed]
    assert found[0].holder == "inc-crashed@host"
    assert found[0].facts.run == "run-inc-crashed"
    # A run is never "crashed" to itself.
    assert earlier.crashed_runs(root, release="app", namespace="default",
                                run="run-inc-crashed", exclude=root / "x") == []  # fmt: skip


def test_a_crashed_run_is_sealed_as_interrupted_and_linked(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    root = Path(ctx.settings.records.output_dir)
    crashed = _crashed_folder(root, "inc-crashed")
    linked = earlier.link_earlier_runs(ctx, "preflight", None)
    assert linked == [EarlierRunFound("inc-crashed", str(crashed.resolve()), "interrupted")]
    theirs = Timeline(crashed / "timeline.jsonl").events
    assert RunFacts.read(theirs).outcome is Outcome.INTERRUPTED
    assert any("inc-now" in e.message for e in theirs)  # names the run that sealed it
    assert json.loads((crashed / "record.json").read_text())["outcome"] == "interrupted"
    manifest = (crashed / "MANIFEST.sha256").read_text()
    assert "timeline.jsonl" in manifest
    assert "record.md" in manifest
    assert ctx.facts.earlier_runs == tuple(linked)
    # Sealed once: the next run finds nothing more to seal.
    assert earlier.link_earlier_runs(_ctx(tmp_path, incident_id="inc-3"), "preflight", None) == []


def test_a_dry_run_names_crashed_runs_without_touching_them(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, dry_run=True)
    crashed = _crashed_folder(Path(ctx.settings.records.output_dir), "inc-crashed")
    before = (crashed / "timeline.jsonl").read_bytes()
    assert earlier.link_earlier_runs(ctx, "preflight", None) == []
    assert (crashed / "timeline.jsonl").read_bytes() == before
    assert any("would seal" in e.message for e in ctx.timeline.events)


class _LostLock:
    """Stands in for a Lease another run took over (the sandbox test uses the real one)."""

    ttl_s = 60.0
    renewed_monotonic = 0.0
    name = "runbook-rollback-app"

    def renew(self, now: datetime) -> None:
        raise LockLost("the rollback lock is now held by 'bob'", holder="bob")

    def release(self) -> bool:
        return False


def test_a_mutating_step_stops_before_its_body_when_the_lock_is_lost(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    ctx.live.lock = _LostLock()  # type: ignore[assignment]
    ran: list[str] = []

    @runbook_step("change_something", mutating=True, only_when_rolling_back=False)
    def change(ctx: RunContext) -> None:
        ran.append("changed")

    with pytest.raises(LockLost) as lost:
        change(ctx)
    assert lost.value.holder == "bob"
    assert ran == []
    assert ctx.live.lock is None  # given up, so a re-run of the cell takes the lock again
    failed = [e for e in ctx.timeline.events if e.kind == EventKind.STEP_FAILED]
    assert failed[-1].data["error_kind"] == "precondition"
    assert any("rollback lock no longer held" in e.message for e in ctx.timeline.events)


def test_a_reading_step_records_a_lost_lock_and_goes_on(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    ctx.live.lock = _LostLock()  # type: ignore[assignment]

    @runbook_step("read_something", only_when_rolling_back=False)
    def read(ctx: RunContext) -> str:
        return "read"

    assert read(ctx) == "read"
    assert any("rollback lock lost" in e.message and e.data.get("holder") == "bob"
               for e in ctx.timeline.events)  # fmt: skip


def test_check_lock_does_nothing_in_a_dry_run(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, dry_run=True)
    ctx.live.lock = _LostLock()  # type: ignore[assignment]
    check_lock(ctx, "helm_rollback")  # a rehearsal changes nothing and takes no lock


def test_lock_takeover_reason_is_one_line(tmp_path: Path) -> None:
    from runbook_lib.errors import ParameterError

    with pytest.raises(ParameterError, match="lock_takeover_reason"):
        _ctx(tmp_path, lock_takeover_reason="a\nb")
    ttl = _ctx(tmp_path).settings.lock.lock_ttl
    assert ttl == 60.0  # a crashed run blocks for a minute at most
