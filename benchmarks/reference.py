"""A straightforward per-sample reference of DESIGN.md "Decision semantics".

Written as plainly as possible, one Python loop over the samples, with no shared code with
``runbook_lib.core``: the differential tests run both on random series and compare, and the
benchmark measures how much faster the vectorised engine is. Warnings are not reproduced; only
what fires, when, the peak and the threshold.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

# Must match runbook_lib.core.decision.BUSINESS_TOLERANCE (checked by the differential test).
BUSINESS_TOLERANCE = 1e-9


@dataclass(frozen=True)
class RefTrigger:
    rule: str
    metric: str
    started_at: datetime
    fired_at: datetime
    peak: float
    threshold: float


@dataclass(frozen=True)
class RefRecovery:
    recovered: bool
    recovered_at: datetime | None


def reference_evaluate(
    samples: pd.DataFrame,
    *,
    deployed_at: datetime,
    now: datetime,
    error_ratio: float = 0.01,
    latency_p99_s: float = 1.0,
    sustain_s: float = 120.0,
    window_s: float = 1800.0,
    business_drop: float = 0.10,
    business_baseline_s: float = 1800.0,
    business_smoothing_s: float = 300.0,
    step_s: float | None = None,
) -> list[RefTrigger]:
    """Return the rules that fire, sorted by firing time then rule, one loop over the samples."""
    times = [ts.to_pydatetime() for ts in samples.index]
    if step_s is None:
        spacings = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        step_s = statistics.median(spacings) if spacings else None
    window_end = min(deployed_at + timedelta(seconds=window_s), now)
    columns = {name: [float(v) for v in samples[name]] for name in samples.columns}
    triggers: list[RefTrigger] = []
    for rule, name, limit in (
        ("error_rate", "error_ratio", error_ratio),
        ("latency_p99", "p99_latency_s", latency_p99_s),
    ):
        fired = _sustained(times, columns[name], deployed_at, window_end, limit, sustain_s, step_s)
        if fired is not None:
            started, at, peak = fired
            triggers.append(RefTrigger(rule, name, started, at, peak, limit))
    for name in sorted(c for c in columns if c.startswith("business:")):
        fired_business = _business(
            times,
            columns[name],
            deployed_at,
            window_end,
            business_drop,
            business_baseline_s,
            business_smoothing_s,
            step_s,
        )
        if fired_business is not None:
            at, peak, limit = fired_business
            triggers.append(RefTrigger("business", name, at, at, peak, limit))
    order = ["error_rate", "latency_p99", "business", "manual"]
    triggers.sort(key=lambda t: (t.fired_at, order.index(t.rule), t.metric))
    return triggers


def _sustained(
    times: list[datetime],
    values: list[float],
    start: datetime,
    end: datetime,
    limit: float,
    sustain_s: float,
    step_s: float | None,
) -> tuple[datetime, datetime, float] | None:
    run_start: int | None = None
    previous: datetime | None = None
    fired_at: int | None = None
    for i, (t, v) in enumerate(zip(times, values, strict=True)):
        counted = start <= t <= end
        gap = (
            previous is not None
            and step_s is not None
            and (t - previous).total_seconds() > 1.5 * step_s
        )
        previous = t
        breach = counted and not math.isnan(v) and v > limit
        if not breach or gap:
            if fired_at is not None and run_start is not None:
                return _finish(times, values, run_start, fired_at, i)
            run_start = i if breach else None
            continue
        if run_start is None:
            run_start = i
        if fired_at is None and (t - times[run_start]).total_seconds() > sustain_s:
            fired_at = i
    if fired_at is not None and run_start is not None:
        return _finish(times, values, run_start, fired_at, len(times))
    return None


def _finish(
    times: list[datetime], values: list[float], start: int, fired: int, stop: int
) -> tuple[datetime, datetime, float]:
    return times[start], times[fired], max(values[start:stop])


def _business(
    times: list[datetime],
    values: list[float],
    start: datetime,
    end: datetime,
    drop: float,
    baseline_s: float,
    smoothing_s: float,
    step_s: float | None,
) -> tuple[datetime, float, float] | None:
    baseline_from = start - timedelta(seconds=baseline_s)
    baseline = [
        v
        for t, v in zip(times, values, strict=True)
        if baseline_from <= t < start and not math.isnan(v)
    ]
    if not baseline:
        return None
    limit = (1.0 - drop) * (sum(baseline) / len(baseline))
    smoothing = timedelta(seconds=smoothing_s)
    fired: int | None = None
    lowest = math.inf
    previous: datetime | None = None
    left = 0  # first sample inside (t - smoothing, t]
    for i, t in enumerate(times):
        gap = (
            previous is not None
            and step_s is not None
            and (t - previous).total_seconds() > 1.5 * step_s
        )
        previous = t
        if not start <= t <= end:
            if fired is not None:
                break
            continue
        while times[left] <= t - smoothing:
            left += 1
        window = [values[j] for j in range(left, i + 1) if not math.isnan(values[j])]
        smoothed = sum(window) / len(window) if window else math.nan
        below = not math.isnan(smoothed) and smoothed < limit - BUSINESS_TOLERANCE * abs(limit)
        if fired is not None and (not below or gap):
            break
        if below:
            if fired is None:
                fired = i
            lowest = min(lowest, smoothed)
    if fired is None:
        return None
    return times[fired], lowest, limit


def reference_recovery(
    samples: pd.DataFrame,
    *,
    rollout_done_at: datetime,
    below: float = 0.001,
    within_s: float = 120.0,
    consecutive: int = 2,
    step_s: float | None = None,
) -> RefRecovery:
    """Per-sample reference of the "Check error rate" recovery rule."""
    times = [ts.to_pydatetime() for ts in samples.index]
    if step_s is None:
        spacings = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        step_s = statistics.median(spacings) if spacings else None
    deadline = rollout_done_at + timedelta(seconds=within_s)
    run_start: datetime | None = None
    length = 0
    previous: datetime | None = None
    for t, v in zip(times, samples["error_ratio"], strict=True):
        if t < rollout_done_at:
            continue
        gap = (
            previous is not None
            and step_s is not None
            and (t - previous).total_seconds() > 1.5 * step_s
        )
        previous = t
        ok = not math.isnan(float(v)) and float(v) < below
        if not ok:
            run_start, length = None, 0
            continue
        if run_start is None or gap:
            run_start, length = t, 0
        length += 1
        if length >= consecutive and run_start <= deadline:
            return RefRecovery(True, t)
    return RefRecovery(False, None)
