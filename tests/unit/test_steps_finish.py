"""``finish``: decision -> verified recovery measured against the runbook's 5-minute target."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clocks import ManualClock
from offline_run import offline_run

from runbook_lib.record.facts import (
    Decided,
    Outcome,
    Recovered,
    RolledBack,
    RolloutCompleted,
    TargetResolved,
    record_fact,
)
from runbook_lib.steps import finish

T0 = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("recovered_after_s", "target", "within", "kind"),
    [
        pytest.param(299.0, "5m", True, "info", id="inside-5-min"),
        pytest.param(300.0, "5m", True, "info", id="exactly-5-min"),
        pytest.param(301.0, "5m", False, "warning", id="over-5-min"),
        pytest.param(301.0, "6m", True, "info", id="target-parameter-honoured"),
    ],
)
def test_recovery_time_is_judged_against_the_target(
    tmp_path: Path, recovered_after_s: float, target: str, within: bool, kind: str
) -> None:
    clock = ManualClock(T0)
    ctx = offline_run(tmp_path, "inc-f", target=target, clock=clock)
    tl = ctx.timeline
    record_fact(tl, "decide", Decided("rollback", True, T0, T0), "verdict rollback")
    record_fact(
        tl, "preflight", TargetResolved(2, "v1.1.0", 1, "v1.0.0", False), "target revision 1"
    )
    clock.now = T0 + timedelta(seconds=5)
    record_fact(tl, "helm_rollback", RolledBack(2, 1, "helm rollback app 1"), "rolled back")
    done = T0 + timedelta(seconds=40)
    record_fact(tl, "wait_for_rollout", RolloutCompleted("app", done), "rollout complete")
    verified = T0 + timedelta(seconds=recovered_after_s)
    clock.now = verified
    record_fact(tl, "check_recovery", Recovered(verified, verified, 0.0), "recovered")

    result = finish(ctx)

    assert result.within_target is within
    assert result.target_s == (360.0 if target == "6m" else 300.0)
    assert result.decision_to_rollout_s == 40.0
    assert result.decision_to_recovery_s == recovered_after_s
    assert result.outcome is Outcome.RECOVERED
    assert (ctx.timeline.last("finish", "warning") is not None) is (kind == "warning")
    finished = ctx.facts.finished
    assert finished is not None
    assert finished.decision_to_recovery_s == recovered_after_s
    assert finished.outcome == "recovered"
    fact_event = ctx.timeline.last("finish", "fact")
    assert fact_event is not None
    assert ("above the runbook's target" in fact_event.message) is (not within)
