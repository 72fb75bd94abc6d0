"""``runbook profile check``: does each query of a profile read what it claims to? (pure)

Before an incident, a profile's queries are run against the service's Prometheus over a recent
window. Per signal (``error_ratio``, ``p99_latency_s``, each ``business:NAME``), what was seen
(``Observed``: the query's series and samples, and for each series it reads whether the metric
exists, how many series the selector matches, the target's scrape interval) is judged here:

    problem   the decision could not use it: Prometheus refused the query, it returns no
              series, or several (one aggregate is expected)
    warning   it runs but a value looks wrong: a ratio outside 0..1, a latency in "seconds"
              that reads like milliseconds (or the reverse), a business value that is negative
              or always 0, samples missing; a metric that does not exist, a selector that
              matches nothing, a rate window under four scrape intervals of its target
    note      worth knowing, nothing wrong (a selector of 5xx responses matching nothing yet)

``probes(metrics)`` says what to observe; ``judge(observed)`` gives the ``CheckReport``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from runbook_lib.core.promql import (
    BUSINESS_PREFIX,
    ERROR_RATIO,
    P99_LATENCY,
    Metrics,
    build_queries,
)
from runbook_lib.core.promql_selectors import Selector, selectors_in

__all__ = [
    "CheckReport",
    "Finding",
    "Observed",
    "Probe",
    "SelectorSeen",
    "Severity",
    "SignalReport",
    "judge",
    "probes",
    "render",
]

# A p99 above this many "seconds" is no HTTP service's: milliseconds read as seconds.
SECONDS_TOO_LONG = 100.0
# Below this after dividing by 1000, the "milliseconds" were most likely seconds.
MILLISECONDS_TOO_SHORT_S = 0.001
# A histogram in seconds has no bucket this large; one in milliseconds has one beyond it.
BUCKET_LOOKS_LIKE_MS = 1000.0
# ... and one in milliseconds has buckets beyond this.
BUCKET_LOOKS_LIKE_S = 10.0
# rate() needs two samples in its window; four scrape intervals survive a missed scrape.
SCRAPES_PER_WINDOW = 4
# Share of the window's steps that must have a sample before gaps are worth a warning.
COVERAGE = 0.9


class Severity(StrEnum):
    NOTE = "note"
    WARNING = "warning"
    PROBLEM = "problem"


_RANK = {Severity.NOTE: 0, Severity.WARNING: 1, Severity.PROBLEM: 2}


@dataclass(frozen=True)
class Probe:
    """One signal of a profile, as the decision reads it.

    ``histogram`` and ``unit`` (``s`` or ``ms``) are the latency histogram's when the query is
    built from one (empty for a raw query, which must return seconds); ``rate_window`` is the
    setting that sets the built queries' windows (empty for raw PromQL).
    """

    column: str
    query: str
    histogram: str = ""
    unit: str = ""
    rate_window: str = ""

    @property
    def selectors(self) -> tuple[Selector, ...]:
        return selectors_in(self.query)

    @property
    def kind(self) -> str:
        if self.column == ERROR_RATIO:
            return "ratio"
        if self.column == P99_LATENCY:
            return "latency"
        return "business"


def probes(metrics: Metrics) -> tuple[Probe, ...]:
    """The signals of ``metrics`` in the decision's order, each with the query it runs."""
    found = []
    window = metrics.prometheus_rate_window
    for column, query in build_queries(metrics).items():
        built_counter = column.removeprefix(BUSINESS_PREFIX) in metrics.business_counters
        if column == P99_LATENCY and not metrics.latency_p99_query:
            found.append(
                Probe(
                    column,
                    query,
                    histogram=metrics.resolved("latency_histogram"),
                    unit=metrics.resolved("latency_unit"),
                    rate_window=window,
                )
            )
        elif (column == ERROR_RATIO and not metrics.error_ratio_query) or built_counter:
            found.append(Probe(column, query, rate_window=window))
        else:
            found.append(Probe(column, query))
    return tuple(found)


@dataclass(frozen=True)
class SelectorSeen:
    """What Prometheus holds for one selector of a query, over the checked window.

    ``exists``: the metric name is known (True for a selector without a name); ``series``:
    how many series the selector matched (None: Prometheus would not say); ``scrape_interval_s``
    the longest of its targets' (None: unknown); ``similar``: known names close to a missing
    one; ``known_values``: for each label the matchers name, the values the metric has (looked
    up when the selector matched nothing).
    """

    selector: Selector
    exists: bool = True
    series: int | None = None
    scrape_interval_s: float | None = None
    similar: tuple[str, ...] = ()
    known_values: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )


@dataclass(frozen=True)
class Observed:
    """One probe's query run over the window: ``rejected`` is Prometheus' refusal ("" when it
    ran), ``series`` how many it returned, ``values`` the first one's samples on the grid of
    ``steps`` points (NaN: none), ``buckets`` the histogram's finite upper bounds."""

    probe: Probe
    rejected: str = ""
    series: int = 0
    values: tuple[float, ...] = ()
    steps: int = 0
    buckets: tuple[float, ...] = ()
    selectors: tuple[SelectorSeen, ...] = ()


@dataclass(frozen=True)
class Finding:
    severity: Severity
    message: str


@dataclass(frozen=True)
class SignalReport:
    """What ``runbook profile check`` says about one signal."""

    column: str
    query: str
    series: int
    samples: int  # steps with a value
    steps: int
    last: float | None
    low: float | None
    high: float | None
    findings: tuple[Finding, ...]

    @property
    def worst(self) -> Severity | None:
        return _worst(f.severity for f in self.findings)

    def to_json_dict(self) -> dict[str, object]:
        return {
            "signal": self.column,
            "query": self.query,
            "series": self.series,
            "samples": self.samples,
            "steps": self.steps,
            "last": self.last,
            "min": self.low,
            "max": self.high,
            "findings": [
                {"severity": f.severity.value, "message": f.message} for f in self.findings
            ],
        }


@dataclass(frozen=True)
class CheckReport:
    signals: tuple[SignalReport, ...]

    @property
    def worst(self) -> Severity | None:
        return _worst(s.worst for s in self.signals if s.worst is not None)

    def count(self, severity: Severity) -> int:
        return sum(f.severity is severity for s in self.signals for f in s.findings)


def _worst(severities: Iterable[Severity]) -> Severity | None:
    return max(severities, key=_RANK.__getitem__, default=None)


def judge(observed: Sequence[Observed]) -> CheckReport:
    """The findings for every observed signal, in the order given."""
    return CheckReport(tuple(_judge_one(o) for o in observed))


def _judge_one(seen: Observed) -> SignalReport:
    valid = [v for v in seen.values if not math.isnan(v)]
    findings = _shape(seen, valid)
    if not seen.rejected and seen.series >= 1 and valid:
        # One word on the unit: the values' if they say it, else the buckets'.
        findings += _values(seen.probe, valid) or _buckets(seen.probe, seen.buckets)
    findings += _selectors(seen)
    last = next((v for v in reversed(seen.values) if not math.isnan(v)), None)
    return SignalReport(
        column=seen.probe.column,
        query=seen.probe.query,
        series=seen.series,
        samples=len(valid),
        steps=seen.steps,
        last=last,
        low=min(valid) if valid else None,
        high=max(valid) if valid else None,
        findings=tuple(findings),
    )


def _shape(seen: Observed, valid: list[float]) -> list[Finding]:
    """Whether the decision can read the signal at all: one series, with samples."""
    if seen.rejected:
        return [Finding(Severity.PROBLEM, f"Prometheus refused the query: {seen.rejected}")]
    if seen.series == 0:
        return [
            Finding(
                Severity.PROBLEM,
                "returns no series in the window: the decision would have no data (see the "
                "selectors below)",
            )
        ]
    found = []
    if seen.series > 1:
        found.append(
            Finding(
                Severity.PROBLEM,
                f"returns {seen.series} series; the decision needs one: aggregate it "
                "(sum(...), max(...)) or narrow the selector",
            )
        )
    if not valid:
        found.append(
            Finding(
                Severity.WARNING,
                "has no value in the window (NaN, e.g. 0/0: no requests?)",
            )
        )
    elif seen.steps and len(valid) < COVERAGE * seen.steps:
        found.append(
            Finding(
                Severity.WARNING,
                f"has a value at {len(valid)} of {seen.steps} steps: gaps longer than the "
                "sustain duration leave the rule inconclusive",
            )
        )
    return found


def _values(probe: Probe, valid: list[float]) -> list[Finding]:
    low, high = min(valid), max(valid)
    shown = f"{_num(low)}..{_num(high)}"
    if probe.kind == "ratio" and (low < 0 or high > 1):
        hint = " (a percentage? divide by 100)" if high > 1 else ""
        return [Finding(Severity.WARNING, f"a ratio is 0..1, but it ranges {shown}{hint}")]
    if probe.kind == "latency":
        if low < 0:
            return [Finding(Severity.WARNING, f"a latency is never negative, got {_num(low)}")]
        if high > SECONDS_TOO_LONG:
            fix = (
                "set latency_unit: ms" if probe.histogram else "divide by 1000 in latency_p99_query"
            )
            return [
                Finding(
                    Severity.WARNING,
                    f'reaches {_num(high)} "seconds": no HTTP service\'s p99; milliseconds read '
                    f"as seconds? ({fix})",
                )
            ]
        if probe.unit == "ms" and high < MILLISECONDS_TOO_SHORT_S:
            return [
                Finding(
                    Severity.WARNING,
                    f"at most {_num(high)} s after dividing the histogram by 1000: it may "
                    "count seconds, not milliseconds (latency_unit: s)",
                )
            ]
    if probe.kind == "business":
        if low < 0:
            return [
                Finding(
                    Severity.WARNING,
                    f"goes negative ({_num(low)}): a business metric is a rate or a count",
                )
            ]
        if high == 0:
            return [
                Finding(
                    Severity.WARNING,
                    "is 0 throughout the window: a drop could never show (wrong metric?)",
                )
            ]
    return []


def _buckets(probe: Probe, buckets: tuple[float, ...]) -> list[Finding]:
    if probe.kind != "latency" or not buckets or not probe.histogram:
        return []
    top = max(buckets)
    name = probe.histogram
    if probe.unit == "s" and top >= BUCKET_LOOKS_LIKE_MS:
        return [
            Finding(
                Severity.WARNING,
                f"{name}'s buckets reach {_num(top)}: they look like milliseconds, but the "
                "profile reads them as seconds (set latency_unit: ms)",
            )
        ]
    if probe.unit == "ms" and top <= BUCKET_LOOKS_LIKE_S:
        return [
            Finding(
                Severity.WARNING,
                f"{name}'s buckets end at {_num(top)}: they look like seconds, but the "
                "profile reads them as milliseconds (set latency_unit: s)",
            )
        ]
    return []


def _selectors(seen: Observed) -> list[Finding]:
    found: list[Finding] = []
    matched = {s.selector.metric for s in seen.selectors if s.series}
    for one in seen.selectors:
        selector = one.selector
        if not one.exists:
            close = f"; did you mean {', '.join(one.similar)}?" if one.similar else ""
            found.append(
                Finding(
                    Severity.WARNING,
                    f"metric {selector.metric} does not exist in this Prometheus{close}",
                )
            )
        elif one.series == 0:
            if selector.metric and selector.metric in matched:
                found.append(
                    Finding(
                        Severity.NOTE,
                        f"{selector.text} matches no series in the window (e.g. no errors "
                        "yet); the query's other selectors of the metric do",
                    )
                )
            else:
                found.append(
                    Finding(
                        Severity.WARNING,
                        f"selector {selector.text} matches no series in the window"
                        f"{_known(selector, one.known_values)}",
                    )
                )
        window = selector.range_s
        interval = one.scrape_interval_s
        if window is not None and interval and window < SCRAPES_PER_WINDOW * interval:
            least = _duration(SCRAPES_PER_WINDOW * interval)
            setting = (
                f"set prometheus_rate_window: {least} or more"
                if seen.probe.rate_window
                else f"use [{least}] or more in the query"
            )
            found.append(
                Finding(
                    Severity.WARNING,
                    f"range [{_duration(window)}] of {selector.metric or selector.text} is under "
                    f"four scrape intervals of its target ({SCRAPES_PER_WINDOW} x "
                    f"{_duration(interval)}): rate() will miss samples; {setting}",
                )
            )
    return list(dict.fromkeys(found))  # the same selector twice says it once


def _known(selector: Selector, values: Mapping[str, tuple[str, ...]]) -> str:
    shown = [
        f"{label}: {', '.join(v[:8])}{', ...' if len(v) > 8 else ''}"
        for label, v in values.items()
        if v
    ]
    if not shown:
        return ""
    return f" ({selector.metric} has {'; '.join(shown)})"


def _num(value: float) -> str:
    return f"{value:.6g}"


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def render(report: CheckReport, *, source: str, url: str, window: str) -> str:
    """The report as people read it: per signal its series, last value and range, findings."""
    lines = [f"profile check: {source} against {url}, last {window}"]
    for signal in report.signals:
        mark = {None: "ok  ", Severity.NOTE: "ok  ", Severity.WARNING: "WARN"}.get(
            signal.worst, "FAIL"
        )
        if signal.series and signal.samples:
            what = (
                f"{signal.series} series, last {_num(signal.last or 0.0)}, range "
                f"{_num(signal.low or 0.0)}..{_num(signal.high or 0.0)} "
                f"({signal.samples} of {signal.steps} steps)"
            )
        else:
            what = f"{signal.series} series, no value"
        lines.append(f"{mark} {signal.column}: {what}")
        lines.append(f"       query: {signal.query}")
        lines.extend(f"       {f.severity.value}: {f.message}" for f in signal.findings)
    problems, warnings = report.count(Severity.PROBLEM), report.count(Severity.WARNING)
    lines.append(f"{problems} problem(s), {warnings} warning(s)")
    return "\n".join(lines)
