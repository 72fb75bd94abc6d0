"""``finish``: decision -> verified recovery measured against the runbook's 5-minute target."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runbook_lib.core.decision import Decision, Verdict
from runbook_lib.core.revisions import Revision, RollbackTarget
from runbook_lib.steps import finish, start_run

T0 = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("recovered_after_s", "within", "kind"),
    [
        pytest.param(299.0, True, "info", id="inside-5-min"),
        pytest.param(300.0, True, "info", id="exactly-5-min"),
        pytest.param(301.0, False, "warning", id="over-5-min"),
    ],
)
def test_recovery_time_is_judged_against_the_target(
    tmp_path: Path, recovered_after_s: float, within: bool, kind: str
) -> None:
    ctx = start_run(
        expected_cluster="kwok-runbook",
        replay_csv=str(tmp_path / "unused.csv"),
        output_dir=str(tmp_path),
        incident_id="inc-f",
        out=lambda _text: None,
        environ={},
    )
    good = Revision(1, "superseded", "app-0.1.0", "v1.0.0", T0, "Install complete")
    bad = Revision(2, "deployed", "app-0.1.0", "v1.1.0", T0, "Upgrade complete")
    s = ctx.state
    s.decision = Decision(verdict=Verdict.ROLLBACK, triggers=(), warnings=())
    s.target = RollbackTarget(current=bad, target=good)
    s.rolled_back = True
    s.decided_at = T0
    s.rollout_done_at = T0 + timedelta(seconds=40)
    s.verified_at = T0 + timedelta(seconds=recovered_after_s)

    result = finish(ctx)

    assert result.within_target is within
    assert result.decision_to_rollout_s == 40.0
    assert result.decision_to_recovery_s == recovered_after_s
    event = ctx.timeline.last("finish", kind)
    assert event is not None
    assert event.data["decision_to_recovery_s"] == recovered_after_s
    assert ("above the runbook's target" in event.message) is (not within)
    assert result.outcome == "rolled back to revision 1"
