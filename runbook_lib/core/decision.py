"""Runbook "When to Rollback": decide from metric samples whether the last deploy must be undone.

Implements DESIGN.md "Decision semantics" and "Verdict" (the public contract) with numpy on
whole arrays; times are int64 nanoseconds and compared exactly:

- only samples with ``deployed_at <= t <= min(deployed_at + window, now)`` count (the elapsed
  window); samples after ``now`` count for nothing;
- error and latency rules: a *run* is a maximal sequence of consecutive breaching samples
  (strictly above the threshold); a missing value (NaN) or a gap longer than 1.5 steps ends a
  run; the rule fires at the first sample where the run's duration ``t - t_first`` is strictly
  longer than ``sustain``;
- business rule: baseline = mean over ``[deployed_at - baseline, deployed_at)``,
  smoothed(t) = mean over ``(t - smoothing, t]`` (pre-deploy samples included); fires at the
  first counted sample with ``smoothed < (1 - drop) * baseline``, tolerating rounding only;
- manual rule: fires when a reason is given.

The verdict is ``rollback`` when a rule fired, ``inconclusive`` when none fired but a required
rule could not be judged (no valid sample, or a stretch without one longer than the sustain, or
no baseline), ``no_rollback`` otherwise. Breaches already present before the deploy, missing
data and ignored samples become warnings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from runbook_lib.core.checks import reason as reason_problem
from runbook_lib.core.readable import exact, exact_percent, exact_seconds
from runbook_lib.core.series import (
    FIRST_NS,
    LAST_NS,
    NS_PER_S,
    BoolArray,
    FloatArray,
    IntArray,
    UIntArray,
    WindowPlan,
    exact_mean,
    find_runs,
    gap_limit_ns,
    gaps_from_spacings,
    median_of_spacings,
    seconds_to_ns,
    spacings_ns,
    times_ns,
    window_means,
    window_starts,
)
from runbook_lib.core.settings import Rules, now_problem
from runbook_lib.core.units import instant_ns
from runbook_lib.core.verdict import Verdict
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
    "evaluated_at",
]

ERROR_RATIO = "error_ratio"
P99_LATENCY = "p99_latency_s"
BUSINESS_PREFIX = "business:"
MANUAL_METRIC = "manual"

# "Below (1 - drop) x baseline" tolerates floating-point rounding only (DESIGN.md): the drop
# parameter 10% is not exactly 0.1 in binary, so a drop of exactly 10% must not fire, while
# 89.99999999 against a baseline of 100 (a difference of 1e-10) must.
BUSINESS_TOLERANCE = 1e-12
_RULES = Rules()


class Rule(StrEnum):
    ERROR_RATE = "error_rate"
    LATENCY_P99 = "latency_p99"
    BUSINESS = "business"
    MANUAL = "manual"


class RuleStatus(StrEnum):
    FIRED = "fired"
    CLEAR = "clear"
    NOT_EVALUATED = "not_evaluated"


@dataclass(frozen=True)
class Trigger:
    """One rule that fired. ``peak`` and ``threshold`` are in the metric's unit.

    Error/latency: ``started_at`` is the first sample of the run that fired, ``peak`` its
    highest value (samples after the firing included). Business: ``threshold`` is
    ``(1 - drop) * baseline``, ``peak`` the lowest smoothed value of the stretch below it and
    ``started_at`` where that stretch began. Manual: ``metric`` is ``"manual"``, started and
    fired at ``now``, ``peak`` and ``threshold`` are 1 (one call made, one needed), ``reason``
    is the call's reason. Times are ``pandas.Timestamp`` (a ``datetime``) to keep nanoseconds.
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
    """How one rule fared: its status, a sentence saying why, the worst counted value.

    ``required``: whether a rule that cannot be judged makes the verdict inconclusive (error
    and latency always, a business rule whenever its metric is given; the manual rule never).
    """

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
    now: datetime | None = None,
    rules: Rules = _RULES,
    step: float | None = None,
    manual_reason: str | None = None,
) -> Decision:
    """Runbook "When to Rollback": apply every rule to ``samples`` for the deploy.

    ``rules`` holds the thresholds and durations (runbook defaults); ``step`` the spacing of
    the samples in seconds (None: the median spacing of the timestamps up to ``now``).

    ``samples`` is a metric frame (tz-aware, sorted, unique DatetimeIndex; float columns
    ``error_ratio`` (0..1), ``p99_latency_s`` (>= 0) and any ``business:<name>`` (>= 0); NaN is
    a missing sample). ``now`` defaults to the last sample (or the deploy, if every sample
    precedes it: nothing can be judged then). Raises ``ParameterError`` listing every problem
    with the inputs (naive or unrepresentable times, ``now`` before the deploy, missing
    columns, unsorted index, values outside their metric's range naming row and column, blank
    manual reason).
    """
    inputs = _check_inputs(samples, deployed_at, now, manual_reason, step)
    window = _Window.build(inputs, rules, step)

    warnings: list[str] = []
    if inputs.late:
        warnings.append(f"{inputs.late} sample(s) after now ({_iso(inputs.now_ns)}) ignored")
    warnings.extend(window.missing_data_warnings())

    triggers: list[Trigger] = []
    results: list[RuleResult] = []
    for rule, column, limit in (
        (Rule.ERROR_RATE, ERROR_RATIO, rules.error_ratio),
        (Rule.LATENCY_P99, P99_LATENCY, rules.latency_p99),
    ):
        values = inputs.columns[column][window.lo : window.hi]
        warnings.extend(window.nan_warnings(column, values))
        warnings.extend(window.pre_deploy_warnings(column, values, limit))
        trigger, result = window.threshold_rule(rule, column, values, limit)
        triggers.extend([trigger] if trigger else [])
        results.append(result)
    for column in sorted(c for c in inputs.columns if c.startswith(BUSINESS_PREFIX)):
        values = inputs.columns[column][window.lo : window.hi]
        warnings.extend(window.nan_warnings(column, values))
        trigger, result, problem = window.business_rule(column, values)
        triggers.extend([trigger] if trigger else [])
        warnings.extend([problem] if problem else [])
        results.append(result)
    if manual_reason is not None:
        moment = _timestamp(inputs.now_ns)
        reason = manual_reason.strip()
        triggers.append(Trigger(Rule.MANUAL, MANUAL_METRIC, moment, moment, 1.0, 1.0, reason))
        results.append(
            RuleResult(
                Rule.MANUAL,
                MANUAL_METRIC,
                RuleStatus.FIRED,
                f"fired: manual call at {_iso(inputs.now_ns)}: {reason}",
                1.0,
                1.0,
                required=False,
            )
        )
    order = list(Rule)
    triggers.sort(key=lambda t: (_ns(t.fired_at), order.index(t.rule), t.metric))
    if triggers:
        verdict = Verdict.ROLLBACK
    elif any(r.required and r.status is RuleStatus.NOT_EVALUATED for r in results):
        verdict = Verdict.INCONCLUSIVE
    else:
        verdict = Verdict.NO_ROLLBACK
    return Decision(verdict, tuple(triggers), tuple(warnings), tuple(results))


@dataclass(frozen=True)
class _Inputs:
    times: IntArray  # every sample's time, ns
    columns: dict[str, FloatArray]
    deploy_ns: int
    now_ns: int
    late: int  # samples after now


@dataclass
class _Window:
    """What every rule shares: the slice of samples that matters and the elapsed window.

    ``times`` is the slice ``[lo, hi)`` of all samples: from the earliest sample any rule reads
    (baseline or smoothing) to the elapsed window's end; ``first`` is the first counted sample.
    ``counted_spacings`` are the spacings between counted samples, taken once for every rule.
    """

    times: IntArray
    counted_spacings: UIntArray
    lo: int
    hi: int
    first: int
    deploy_ns: int
    end_ns: int
    step_ns: Fraction | None
    rules: Rules
    sustain_ns: int
    smoothing_ns: int
    baseline_start_ns: int
    _smoothing: tuple[IntArray, IntArray, WindowPlan] | None = field(default=None, repr=False)
    _gaps: BoolArray | None = field(default=None, repr=False)

    @classmethod
    def build(cls, inputs: _Inputs, th: Rules, step_s: float | None) -> _Window:
        every = inputs.times
        deploy = inputs.deploy_ns
        end = min(deploy + seconds_to_ns(th.window), inputs.now_ns)
        known = every[: every.size - inputs.late]
        spacings = spacings_ns(known)
        step = (
            Fraction(seconds_to_ns(step_s)) if step_s is not None else median_of_spacings(spacings)
        )
        smoothing = seconds_to_ns(th.business_smoothing)
        # Clamped to the earliest representable instant: nothing lies before it anyway.
        baseline_start = max(deploy - seconds_to_ns(th.business_baseline), FIRST_NS)
        first = int(np.searchsorted(every, deploy, side="left"))
        hi = int(np.searchsorted(every, end, side="right"))
        earliest = max(min(baseline_start, deploy - smoothing + 1), FIRST_NS)
        lo = min(int(np.searchsorted(every, earliest, side="left")), first)
        return cls(
            times=every[lo:hi],
            # Counted samples run from ``first`` to ``hi - 1``; every one is known (by now).
            counted_spacings=spacings[first : max(hi - 1, first)],
            lo=lo,
            hi=hi,
            first=first - lo,
            deploy_ns=deploy,
            end_ns=end,
            step_ns=step,
            rules=th,
            sustain_ns=seconds_to_ns(th.sustain),
            smoothing_ns=smoothing,
            baseline_start_ns=baseline_start,
        )

    @property
    def counted_times(self) -> IntArray:
        return self.times[self.first :]

    def counted_gaps(self) -> BoolArray:
        """Per counted sample, whether a gap longer than 1.5 steps precedes it (cached)."""
        if self._gaps is None:
            if self.counted_times.size:
                self._gaps = gaps_from_spacings(self.counted_spacings, self.step_ns)
            else:
                self._gaps = np.zeros(0, dtype=bool)
        return self._gaps

    def smoothing(self) -> tuple[IntArray, IntArray, WindowPlan]:
        """Per counted sample, its smoothing span's first and last sample and how to sum the
        spans; built once, shared by every business metric."""
        if self._smoothing is None:
            rows = np.arange(self.first, self.times.size, dtype=np.int64)
            left = window_starts(self.times, self.smoothing_ns, rows)
            self._smoothing = (left, rows, WindowPlan.build(left, rows))
        return self._smoothing

    # --- the rules ----------------------------------------------------------------------

    def threshold_rule(
        self, rule: Rule, column: str, values: FloatArray, limit: float
    ) -> tuple[Trigger | None, RuleResult]:
        """Error or latency: fires when a run above ``limit`` lasts longer than the sustain."""
        counted = values[self.first :]
        times = self.counted_times
        valid = ~np.isnan(counted)
        highest = float(np.fmax.reduce(counted)) if counted.size else np.nan  # NaN-skipping
        worst = None if np.isnan(highest) else highest
        limit_text = _limit_text(column, limit)
        runs = find_runs(counted > limit, self.counted_gaps())
        found = runs.first_longer_than(times, self.sustain_ns)
        if found is not None:
            run, fired = found
            start, end = int(runs.starts[run]), int(runs.ends[run])
            peak = float(np.max(counted[start : end + 1]))
            trigger = Trigger(
                rule,
                column,
                _timestamp(times[start]),
                _timestamp(times[fired]),
                peak,
                limit,
            )
            reason = (
                f"fired: above {limit_text} from {_iso(times[start])} for longer than "
                f"{_seconds(self.sustain_ns)}, at {_iso(times[fired])}; peak "
                f"{_value_text(column, peak)}"
            )
            return trigger, RuleResult(rule, column, RuleStatus.FIRED, reason, worst, limit)
        unjudged = self.unjudged(column, valid)
        if unjudged:
            return None, RuleResult(rule, column, RuleStatus.NOT_EVALUATED, unjudged, worst, limit)
        if runs.starts.size:
            longest = int(np.max(runs.durations_ns(times)))
            reason = (
                f"clear: above {limit_text} for {_seconds(longest)} at most, not longer than "
                f"{_seconds(self.sustain_ns)}"
            )
        else:
            reason = f"clear: never above {limit_text}"
        return None, RuleResult(rule, column, RuleStatus.CLEAR, reason, worst, limit)

    def business_rule(
        self, column: str, values: FloatArray
    ) -> tuple[Trigger | None, RuleResult, str | None]:
        """Business: fires when the smoothed value falls below ``(1 - drop)`` x the baseline."""
        th = self.rules
        base_lo = int(np.searchsorted(self.times, self.baseline_start_ns, side="left"))
        before = values[base_lo : self.first]
        baseline_values = before[~np.isnan(before)]
        if baseline_values.size == 0:
            where = f"[{_iso(self.baseline_start_ns)}, {_iso(self.deploy_ns)})"
            problem = (
                f"{column}: no samples in the baseline period {where}; business rule not evaluated"
            )
            reason = f"not judged: no {column} sample in the baseline period {where}"
            result = RuleResult(Rule.BUSINESS, column, RuleStatus.NOT_EVALUATED, reason, None, None)
            return None, result, problem
        baseline = exact_mean(baseline_values)
        limit = (1.0 - th.business_drop) * baseline
        times = self.counted_times
        counted = values[self.first :]
        left, rows, plan = self.smoothing()
        smoothed = window_means(values, left, rows, plan)
        lowest_seen = float(np.fmin.reduce(smoothed)) if smoothed.size else np.nan  # NaN-skipping
        worst = None if np.isnan(lowest_seen) else lowest_seen
        below = smoothed < limit * (1.0 - BUSINESS_TOLERANCE)
        runs = find_runs(below, self.counted_gaps())
        minutes = self.smoothing_ns / (60 * NS_PER_S)
        mean_text = (
            f"{_number(minutes)}-min mean"
            if self.smoothing_ns % (60 * NS_PER_S) == 0
            else f"{_seconds(self.smoothing_ns)} mean"
        )
        limit_text = (
            f"{_number(limit)} ({_number((1.0 - th.business_drop) * 100)}% of the baseline "
            f"{_number(baseline)})"
        )
        if runs.starts.size:
            # No sustain: the first counted sample below fires; the stretch it starts goes on
            # while the samples stay below, and its lowest point is the peak.
            fired, end = int(runs.starts[0]), int(runs.ends[0])
            peak = float(np.min(smoothed[fired : end + 1]))
            moment = _timestamp(times[fired])
            trigger = Trigger(Rule.BUSINESS, column, moment, moment, peak, limit)
            reason = (
                f"fired: {mean_text} {_number(float(smoothed[fired]))} below {limit_text} at "
                f"{_iso(times[fired])}; lowest {_number(peak)}"
            )
            result = RuleResult(Rule.BUSINESS, column, RuleStatus.FIRED, reason, worst, limit)
            return trigger, result, None
        unjudged = self.unjudged(column, ~np.isnan(counted))
        if unjudged:
            status, reason = RuleStatus.NOT_EVALUATED, unjudged
        else:
            lowest = f"; lowest {_number(worst)}" if worst is not None else ""
            status, reason = (
                RuleStatus.CLEAR,
                f"clear: {mean_text} never below {limit_text}{lowest}",
            )
        return None, RuleResult(Rule.BUSINESS, column, status, reason, worst, limit), None

    def unjudged(self, column: str, valid: BoolArray) -> str | None:
        """Why a rule cannot be judged from the valid counted samples (``valid``), or None.

        DESIGN.md "Verdict": no valid sample, or a stretch without one (from the window's start,
        between two, or to the window's end) longer than the sustain, where a breach that
        must fire could hide.
        """
        start, end, sustain = self.deploy_ns, self.end_ns, self.sustain_ns
        if valid.all():  # usual: no sample missing, so the shared spacings serve
            valid_times, spacings = self.counted_times, self.counted_spacings
        else:
            valid_times = self.counted_times[valid]
            spacings = spacings_ns(valid_times)
        if valid_times.size == 0:
            return (
                f"not judged: no valid {column} sample in the elapsed window from "
                f"{_iso(start)} to {_iso(end)}"
            )
        inner = np.flatnonzero(spacings > np.uint64(sustain))
        first, last = int(valid_times[0]), int(valid_times[-1])
        lead, tail = first - start > sustain, end - last > sustain
        count = int(lead) + int(inner.size) + int(tail)
        if count == 0:
            return None
        if lead:
            since, until = start, first
        elif inner.size:
            since, until = int(valid_times[inner[0]]), int(valid_times[inner[0] + 1])
        else:
            since, until = last, end
        more = f"; {count - 1} more such stretch(es)" if count > 1 else ""
        return (
            f"not judged: no valid {column} sample from {_iso(since)} to {_iso(until)} "
            f"({_seconds(until - since)}, longer than the {_seconds(sustain)} sustain){more}"
        )

    # --- warnings -------------------------------------------------------------------------

    def missing_data_warnings(self) -> list[str]:
        counted_times = self.counted_times
        if counted_times.size == 0:
            return [
                f"missing data: no samples between the deploy ({_iso(self.deploy_ns)}) "
                f"and {_iso(self.end_ns)}; nothing evaluated"
            ]
        if self.step_ns is None:
            return ["missing data: fewer than two samples, so the step and gaps are unknown"]
        # The window's edges count as boundaries, so a series that starts late or stops early shows.
        edges = [self.deploy_ns, *(int(t) for t in counted_times[[0, -1]]), self.end_ns]
        limit = gap_limit_ns(self.step_ns)
        spans = self.counted_spacings
        holes = [(edges[0], edges[1])] if edges[1] - edges[0] > limit else []
        holes.extend(
            (int(counted_times[k]), int(counted_times[k + 1]))
            for k in np.flatnonzero(spans > np.uint64(limit))
        )
        if edges[3] - edges[2] > limit:
            holes.append((edges[2], edges[3]))
        if not holes:
            return []
        step_text = f"1.5 x the {_number(float(self.step_ns) / NS_PER_S)} s step"
        since, until = holes[0]
        where = f"from {_iso(since)} to {_iso(until)}"
        if len(holes) == 1:
            return [
                f"missing data: no samples {where} ({_number((until - since) / NS_PER_S)} s, "
                f"longer than {step_text})"
            ]
        longest = max(holes, key=lambda h: h[1] - h[0])
        return [
            f"missing data: {len(holes)} gaps longer than {step_text} in the window; first "
            f"{where}, longest {_number((longest[1] - longest[0]) / NS_PER_S)} s from "
            f"{_iso(longest[0])}"
        ]

    def nan_warnings(self, column: str, values: FloatArray) -> list[str]:
        missing = np.isnan(values[self.first :])
        count = int(np.count_nonzero(missing))
        if count == 0:
            return []
        first = int(np.argmax(missing))
        return [
            f"missing data: {column} has {count} empty sample(s) in the window, "
            f"first at {_iso(self.counted_times[first])}"
        ]

    def pre_deploy_warnings(self, column: str, values: FloatArray, limit: float) -> list[str]:
        base_lo = int(np.searchsorted(self.times, self.baseline_start_ns, side="left"))
        before = values[base_lo : self.first]
        breaching = before > limit
        count = int(np.count_nonzero(breaching))
        if count == 0:
            return []
        peak_at = int(np.argmax(np.where(breaching, before, -np.inf)))
        return [
            f"{column}: already above {_number(limit)} before the deploy ({count} of "
            f"{before.size} samples since {_iso(self.baseline_start_ns)}, "
            f"peak {_number(float(before[peak_at]))} at {_iso(self.times[base_lo + peak_at])}); "
            "the deploy may not be the cause"
        ]


# --- inputs -------------------------------------------------------------------------------


def evaluated_at(deploy_ns: int, now_ns: int | None, last_sample_ns: int | None) -> int:
    """The moment a decision is made as of (ns): ``now`` when given, else the last sample,
    else the deploy (every sample precedes it, or there is none: nothing can be judged)."""
    if now_ns is not None:
        return now_ns
    return deploy_ns if last_sample_ns is None else max(last_sample_ns, deploy_ns)


def _check_inputs(
    samples: pd.DataFrame,
    deployed_at: datetime,
    now: datetime | None,
    manual_reason: str | None,
    step: float | None,
) -> _Inputs:
    problems: list[str] = []
    if step is not None and not (
        isinstance(step, int | float) and math.isfinite(step) and 0 < step <= LAST_NS / NS_PER_S
    ):
        problems.append(f"step: must be a positive number of seconds or None, got {step!r}")
    moments: dict[str, int | None] = {}
    for name, moment in (("deployed_at", deployed_at), ("now", now)):
        if moment is None and name == "now":
            moments[name] = None
        elif not isinstance(moment, datetime):
            problems.append(f"{name}: expected a datetime, got {moment!r}")
        else:
            try:
                moments[name] = instant_ns(moment)
            except ValueError as err:
                problems.append(f"{name}: {err}")
    deploy_ns, now_ns = moments.get("deployed_at"), moments.get("now")
    before = now_problem(deployed_at, now) if deploy_ns is not None and now_ns is not None else None
    if before:
        problems.append(before)
    if manual_reason is not None and not manual_reason.strip():
        problems.append(f"manual_reason: {reason_problem(' ')}")
    if not isinstance(samples, pd.DataFrame):
        problems.append(f"samples: expected a DataFrame, got {type(samples).__name__}")
        raise ParameterError(problems)
    index = samples.index
    times = np.zeros(0, dtype=np.int64)
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        problems.append("samples: the index must be a tz-aware DatetimeIndex")
    else:
        times = times_ns(index)
        if not bool(np.all(times[1:] > times[:-1])):  # cheaper than index.is_unique
            problems.append("samples: timestamps must be sorted and unique")
    for column in (ERROR_RATIO, P99_LATENCY):
        if column not in samples.columns:
            problems.append(f"samples: missing column {column!r}")
    columns: dict[str, FloatArray] = {}
    for column in samples.columns:
        name = str(column)
        if not pd.api.types.is_numeric_dtype(samples[column]):
            problems.append(f"samples: column {name!r} is not numeric")
            continue
        if name not in (ERROR_RATIO, P99_LATENCY) and not name.startswith(BUSINESS_PREFIX):
            continue  # other columns (request rates, ...) are not rules' input
        values = np.asarray(samples[column].to_numpy(dtype=np.float64, na_value=np.nan))
        problem = _out_of_range(name, values, index)
        if problem:
            problems.append(problem)
        columns[name] = values
    if problems:
        raise ParameterError(problems)
    assert deploy_ns is not None
    now_ns = evaluated_at(deploy_ns, now_ns, int(times[-1]) if times.size else None)
    known = int(np.searchsorted(times, now_ns, side="right"))
    return _Inputs(times, columns, deploy_ns, now_ns, times.size - known)


def _out_of_range(column: str, values: FloatArray, index: pd.Index) -> str | None:
    """A sample outside its metric's range (DESIGN.md "Numbers"), named by row and column."""
    if values.size == 0:
        return None
    # fmin/fmax skip NaN (a missing sample); infinities and negatives show at the extremes.
    low, high = float(np.fmin.reduce(values)), float(np.fmax.reduce(values))
    top = 1.0 if column == ERROR_RATIO else np.inf
    if not (low < 0 or high > top or high == np.inf):
        return None
    bad = (values < 0) | (values > top) | np.isinf(values)
    row = int(np.argmax(bad))
    what = {
        ERROR_RATIO: "a ratio must be finite and between 0 and 1",
        P99_LATENCY: "a latency must be finite and not negative",
    }.get(column, "business metrics are rates or counts: finite and not negative")
    value = float(values[row])
    return (
        f"samples: {column} row {row + 1} ({index[row].isoformat()}): {value!r} is out of "
        f"range; {what}"
    )


# --- formatting -----------------------------------------------------------------------------


def _timestamp(ns: int | np.integer[Any]) -> pd.Timestamp:
    return pd.Timestamp(int(ns), tz=UTC)


def _ns(moment: datetime) -> int:
    return instant_ns(moment)


def _iso(ns: int | np.integer[Any]) -> str:
    return str(_timestamp(ns).isoformat())


# The reasons' figures keep six significant digits (``core.readable.exact``): they are values
# in `runbook evaluate --json`, which tools compare.
_number = exact


def _seconds(ns: int) -> str:
    return exact_seconds(ns / NS_PER_S)


def _limit_text(column: str, limit: float) -> str:
    return _value_text(column, limit)


def _value_text(column: str, value: float) -> str:
    if column == ERROR_RATIO:
        return exact_percent(value)
    if column == P99_LATENCY:
        return exact_seconds(value)
    return _number(value)
