"""Prometheus as a ``MetricsSource``: the runbook's series over ``/api/v1/query_range``.

Queries come from ``core.promql`` (built from metric names and a selector, or raw PromQL per
column). Samples are put on one grid of multiples of the step (epoch-aligned, so repeated
queries and plots line up) with NaN where Prometheus had no sample. Everything that can go wrong
on the way becomes ``MetricsError`` carrying the query and Prometheus' own error text, with
``retryable`` as the shared HTTP client (``adapters.http``) decides it; that client also
retries a query a couple of times on failures that may pass (server errors, timeouts, refused).
The requests themselves are ``adapters.prometheus_api``'s.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from runbook_lib.adapters.prometheus_api import PrometheusApi
from runbook_lib.core.promql import Metrics, build_queries
from runbook_lib.errors import MetricsError, ParameterError

__all__ = ["PrometheusSource"]

# Prometheus refuses a range query of more than 11,000 points per series; stay below it.
MAX_POINTS_PER_REQUEST = 10_000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class PrometheusSource:
    """``MetricsSource`` reading a Prometheus server's HTTP API.

    ``url`` is the server's base URL (a path prefix such as ``/prometheus`` is kept);
    ``metrics`` (the settings' group) says which query each column runs: raw PromQL or built
    from a naming preset. ``timeout_s`` bounds each HTTP request. Raises ``ParameterError``
    for a bad URL or timeout.
    """

    def __init__(
        self, url: str, *, metrics: Metrics | None = None, timeout_s: float = 10.0
    ) -> None:
        self._api = PrometheusApi(url, timeout_s=timeout_s)
        self.url = self._api.url
        self.timeout_s = timeout_s
        self.metrics = metrics or Metrics()
        self.queries = build_queries(self.metrics)

    def query_range(self, start: datetime, end: datetime, step_s: float) -> pd.DataFrame:
        """Samples of every column for the runbook's assessment ("When to Rollback").

        Returns the metric frame of ``MetricsSource`` on the grid of multiples of ``step_s``
        within ``[start, end]``; ``attrs["queries"]`` holds the PromQL per column and
        ``attrs["warnings"]`` Prometheus' warnings. Raises ``ParameterError`` for naive times,
        ``end`` before ``start`` or a bad step, and ``MetricsError`` when a query fails, returns
        no data at all, returns several series, or yields an infinite value.
        """
        grid_ms = self._grid(start, end, step_s)
        step_ms = round(step_s * 1000)
        columns: dict[str, FloatArray] = {}
        warnings: list[str] = []
        for column, query in self.queries.items():
            values = np.full(grid_ms.size, np.nan)
            for first in range(0, grid_ms.size, MAX_POINTS_PER_REQUEST):
                chunk = grid_ms[first : first + MAX_POINTS_PER_REQUEST]
                series, notes = self._fetch(query, int(chunk[0]), int(chunk[-1]), step_ms)
                warnings.extend(f"{column}: {note}" for note in notes)
                self._place(series, column, query, grid_ms, step_ms, values)
            if np.isnan(values).all():
                raise MetricsError(
                    f"no data for {column} between {start.isoformat()} and {end.isoformat()} "
                    f"from {self.url}: check the metric names, the selector and the time range",
                    command=query,
                )
            columns[column] = values
        stamps = pd.to_datetime(grid_ms, unit="ms", utc=True).as_unit("ns")
        index = pd.DatetimeIndex(stamps, name="timestamp")
        frame = pd.DataFrame(columns, index=index)
        frame.attrs["queries"] = dict(self.queries)
        frame.attrs["warnings"] = warnings
        return frame

    @staticmethod
    def _grid(start: datetime, end: datetime, step_s: float) -> IntArray:
        problems = []
        if start.tzinfo is None or end.tzinfo is None:
            problems.append("start/end: need timezone-aware datetimes (UTC)")
        if not (math.isfinite(step_s) and step_s >= 0.001):
            problems.append(f"step_s: must be at least 0.001 s, got {step_s}")
        if problems:
            raise ParameterError(problems)
        step_ms = round(step_s * 1000)
        first = math.ceil(start.timestamp() * 1000 / step_ms) * step_ms
        last = math.floor(end.timestamp() * 1000 / step_ms) * step_ms
        if last < first:
            span = f"{start.isoformat()}..{end.isoformat()}"
            raise ParameterError([f"start/end: {span} holds no multiple of the step {step_s} s"])
        return np.arange(first, last + 1, step_ms, dtype=np.int64)

    def _place(
        self,
        series: list[dict[str, Any]],
        column: str,
        query: str,
        grid_ms: IntArray,
        step_ms: int,
        values: FloatArray,
    ) -> None:
        if not series:
            return
        if len(series) > 1:
            labels = "; ".join(json.dumps(s.get("metric", {}), sort_keys=True) for s in series[:3])
            raise MetricsError(
                f"{column}: the query returned {len(series)} series ({labels} ...); it must "
                "return one: aggregate it, e.g. sum(...), or narrow the selector",
                command=query,
            )
        try:
            pairs = [(round(float(t) * 1000), float(v)) for t, v in series[0]["values"]]
        except (KeyError, TypeError, ValueError) as err:
            raise MetricsError(
                f"{column}: unexpected sample format from {self.url}: {err}", command=query
            ) from err
        for t_ms, value in pairs:
            if math.isinf(value):
                at = pd.Timestamp(t_ms, unit="ms", tz="UTC").isoformat()
                hint = (
                    " (p99 beyond the histogram's largest finite bucket)"
                    if column == "p99_latency_s"
                    else ""
                )
                raise MetricsError(
                    f"{column} is {value} at {at}{hint}; an infinite sample cannot be assessed",
                    command=query,
                )
            slot = (t_ms - int(grid_ms[0])) // step_ms
            if 0 <= slot < grid_ms.size and int(grid_ms[slot]) == t_ms:
                values[slot] = value  # NaN from Prometheus (e.g. 0/0) stays a missing sample

    def _fetch(
        self, query: str, start_ms: int, end_ms: int, step_ms: int
    ) -> tuple[list[dict[str, Any]], list[str]]:
        return self._api.query_range(query, start_ms=start_ms, end_ms=end_ms, step_ms=step_ms)
