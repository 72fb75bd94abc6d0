"""Where a run's samples come from: the replay file or the Prometheus server its parameters name."""

from __future__ import annotations

from pathlib import Path

from runbook_lib.adapters.metrics import MetricsSource
from runbook_lib.adapters.prometheus import PrometheusSource
from runbook_lib.adapters.replay import ReplaySource
from runbook_lib.run.params import RunParams

__all__ = ["metrics_source"]


def metrics_source(params: RunParams) -> MetricsSource:
    """``ReplaySource`` for ``replay_csv``, else ``PrometheusSource`` for ``prometheus_url``."""
    if params.replay_csv:
        return ReplaySource(Path(params.replay_csv))
    return PrometheusSource(
        params.prometheus_url,
        selector=params.prometheus_selector,
        rate_window=params.prometheus_rate_window,
        business_counters=dict(params.business_counter_map),
    )
