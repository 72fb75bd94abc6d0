"""A straightforward per-sample reference of DESIGN.md "Decision semantics" and "Verdict".

Written from the contract alone, as plainly as possible: one Python loop over the samples per
rule, exact arithmetic throughout (times as integer nanoseconds, durations as fractions, means
as ``fractions.Fraction``), and no code shared with ``runbook_lib.core``. The property tests run
it and the engine on random series and compare the verdict, each rule's status and what fired
when; the benchmark measures how much faster the vectorised engine is. Warnings and reasons
are not reproduced.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pandas as pd

# "Below (1 - drop) x baseline" tolerates a relative 1e-12 (DESIGN.md).
BUSINESS_TOLERANCE = 1e-12
_NS = 10**9
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RefTrigger:
    rule: str
    metric: str
    started_at: int  # ns since the epoch
    fired_at: int
    peak: float
    threshold: float


@dataclass(frozen=True)
class RefDecision:
    verdict: str  # "rollback" | "no_rollback" | "inconclusive"
    statuses: dict[tuple[str, str], str] = field(default_factory=dict)  # (rule, metric) -> status
    triggers: list[RefTrigger] = field(default_factory=list)


@dataclass(frozen=True)
class RefRecovery:
    recovered: bool
    recovered_at: datetime | None


def ns_of(moment: datetime) -> int:
    """Nanoseconds since the epoch of a tz-aware datetime (a pandas Timestamp keeps its ns)."""
    if isinstance(moment, pd.Timestamp):
        return int(moment.value)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def duration_ns(seconds: float) -> int:
    return round(Fraction(seconds) * _NS)


def reference_evaluate(
    samples: pd.DataFrame,
    *,
    deployed_at: datetime,
    now: datetime,
    error_ratio: float = 0.01,
    latency_p99: float = 1.0,
    sustain: float = 120.0,
    window: float = 1800.0,
    business_drop: float = 0.10,
    business_baseline: float = 1800.0,
    business_smoothing: float = 300.0,
    step: float | None = None,
    manual_reason: str | None = None,
) -> RefDecision:
    """The decision of DESIGN.md for ``samples``, one sample at a time."""
    times = [int(ts.value) for ts in samples.index]
    deploy, now_ns = ns_of(deployed_at), ns_of(now)
    end = min(deploy + duration_ns(window), now_ns)
    hold = duration_ns(sustain)
    if step is not None:
        step_ns: Fraction | None = Fraction(duration_ns(step))
    else:
        known = [t for t in times if t <= now_ns]  # samples after now count for nothing
        spacings = sorted(b - a for a, b in itertools.pairwise(known))
        if spacings:
            middle = len(spacings) // 2
            step_ns = Fraction(spacings[(len(spacings) - 1) // 2] + spacings[middle], 2)
        else:
            step_ns = None

    def gap(i: int) -> bool:
        """A gap longer than 1.5 steps lies between sample i - 1 and sample i."""
        return step_ns is not None and Fraction(times[i] - times[i - 1]) > Fraction(3, 2) * step_ns

    counted = [i for i, t in enumerate(times) if deploy <= t <= end]
    columns = {str(c): [float(v) for v in samples[c]] for c in samples.columns}
    statuses: dict[tuple[str, str], str] = {}
    triggers: list[RefTrigger] = []

    for rule, name, limit in (
        ("error_rate", "error_ratio", error_ratio),
        ("latency_p99", "p99_latency_s", latency_p99),
    ):
        values = columns[name]
        fired = _sustained_run(times, values, counted, limit, hold, gap)
        if fired is not None:
            triggers.append(RefTrigger(rule, name, *fired, limit))
            statuses[(rule, name)] = "fired"
        else:
            valid = [times[i] for i in counted if not math.isnan(values[i])]
            judged = _judgeable(valid, deploy, end, hold)
            statuses[(rule, name)] = "clear" if judged else "not_evaluated"

    for name in sorted(c for c in columns if c.startswith("business:")):
        values = columns[name]
        baseline_from = deploy - duration_ns(business_baseline)
        baseline = [
            Fraction(v)
            for t, v in zip(times, values, strict=True)
            if baseline_from <= t < deploy and not math.isnan(v)
        ]
        if not baseline:
            statuses[("business", name)] = "not_evaluated"
            continue
        drop_limit = (1 - Fraction(business_drop)) * sum(baseline) / len(baseline)
        fired_business = _business_drop(
            times, values, counted, drop_limit, duration_ns(business_smoothing), gap
        )
        if fired_business is not None:
            at, peak = fired_business
            triggers.append(RefTrigger("business", name, at, at, peak, float(drop_limit)))
            statuses[("business", name)] = "fired"
        else:
            valid = [times[i] for i in counted if not math.isnan(values[i])]
            judged = _judgeable(valid, deploy, end, hold)
            statuses[("business", name)] = "clear" if judged else "not_evaluated"

    if manual_reason is not None:
        triggers.append(RefTrigger("manual", "manual", now_ns, now_ns, 1.0, 1.0))
        statuses[("manual", "manual")] = "fired"

    order = ["error_rate", "latency_p99", "business", "manual"]
    triggers.sort(key=lambda t: (t.fired_at, order.index(t.rule), t.metric))
    if triggers:
        verdict = "rollback"
    elif "not_evaluated" in statuses.values():
        verdict = "inconclusive"
    else:
        verdict = "no_rollback"
    return RefDecision(verdict, statuses, triggers)


def _sustained_run(
    times: list[int],
    values: list[float],
    counted: list[int],
    limit: float,
    hold: int,
    gap: Callable[[int], bool],
) -> tuple[int, int, float] | None:
    """(run start, fired at, peak) of the first run lasting longer than ``hold``, or None."""
    run_start: int | None = None
    fired: tuple[int, int] | None = None
    peak = -math.inf
    for position, i in enumerate(counted):
        breach = not math.isnan(values[i]) and values[i] > limit
        continues = (
            breach
            and run_start is not None
            and position > 0
            and counted[position - 1] == i - 1
            and not gap(i)
        )
        if fired is not None and not continues:
            break  # the run that fired has ended
        if not breach:
            run_start = None
            continue
        if not continues:
            run_start = i
        assert run_start is not None
        if fired is None and times[i] - times[run_start] > hold:
            fired = (times[run_start], times[i])
            peak = max(values[j] for j in range(run_start, i + 1))
        elif fired is not None:
            peak = max(peak, values[i])
    if fired is None:
        return None
    return fired[0], fired[1], peak


def _business_drop(
    times: list[int],
    values: list[float],
    counted: list[int],
    limit: Fraction,
    smoothing: int,
    gap: Callable[[int], bool],
) -> tuple[int, float] | None:
    """(fired at, lowest smoothed value of the stretch) of the first counted sample below."""
    below_limit = limit * (1 - Fraction(BUSINESS_TOLERANCE))
    # A sliding window over (t - smoothing, t], kept exactly with fractions.
    window: deque[tuple[int, Fraction]] = deque()
    total, right = Fraction(0), 0
    fired: int | None = None
    lowest: Fraction | None = None
    previous: int | None = None
    for i in counted:
        cutoff = times[i] - smoothing
        while right <= i:
            if times[right] > cutoff and not math.isnan(values[right]):
                window.append((times[right], Fraction(values[right])))
                total += window[-1][1]
            right += 1
        while window and window[0][0] <= cutoff:
            total -= window.popleft()[1]
        count = len(window)
        smoothed = total / count if count else None
        below = smoothed is not None and smoothed < below_limit
        if fired is not None:
            consecutive = previous == i - 1 and not gap(i)
            if not (below and consecutive):
                break
        previous = i
        if below:
            assert smoothed is not None
            if fired is None:
                fired = times[i]
            lowest = smoothed if lowest is None else min(lowest, smoothed)
    if fired is None or lowest is None:
        return None
    return fired, float(lowest)


def _judgeable(valid: list[int], start: int, end: int, hold: int) -> bool:
    """DESIGN.md "Verdict": some valid sample, and no stretch without one longer than hold."""
    if not valid:
        return False
    edges = [start, *valid, end]
    return all(b - a <= hold for a, b in itertools.pairwise(edges))


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
        spacings = sorted((b - a).total_seconds() for a, b in itertools.pairwise(times))
        if spacings:
            middle = len(spacings) // 2
            step_s = (spacings[(len(spacings) - 1) // 2] + spacings[middle]) / 2
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
