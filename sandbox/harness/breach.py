"""Wait until a bad deploy has breached long enough for the runbook's rules to fire.

The demo and the sandbox tests need the same thing: after ``deploy v1.1.0``, block until the
decision engine (with the caller's shortened thresholds) says "roll back". Waiting for the raw
error ratio is not enough: the ratio may already be high from an earlier bad deploy, while the
rules only count samples after *this* deploy and need them sustained.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from runbook_lib.adapters.prometheus import PrometheusSource
from runbook_lib.core.decision import Decision, evaluate
from runbook_lib.core.revisions import parse_history
from runbook_lib.core.settings import Metrics, Rules

__all__ = ["BreachTimeout", "last_deploy_time", "wait_for_breach"]


class BreachTimeout(RuntimeError):
    """The rules did not fire in time (is the traffic model running the bad version?)."""


def last_deploy_time(helm_history_json: str) -> datetime:
    """When the newest revision in ``helm history -o json`` was deployed."""
    history = parse_history(helm_history_json)
    return max(history, key=lambda r: r.number).updated


def wait_for_breach(
    prometheus_url: str,
    deployed_at: datetime,
    *,
    rules: Rules,
    rate_window: str,
    step_s: float = 2.0,
    timeout_s: float = 300.0,
    poll_s: float = 3.0,
    progress: Callable[[str], None] = lambda _line: None,
) -> tuple[Decision, float]:
    """Poll Prometheus until ``evaluate`` decides to roll back; returns it and the seconds waited.

    Raises ``BreachTimeout`` after ``timeout_s``.
    """
    source = PrometheusSource(prometheus_url, metrics=Metrics(prometheus_rate_window=rate_window))
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        now = datetime.now(UTC)
        samples = source.query_range(deployed_at - timedelta(minutes=2), now, step_s)
        decision = evaluate(samples, deployed_at=deployed_at, now=now, rules=rules)
        if decision.rollback:
            return decision, time.monotonic() - started
        ratio = samples["error_ratio"].dropna()
        latest = f"{ratio.iloc[-1]:.2%}" if len(ratio) else "n/a"
        progress(f"waiting for the breach to last {rules.sustain:.0f} s: 5xx ratio {latest}")
        time.sleep(poll_s)
    raise BreachTimeout(f"the rollback rules did not fire within {timeout_s:.0f} s of waiting")
