"""Prometheus down when the run assesses (a real refused port): nothing can be judged, so the
verdict is inconclusive and a headless run stops before any change, or rolls back on the
on-call engineer's own call. Missing data never reads as healthy, nor as a failed step."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loopback_http import closed_port
from offline_run import offline_run

from runbook_lib import steps
from runbook_lib.core.decision import RuleStatus, Verdict
from runbook_lib.record.timeline import EventKind

DEPLOYED = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 14, 10, tzinfo=UTC)


def _run(tmp_path: Path, **extra: Any) -> steps.RunContext:
    """A run whose metrics come from a Prometheus that refuses connections."""
    prometheus_down = f"http://127.0.0.1:{closed_port()}"
    return offline_run(
        tmp_path,
        "inc-prom-down",
        replay_csv="",
        prometheus_url=prometheus_down,
        deployed_at=DEPLOYED,
        now=NOW,
        **extra,
    )


def test_prometheus_down_is_inconclusive_and_a_headless_run_stops(tmp_path: Path) -> None:
    ctx = _run(tmp_path)
    window = steps.assess(ctx)
    assert window.frame.empty
    made = steps.decide(ctx)
    assert made.decision.verdict is Verdict.INCONCLUSIVE
    assert made.rollback is False
    required = [r for r in made.decision.rules if r.required]
    assert {r.status for r in required} == {RuleStatus.NOT_EVALUATED}
    warnings = [e.message for e in ctx.timeline.events if e.kind == EventKind.WARNING]
    assert any("Prometheus could not be read" in w and "cannot reach" in w for w in warnings)
    assert any("inconclusive and headless: stopping before any change" in w for w in warnings)


def test_prometheus_down_with_a_manual_reason_rolls_back(tmp_path: Path) -> None:
    ctx = _run(tmp_path, manual_reason="checkout is down, we saw it by hand")
    steps.assess(ctx)
    made = steps.decide(ctx)
    assert made.decision.verdict is Verdict.ROLLBACK
    assert made.rollback is True
