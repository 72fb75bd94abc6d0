"""The metrics port: where samples of error ratio, p99 latency and business metrics come from.

Implemented by ``adapters.prometheus.PrometheusSource`` (HTTP API) and
``adapters.replay.ReplaySource`` (the replay CSV of DESIGN.md). Tests use the real ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import pandas as pd

__all__ = ["BUSINESS_PREFIX", "ERROR_RATIO", "P99_LATENCY", "MetricsSource"]

ERROR_RATIO = "error_ratio"
P99_LATENCY = "p99_latency_s"
BUSINESS_PREFIX = "business:"


class MetricsSource(Protocol):
    """A source of regularly sampled series.

    ``query_range`` returns a DataFrame indexed by a tz-aware UTC ``DatetimeIndex`` (sorted,
    unique) with float columns ``error_ratio``, ``p99_latency_s`` and zero or more
    ``business:<name>``; NaN marks a missing sample. Raises ``MetricsError`` (or a subclass)
    when the data cannot be had.
    """

    def query_range(self, start: datetime, end: datetime, step_s: float) -> pd.DataFrame: ...
