"""A run whose decision is "no rollback": every later step skips and nothing is touched.

Uses the real replay-CSV metrics source; no cluster is needed because no step after ``decide``
may reach for one (the kubeconfig given here names no cluster, so any attempt would fail).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clocks import TickingClock
from replay_files import write_replay

from runbook_lib import steps
from runbook_lib.record.facts import Outcome
from runbook_lib.steps import Skipped

DEPLOYED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# The change steps: every step after the decision up to ``finish``.
# 30 min before to 30 min after the deploy.
AROUND_THE_DEPLOY = range(-1800, 1801, 15)
AFTER_STEPS = steps.ROLLBACK_STEPS[steps.ROLLBACK_STEPS.index(steps.decide) + 1 : -1]


def _start(tmp_path: Path, error_ratio: float = 0.0005, **over: object) -> steps.RunContext:
    kubeconfig = tmp_path / "empty-kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    return steps.start_run(
        expected_cluster="kwok-runbook",
        kubeconfig=str(kubeconfig),
        replay_csv=str(
            write_replay(tmp_path / "replay.csv", DEPLOYED, range(-1800, 1801, 15), error_ratio)
        ),
        deployed_at=DEPLOYED,
        now=DEPLOYED + timedelta(minutes=30),
        output_dir=str(tmp_path / "out"),
        incident_id="inc-healthy",
        migrations_to_revert=1,
        clock=TickingClock(DEPLOYED + timedelta(minutes=31)),
        out=lambda _text: None,
        environ={},
        **over,
    )


def test_healthy_deploy_skips_every_rollback_step(tmp_path: Path) -> None:
    ctx = _start(tmp_path, confirm=True)
    window = steps.assess(ctx)
    assert len(window.frame) > 200
    made = steps.decide(ctx)
    assert not made.rollback
    assert made.decision.verdict == "no_rollback"
    results = [step(ctx) for step in AFTER_STEPS]
    assert all(isinstance(r, Skipped) for r in results)
    finished = steps.finish(ctx)
    assert finished.outcome is Outcome.NO_ROLLBACK
    assert finished.decision_to_recovery_s is None
    assert ctx.facts.outcome is Outcome.NO_ROLLBACK

    lines = [json.loads(line) for line in ctx.timeline.path.read_text().splitlines()]  # type: ignore[union-attr]
    skipped = [e["step"] for e in lines if e["message"] == "skipped: no rollback needed"]
    assert skipped == [s.__name__ for s in AFTER_STEPS]
    decision = next(e for e in lines if e["data"].get("fact") == "decided")
    assert decision["data"]["decision"]["rollback"] is False
    assert decision["data"]["verdict"] == "no_rollback"
    times = [e["at"] for e in lines]
    assert times == sorted(times)


def test_manual_call_rolls_back_even_on_healthy_metrics(tmp_path: Path) -> None:
    ctx = _start(tmp_path, manual_reason="checkout errors reported by support")
    steps.assess(ctx)
    verdict = steps.decide(ctx)
    assert verdict.rollback
    assert [str(t.rule) for t in verdict.decision.triggers] == ["manual"]
    # The next step now needs the cluster; the kubeconfig names none, so it must fail with a
    # parameter error before anything else happens.
    with pytest.raises(Exception, match="kubeconfig"):
        steps.preflight(ctx)
    assert ctx.timeline.last("preflight", "step_failed") is not None


def test_breach_in_replay_decides_rollback(tmp_path: Path) -> None:
    ctx = _start(tmp_path, error_ratio=0.05)
    steps.assess(ctx)
    verdict = steps.decide(ctx)
    assert verdict.rollback
    assert [str(t.rule) for t in verdict.decision.triggers] == ["error_rate"]
