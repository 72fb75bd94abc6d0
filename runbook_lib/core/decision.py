"""Runbook "When to Rollback": decide from metric samples whether the last deploy must be undone.

Implements DESIGN.md "Decision semantics" (the public contract) with numpy on whole arrays:

- only samples with ``deployed_at <= t <= min(deployed_at + window, now)`` count;
- error and latency rules: a *run* is a maximal sequence of consecutive breaching samples
  (strictly above the threshold); a missing value (NaN) or a gap longer than 1.5 steps ends a
  run; the rule fires at the first sample where the run's duration ``t - t_first`` is strictly
  longer than ``sustain``;
- business rule: baseline = mean over ``[deployed_at - baseline, deployed_at)``,
  smoothed(t) = mean over ``(t - smoothing, t]`` (pre-deploy samples included); fires at the
  first counted sample with ``smoothed < (1 - drop) * baseline``;
- manual rule: fires when a reason is given.

Breaches already present before the deploy, missing data and ignored samples become warnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from runbook_lib.core.series import (
    NS_PER_S,
    BoolArray,
    FloatArray,
    IntArray,
    find_runs,
    gaps_before,
    median_step_ns,
    times_ns,
    trailing_mean,
    window_starts,
)
from runbook_lib.core.thresholds import Thresholds
from runbook_lib.errors import ParameterError

__all__ = [
    "BUSINESS_TOLERANCE",
    "Decision",
    "Rule",
    "RuleResult",
    "RuleStatus",
    "Trigger",
    "Verdict",
    "evaluate",
]

ERROR_RATIO = "error_ratio"
P99_LATENCY = "p99_latency_s"
BUSINESS_PREFIX = "business:"
MANUAL_METRIC = "manual"

# Means are sums divided by counts, so float rounding could turn a drop of exactly 10% into
# 10.000000000001%. Differences smaller than one part in 10^9 of the threshold count as equal.
BUSINESS_TOLERANCE = 1e-9


class Rule(StrEnum):
    ERROR_RATE = "error_rate"
    LATENCY_P99 = "latency_p99"
    BUSINESS = "business"
    MANUAL = "manual"


class RuleStatus(StrEnum):
    FIRED = "fired"
    CLEAR = "clear"
    NOT_EVALUATED = "not_evaluated"


class Verdict(StrEnum):
    """DESIGN.md "Verdict": missing data must never read as healthy."""

    ROLLBACK = "rollback"
    NO_ROLLBACK = "no_rollback"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Trigger:
    """One rule that fired. ``peak`` and ``threshold`` are in the metric's unit.

    Error/latency: ``peak`` is the highest value of the run that fired. Business: ``threshold``
    is ``(1 - drop) * baseline`` and ``peak`` the lowest smoothed value of the run below it, which
    starts where it fires. Manual: ``metric`` is ``"manual"``, started and fired at ``now``,
    ``peak`` and ``threshold`` are 1 (one call made, one needed), ``reason`` is the call's reason.
    """

    rule: Rule
    metric: str
    started_at: datetime
    fired_at: datetime
    peak: float
    threshold: float
    reason: str = ""

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.value,
            "metric": self.metric,
            "started_at": self.started_at.isoformat(),
            "fired_at": self.fired_at.isoformat(),
            "peak": self.peak,
            "threshold": self.threshold,
        }


@dataclass(frozen=True)
class RuleResult:
    """How one rule fared: its status, a sentence saying why, the worst counted value."""

    rule: Rule
    metric: str
    status: RuleStatus
    reason: str
    worst: float | None  # highest value (error, latency) or lowest smoothed value (business)
    threshold: float | None
    required: bool = True

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.value,
            "metric": self.metric,
            "status": self.status.value,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Decision:
    """The outcome of "When to Rollback": the verdict, the rules that fired, each rule's result."""

    verdict: Verdict
    triggers: tuple[Trigger, ...]
    warnings: tuple[str, ...]
    rules: tuple[RuleResult, ...] = ()

    @property
    def rollback(self) -> bool:
        return self.verdict is Verdict.ROLLBACK

    def to_json_dict(self) -> dict[str, Any]:
        """The ``runbook evaluate --json`` document (DESIGN.md "Verdict")."""
        return {
            "rollback": self.rollback,
            "triggers": [t.to_json_dict() for t in self.triggers],
            "warnings": list(self.warnings),
            "verdict": self.verdict.value,
            "rules": [r.to_json_dict() for r in self.rules],
        }


def evaluate(
    samples: pd.DataFrame,
    *,
    deployed_at: datetime,
    now: datetime,
    thresholds: Thresholds = Thresholds(),  # noqa: B008 -- frozen, so one shared default is safe
    manual_reason: str | None = None,
) -> Decision:
    """Runbook "When to Rollback": apply every rule to ``samples`` for the deploy.

    ``samples`` is a metric frame (tz-aware, sorted, unique DatetimeIndex; float columns
    ``error_ratio``, ``p99_latency_s`` and any ``business:<name>``). Raises ``ParameterError``
    listing every problem with the inputs (naive times, ``now`` before the deploy, missing
    columns, unsorted index, blank manual reason).
    """
    _check_inputs(samples, deployed_at, now, manual_reason)
    deploy_ns = _ns(deployed_at)
    now_ns = _ns(now)
    all_times = times_ns(pd.DatetimeIndex(samples.index))
    step_ns = (
        thresholds.step * NS_PER_S if thresholds.step is not None else median_step_ns(all_times)
    )
    window_end_ns = min(deploy_ns + _to_ns(thresholds.window), now_ns)
    history_ns = _to_ns(max(thresholds.business_baseline, thresholds.business_smoothing))
    # Only a slice of a long history matters; one extra sample before it shows a gap at its start.
    lo = max(int(np.searchsorted(all_times, deploy_ns - history_ns, side="left")) - 1, 0)
    hi = int(np.searchsorted(all_times, window_end_ns, side="right"))
    times = all_times[lo:hi]
    counted = (times >= deploy_ns) & (times <= window_end_ns)
    gaps = gaps_before(times, step_ns)
    context = _Context(
        times=times,
        counted=counted,
        gaps=gaps,
        deploy_ns=deploy_ns,
        baseline_start_ns=deploy_ns - _to_ns(thresholds.business_baseline),
        thresholds=thresholds,
    )

    warnings: list[str] = []
    late = all_times.size - int(np.searchsorted(all_times, now_ns, side="right"))
    if late:
        warnings.append(f"{late} sample(s) after now ({_iso(now_ns)}) ignored")
    warnings.extend(_missing_data_warnings(context, step_ns, window_end_ns))

    triggers: list[Trigger] = []
    rules: list[RuleResult] = []
    for rule, column, limit in (
        (Rule.ERROR_RATE, ERROR_RATIO, thresholds.error_ratio),
        (Rule.LATENCY_P99, P99_LATENCY, thresholds.latency_p99),
    ):
        values = _column(samples, column, lo, hi)
        warnings.extend(_nan_warnings(context, column, values))
        warnings.extend(_pre_deploy_warnings(context, column, values, limit))
        trigger, check = _run_rule(context, rule, column, values, limit)
        triggers.extend([trigger] if trigger else [])
        rules.append(check)
    for column in sorted(c for c in samples.columns if str(c).startswith(BUSINESS_PREFIX)):
        values = _column(samples, column, lo, hi)
        warnings.extend(_nan_warnings(context, column, values))
        trigger, check, problem = _business_rule(context, column, values)
        triggers.extend([trigger] if trigger else [])
        warnings.extend([problem] if problem else [])
        rules.append(check)
    if manual_reason is not None:
        moment = _datetime(now_ns)
        triggers.append(
            Trigger(Rule.MANUAL, MANUAL_METRIC, moment, moment, 1.0, 1.0, manual_reason.strip())
        )
        rules.append(
            RuleResult(
                Rule.MANUAL,
                MANUAL_METRIC,
                RuleStatus.FIRED,
                f"fired: manual call: {manual_reason.strip()}",
                1.0,
                1.0,
            )
        )
    order = list(Rule)
    triggers.sort(key=lambda t: (t.fired_at, order.index(t.rule), t.metric))
    if triggers:
        verdict = Verdict.ROLLBACK
    elif any(r.required and r.status is RuleStatus.NOT_EVALUATED for r in rules):
        verdict = Verdict.INCONCLUSIVE
    else:
        verdict = Verdict.NO_ROLLBACK
    return Decision(verdict, tuple(triggers), tuple(warnings), tuple(rules))


@dataclass(frozen=True)
class _Context:
    times: IntArray
    counted: BoolArray
    gaps: BoolArray
    deploy_ns: int
    baseline_start_ns: int
    thresholds: Thresholds

    @cached_property
    def smoothing_left(self) -> IntArray:
        """Per sample, the first sample inside its smoothing span (shared by business metrics)."""
        return window_starts(self.times, _to_ns(self.thresholds.business_smoothing))


def _run_rule(
    ctx: _Context, rule: Rule, column: str, values: FloatArray, limit: float
) -> tuple[Trigger | None, RuleResult]:
    considered = values[ctx.counted]
    worst = float(np.nanmax(considered)) if np.any(~np.isnan(considered)) else None
    runs = find_runs(ctx.counted & (values > limit), ctx.gaps)
    found = runs.first_longer_than(ctx.times, _to_ns(ctx.thresholds.sustain))
    if found is None:
        status = RuleStatus.CLEAR if worst is not None else RuleStatus.NOT_EVALUATED
        reason = "clear" if worst is not None else "not judged: no valid sample"
        return None, RuleResult(rule, column, status, reason, worst, limit)
    run, fired = found
    start, end = int(runs.starts[run]), int(runs.ends[run])
    peak = float(np.max(values[start : end + 1]))
    trigger = Trigger(
        rule, column, _datetime(ctx.times[start]), _datetime(ctx.times[fired]), peak, limit
    )
    reason = f"fired at {_iso(ctx.times[fired])}"
    return trigger, RuleResult(rule, column, RuleStatus.FIRED, reason, worst, limit)


def _business_rule(
    ctx: _Context, column: str, values: FloatArray
) -> tuple[Trigger | None, RuleResult, str | None]:
    in_baseline = (ctx.times >= ctx.baseline_start_ns) & (ctx.times < ctx.deploy_ns)
    baseline_values = values[in_baseline & ~np.isnan(values)]
    if baseline_values.size == 0:
        problem = (
            f"{column}: no samples in the baseline period [{_iso(ctx.baseline_start_ns)}, "
            f"{_iso(ctx.deploy_ns)}); business rule not evaluated"
        )
        return (
            None,
            RuleResult(
                Rule.BUSINESS,
                column,
                RuleStatus.NOT_EVALUATED,
                "not judged: no baseline",
                None,
                None,
            ),
            problem,
        )
    exact_limit = (1.0 - ctx.thresholds.business_drop) * float(np.mean(baseline_values))
    limit = _readable(exact_limit)
    smoothed = trailing_mean(ctx.times, values, ctx.smoothing_left)
    considered = smoothed[ctx.counted]
    worst = _readable(float(np.nanmin(considered))) if np.any(~np.isnan(considered)) else None
    below = ctx.counted & (smoothed < exact_limit - BUSINESS_TOLERANCE * abs(exact_limit))
    runs = find_runs(below, ctx.gaps)
    if runs.starts.size == 0:
        status = RuleStatus.CLEAR if worst is not None else RuleStatus.NOT_EVALUATED
        reason = "clear" if worst is not None else "not judged: no valid sample"
        return None, RuleResult(Rule.BUSINESS, column, status, reason, worst, limit), None
    # No sustain: the first sample below fires; the peak is the lowest point of that run.
    fired, end = int(runs.starts[0]), int(runs.ends[0])
    peak = _readable(float(np.min(smoothed[fired : end + 1])))
    moment = _datetime(ctx.times[fired])
    trigger = Trigger(Rule.BUSINESS, column, moment, moment, peak, limit)
    result = RuleResult(
        Rule.BUSINESS, column, RuleStatus.FIRED, f"fired at {_iso(ctx.times[fired])}", worst, limit
    )
    return trigger, result, None


def _missing_data_warnings(ctx: _Context, step_ns: float | None, window_end_ns: int) -> list[str]:
    counted_times = ctx.times[ctx.counted]
    if counted_times.size == 0:
        return [
            f"missing data: no samples between the deploy ({_iso(ctx.deploy_ns)}) "
            f"and {_iso(window_end_ns)}; nothing evaluated"
        ]
    if step_ns is None:
        return ["missing data: fewer than two samples, so the step and gaps are unknown"]
    # The window's edges count as boundaries, so a series that starts late or stops early shows.
    edges = np.concatenate(([ctx.deploy_ns], counted_times, [window_end_ns]))
    spans = np.diff(edges)
    holes = np.flatnonzero(spans > 1.5 * step_ns)
    if holes.size == 0:
        return []
    step_text = f"1.5 x the {step_ns / NS_PER_S:g} s step"
    first = holes[0]
    where = f"from {_iso(edges[first])} to {_iso(edges[first + 1])}"
    if holes.size == 1:
        return [
            f"missing data: no samples {where} ({spans[first] / NS_PER_S:g} s, longer than "
            f"{step_text})"
        ]
    longest = holes[np.argmax(spans[holes])]
    return [
        f"missing data: {holes.size} gaps longer than {step_text} in the window; first {where}, "
        f"longest {spans[longest] / NS_PER_S:g} s from {_iso(edges[longest])}"
    ]


def _nan_warnings(ctx: _Context, column: str, values: FloatArray) -> list[str]:
    missing = ctx.counted & np.isnan(values)
    count = int(np.count_nonzero(missing))
    if count == 0:
        return []
    first = int(np.argmax(missing))
    return [
        f"missing data: {column} has {count} empty sample(s) in the window, "
        f"first at {_iso(ctx.times[first])}"
    ]


def _pre_deploy_warnings(ctx: _Context, column: str, values: FloatArray, limit: float) -> list[str]:
    before = (ctx.times >= ctx.baseline_start_ns) & (ctx.times < ctx.deploy_ns)
    breaching = before & (values > limit)
    count = int(np.count_nonzero(breaching))
    if count == 0:
        return []
    peak_at = int(np.argmax(np.where(breaching, values, -np.inf)))
    return [
        f"{column}: already above {limit:g} before the deploy ({count} of "
        f"{int(np.count_nonzero(before))} samples since {_iso(ctx.baseline_start_ns)}, "
        f"peak {values[peak_at]:g} at {_iso(ctx.times[peak_at])}); the deploy may not be the cause"
    ]


def _check_inputs(
    samples: pd.DataFrame, deployed_at: datetime, now: datetime, manual_reason: str | None
) -> None:
    problems: list[str] = []
    moments: tuple[tuple[str, object], ...] = (("deployed_at", deployed_at), ("now", now))
    for name, moment in moments:
        if not isinstance(moment, datetime):
            problems.append(f"{name}: expected a datetime, got {moment!r}")
        elif moment.tzinfo is None or moment.utcoffset() is None:
            problems.append(f"{name}: {moment.isoformat()} has no UTC offset")
    if not problems and now < deployed_at:
        problems.append(f"now: {now.isoformat()} is before deployed_at {deployed_at.isoformat()}")
    if manual_reason is not None and not manual_reason.strip():
        problems.append("manual_reason: give the reason for the manual call (it is recorded)")
    if not isinstance(samples, pd.DataFrame):
        problems.append(f"samples: expected a DataFrame, got {type(samples).__name__}")
        raise ParameterError(problems)
    index = samples.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        problems.append("samples: the index must be a tz-aware DatetimeIndex")
    elif not bool(np.all(np.diff(times_ns(index)) > 0)):  # cheaper than index.is_unique
        problems.append("samples: timestamps must be sorted and unique")
    for column in (ERROR_RATIO, P99_LATENCY):
        if column not in samples.columns:
            problems.append(f"samples: missing column {column!r}")
    for column in samples.columns:
        if not pd.api.types.is_numeric_dtype(samples[column]):
            problems.append(f"samples: column {column!r} is not numeric")
    if problems:
        raise ParameterError(problems)


def _column(samples: pd.DataFrame, column: str, lo: int, hi: int) -> FloatArray:
    return np.asarray(samples[column].to_numpy(dtype=np.float64, na_value=np.nan)[lo:hi])


def _readable(mean: float) -> float:
    # A mean of 89.9s computed from prefix sums may come out as 89.89999999999964; people read
    # these numbers in the decision, so keep the 12 significant digits that carry information.
    return float(f"{mean:.12g}")


def _ns(moment: datetime) -> int:
    return int(pd.Timestamp(moment).as_unit("ns").value)


def _to_ns(seconds: float) -> int:
    return round(seconds * NS_PER_S)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _datetime(ns: int | np.integer[Any]) -> datetime:
    return _EPOCH + timedelta(microseconds=int(ns) // 1000)


def _iso(ns: int | np.integer[Any]) -> str:
    return _datetime(ns).isoformat()
