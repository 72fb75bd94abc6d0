"""The incident record is computed from the timeline and the samples, whatever the run did."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from clocks import ManualClock

from runbook_lib.core.redact import Redactor
from runbook_lib.evidence.incident_record import (
    IncidentRecord,
    Outcome,
    build_record,
    render_markdown,
    write_record,
)
from runbook_lib.record.facts import (
    Assessed,
    Decided,
    Fact,
    NotRecovered,
    Recovered,
    RolledBack,
    RolloutCompleted,
    TargetResolved,
    record_fact,
)
from runbook_lib.record.timeline import Event, EventKind, Timeline

DEPLOY = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
# A run as the ``run`` fixture starts it: its timeline and the clock the test moves.
Started = tuple[Timeline, ManualClock]


def samples(*, bad_from: int, bad_until: int, minutes: int = 20, rps: float | None = None
            ) -> pd.DataFrame:  # fmt: skip
    """15 s samples from 5 min before the deploy; 20% errors between the two sample indexes."""
    index = pd.date_range(DEPLOY - timedelta(minutes=5), periods=minutes * 4, freq="15s")
    ratio = [0.2 if bad_from <= i < bad_until else 0.0005 for i in range(len(index))]
    frame = pd.DataFrame({"error_ratio": ratio, "p99_latency_s": 0.3}, index=index)
    if rps is not None:
        frame["request_rate_rps"] = rps
    return frame


def _step(tl: Timeline, clock: ManualClock, step: str, seconds: float, *facts: Fact) -> None:
    """A step of ``seconds`` that records ``facts`` at its end, as the steps do."""
    tl.record(step, EventKind.STEP_START, f"{step} started")
    clock.advance(seconds)
    for fact in facts:
        record_fact(tl, step, fact, f"{step}: {fact.NAME}")
    tl.record(step, EventKind.STEP_END, f"{step} finished")


def _start(tl: Timeline, *, dry_run: bool = False) -> None:
    tl.record("start_run", EventKind.INFO, "run started", params={}, dry_run=dry_run)


def _decided(clock: ManualClock, *, rollback: bool = True, verdict: str = "rollback") -> Decided:
    fired = (DEPLOY + timedelta(minutes=3)).isoformat()
    triggers = [{"rule": "error_rate", "metric": "error_ratio", "peak": 0.2,
                 "threshold": 0.01, "fired_at": fired}] if rollback else []  # fmt: skip
    return Decided(
        verdict=verdict,
        rollback=rollback,
        deployed_at=DEPLOY,
        evaluated_at=clock.now,
        decision={"rollback": rollback, "triggers": triggers, "warnings": [], "verdict": verdict,
                  "rules": [{"rule": "error_rate", "metric": "error_ratio", "status": "fired",
                             "reason": "fired"}]},
    )  # fmt: skip


@pytest.fixture
def run() -> Started:
    clock = ManualClock(DEPLOY + timedelta(minutes=4))
    tl = Timeline(clock=clock)
    _start(tl)
    _step(tl, clock, "assess", 2, Assessed(DEPLOY, "parameter", 80))
    _step(tl, clock, "decide", 0, _decided(clock))
    return tl, clock


def _recovered_run(tl: Timeline, clock: ManualClock, *, rollout_s: float) -> None:
    _step(tl, clock, "preflight", 3, TargetResolved(2, "v1.1.0", 1, "v1.0.0", False))
    _step(tl, clock, "helm_rollback", 5, RolledBack(2, 1, "helm rollback app 1"))
    tl.record("wait_for_rollout", EventKind.STEP_START, "wait_for_rollout started")
    clock.advance(rollout_s)
    record_fact(tl, "wait_for_rollout", RolloutCompleted("app", clock.now), "rolled out")
    tl.record("wait_for_rollout", EventKind.STEP_END, "wait_for_rollout finished")
    clock.advance(30)
    recovered_at = clock.now  # the sample that shows recovery ...
    clock.advance(1)  # ... and the moment this run verified it
    _step(tl, clock, "check_recovery", 0, Recovered(recovered_at, clock.now, 0.0005))


def _build(events: list[Event], frame: pd.DataFrame, clock: ManualClock, **kw: object
           ) -> IncidentRecord:  # fmt: skip
    kw.setdefault("incident_id", "I")
    return build_record(events, frame, release="app", namespace="default", now=clock.now,
                        **kw)  # type: ignore[arg-type]  # fmt: skip


def test_recovered_run_measures_the_five_minute_target(run: Started) -> None:
    tl, clock = run
    decision_at = tl.last("decide", "fact").at  # type: ignore[union-attr]
    _recovered_run(tl, clock, rollout_s=60)
    record = _build(tl.events, samples(bad_from=20, bad_until=36), clock, incident_id="INC-1")
    assert record.outcome == Outcome.RECOVERED
    assert record.verdict == "rollback"
    assert record.rolled_back
    assert record.deployed_at == DEPLOY
    assert record.decision_at == decision_at
    assert record.time_to_detection_s == 180.0  # the rule fired 3 min after the deploy
    assert record.time_to_decision_s == 242.0  # deploy +4 min, assess took 2 s
    assert record.decision_to_recovery_s == 3 + 5 + 60 + 30 + 1  # verified, not step end
    assert record.rollout_done_at == decision_at + timedelta(seconds=3 + 5 + 60)
    assert record.within_target is True
    assert (record.bad_version, record.good_version) == ("v1.1.0", "v1.0.0")
    assert (record.bad_revision, record.good_revision) == (2, 1)
    assert record.triggers[0]["rule"] == "error_rate"
    # 16 samples of 15 s above 1% -> 4 minutes; no request rate known -> no count.
    assert record.impact.minutes_above_threshold == 4.0
    assert record.impact.failed_requests is None
    assert record.impact.peak_error_ratio == 0.2
    assert [s.step for s in record.steps][:4] == ["assess", "decide", "preflight", "helm_rollback"]


def test_slow_rollout_misses_the_target_and_is_listed(run: Started) -> None:
    tl, clock = run
    _recovered_run(tl, clock, rollout_s=290)
    record = _build(tl.events, samples(bad_from=0, bad_until=0), clock)
    assert record.within_target is False
    # The target is the run's parameter, not a constant.
    assert _build(tl.events, samples(bad_from=0, bad_until=0), clock,
                  target_s=600.0).within_target is True  # fmt: skip
    assert [s.step for s in record.slow_steps(slow_s=60)] == ["wait_for_rollout"]


def test_failed_requests_come_from_the_request_rate(run: Started) -> None:
    tl, clock = run
    _recovered_run(tl, clock, rollout_s=10)
    frame = samples(bad_from=20, bad_until=24, rps=50.0)  # 4 samples of 15 s at 20% of 50/s
    record = _build(tl.events, frame, clock)
    ok_samples = len(frame[(frame.index >= DEPLOY) & (frame.index <= record.recovered_at)]) - 4
    expected = 4 * 0.2 * 50 * 15 + ok_samples * 0.0005 * 50 * 15
    assert record.impact.failed_requests == pytest.approx(expected, abs=0.1)
    constant = _build(tl.events, samples(bad_from=20, bad_until=24), clock,
                      request_rate_rps=50.0)  # fmt: skip
    assert constant.impact.failed_requests == record.impact.failed_requests


def test_recovery_that_fails_is_not_recovered(run: Started) -> None:
    tl, clock = run
    _step(tl, clock, "preflight", 3, TargetResolved(2, "v1.1.0", 1, "v1.0.0", False))
    _step(tl, clock, "helm_rollback", 5, RolledBack(2, 1, "helm rollback app 1"))
    _step(tl, clock, "wait_for_rollout", 20, RolloutCompleted("app", clock.now))
    tl.record("check_recovery", EventKind.STEP_START, "check_recovery started")
    clock.advance(150)
    record_fact(tl, "check_recovery", NotRecovered("5xx above 0.1% for 120 s"), "not recovered")
    tl.record("check_recovery", EventKind.STEP_FAILED, "check_recovery failed: VerificationFailed",
              error_type="VerificationFailed", error_kind="verification")  # fmt: skip
    record = _build(tl.events, samples(bad_from=20, bad_until=80), clock)
    assert record.outcome == Outcome.NOT_RECOVERED
    assert record.recovered_at is None
    assert record.within_target is None
    assert [s.step for s in record.failed_steps] == ["check_recovery"]
    assert record.impact.window_end == clock.now  # impact runs until the record was built


def test_no_rollback_and_dry_run_outcomes() -> None:
    clock = ManualClock(DEPLOY)
    tl = Timeline(clock=clock)
    _start(tl, dry_run=True)
    _step(tl, clock, "decide", 0, _decided(clock, rollback=False, verdict="no_rollback"))
    healthy = _build(tl.events, samples(bad_from=0, bad_until=0), clock)
    assert healthy.outcome == Outcome.NO_ROLLBACK
    assert healthy.verdict == "no_rollback"
    assert not healthy.rolled_back
    _start(tl, dry_run=True)
    _step(tl, clock, "decide", 0, _decided(clock))
    _step(tl, clock, "helm_rollback", 1)
    tl.record("helm_rollback", EventKind.DRY_RUN, "would run: helm rollback app 1")
    record = _build(tl.events, samples(bad_from=0, bad_until=0), clock)
    assert record.outcome == Outcome.DRY_RUN
    assert not record.rolled_back
    assert record.steps[-1].status == "dry_run"


def test_rerun_of_an_incident_records_only_the_latest_run(
    run: Started,
) -> None:
    tl, clock = run
    tl.record("helm_rollback", EventKind.STEP_START, "x")
    tl.record("helm_rollback", EventKind.STEP_FAILED, "boom", error_type="CommandFailed",
              error_kind="other")  # fmt: skip
    assert _build(tl.events, samples(bad_from=0, bad_until=0), clock).outcome == Outcome.FAILED
    _start(tl)
    _step(tl, clock, "assess", 1, Assessed(DEPLOY, "parameter", 80))
    _step(tl, clock, "decide", 0, _decided(clock))
    _recovered_run(tl, clock, rollout_s=10)
    record = _build(tl.events, samples(bad_from=0, bad_until=0), clock)
    assert record.outcome == Outcome.RECOVERED
    assert not record.failed_steps


def test_written_record_is_redacted_and_readable(run: Started, tmp_path: Path) -> None:
    tl, clock = run
    tl.record("notify", EventKind.INFO, "posted with token=plantedRecordToken9")
    _recovered_run(tl, clock, rollout_s=10)
    record = _build(tl.events, samples(bad_from=20, bad_until=30), clock, incident_id="INC-5",
                    root_cause_hypothesis="cache key change")  # fmt: skip
    json_path, md_path = write_record(record, tmp_path, redact=Redactor.build())
    data = json.loads(json_path.read_text())
    assert data["outcome"] == "recovered"
    assert data["within_target"] is True
    assert data["root_cause_hypothesis"] == "cache key change"
    md = md_path.read_text()
    assert "Outcome: **recovered**" in md
    assert "cache key change" in md
    assert "| check_recovery |" in md
    for text in (json_path.read_text(), md):
        assert "plantedRecordToken9" not in text


def test_record_md_labels_each_figure_in_its_unit(run: Started) -> None:
    tl, clock = run
    _recovered_run(tl, clock, rollout_s=10)
    frame = samples(bad_from=20, bad_until=30)
    frame.iloc[25, 0] = 0.0579452541770352
    frame["p99_latency_s"] = 1.9959000000000011
    record = _build(tl.events, frame, clock, recovery_threshold=0.001)
    md = render_markdown(record)
    assert md.splitlines()[2] == "**Rolled back, recovered**"
    assert "error_rate on error_ratio: peak of the breach that fired 20 %, threshold 1 %" in md
    assert "5xx ratio between the deploy and recovery: peak 20 %, mean " in md
    assert "5xx ratio before the deploy (mean): 0.05 %; after recovery (mean): 0.05 %" in md
    assert "p99 latency between the deploy and recovery: peak 2.00 s" in md
    assert "Decision to verified recovery: 49 s (target 5 min: met)" in md
    for raw in ("0.0579452541770352", "1.9959", "0.0005 ", "242.0"):
        assert raw not in md, raw
    happened = md.split("## What happened (UTC)")[1].split("##")[0]
    assert "- 10:04:10 Rolled back revision 2 -> 1" in happened
    assert "5xx ratio back under 0.1 % (last sample 0.05 %)" in happened
    assert "finished" not in happened


def _step_states(md: str) -> dict[str, str]:
    table = md.split("## Steps")[1].split("##")[0]
    rows = [r.split("|") for r in table.splitlines() if r.startswith("| ") and "---" not in r]
    return {r[1].strip(): r[4].strip() for r in rows[1:]}


def test_a_step_still_open_says_what_it_is(run: Started) -> None:
    tl, clock = run
    _recovered_run(tl, clock, rollout_s=10)
    _step(tl, clock, "finish", 0)
    tl.record("write_record", EventKind.STEP_START, "write_record started")
    written = render_markdown(_build(tl.events, samples(bad_from=20, bad_until=30), clock))
    assert _step_states(written)["write_record"] == "in progress: this record was written during it"
    assert "_Written during write_record: what came after it is in" in written
    # A run that stopped in a step (the record written afterwards from outside the kernel).
    tl.record("wait", EventKind.STEP_START, "wait started")
    tl.record("wait", EventKind.STEP_FAILED, "wait failed: KeyboardInterrupt: ",
              error_type="KeyboardInterrupt", error_kind="interrupted")  # fmt: skip
    stopped = render_markdown(_build(tl.events, samples(bad_from=20, bad_until=30), clock))
    assert _step_states(stopped)["write_record"] == "did not end (the run stopped in it)"
    assert _step_states(stopped)["wait"] == "FAILED: wait failed: KeyboardInterrupt:"
