"""Numbers as people read them: ratios as percentages, durations, latencies, counts, times.

One module, so the record, the post-mortem, the notebooks' banner and the notifications say a
figure the same way: "5.79 %", "2 min 15 s", "1.82 s", "1,234". A person reading an incident
wants three significant digits and a unit, never a float's repr ("0.0579452541770352"). A
figure that is missing (None, NaN: no sample) reads ``NOT_KNOWN``.

The decision's reasons are the exception: ``runbook evaluate --json`` has always given its
figures to six significant digits ("peak 5.62879%"), and tools compare them; ``exact`` and its
siblings keep that wording, here beside the rest so there is one place numbers are written.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import UTC, datetime

from runbook_lib.core.promql import ERROR_RATIO, P99_LATENCY

__all__ = [
    "NOT_KNOWN",
    "clock",
    "count",
    "duration",
    "exact",
    "exact_percent",
    "exact_seconds",
    "instant",
    "latency",
    "metric_value",
    "number",
    "percent",
    "significant",
]

NOT_KNOWN = "n/a"
DIGITS = 3  # significant digits people read
_MAX_DECIMALS = 9  # beyond this a figure is zero to anyone reading it


def _known(write: Callable[[float], str]) -> Callable[[float | None], str]:
    """``write`` for a figure that was measured; ``NOT_KNOWN`` for a missing one (None, NaN:
    no sample; infinity: no bound)."""

    @functools.wraps(write)
    def written(value: float | None) -> str:
        if value is None or not math.isfinite(value):
            return NOT_KNOWN
        return write(value)

    return written


def significant(value: float, digits: int = DIGITS, *, trim: bool = True) -> str:
    """``value`` to ``digits`` significant digits, without an exponent and (``trim``) without
    trailing zeros: 5.79452 -> "5.79", 0.000412 -> "0.000412", 20.0 -> "20"; untrimmed,
    1.9959 -> "2.00" (a measured value keeps the digits it was measured to)."""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = min(max(digits - 1 - magnitude, 0), _MAX_DECIMALS)
    text = f"{round(value, decimals):.{decimals}f}"
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@_known
def percent(ratio: float) -> str:
    """A ratio (0..1) as a percentage: 0.0579452 -> "5.79 %", 0.01 -> "1 %"."""
    return f"{significant(ratio * 100)} %"


@_known
def duration(seconds: float) -> str:
    """How long something took: "0.4 s", "2.0 s" (under 10 s: tenths), "45 s",
    "2 min 15 s", "1 h 5 min"."""
    sign, left = ("-" if seconds < 0 else ""), abs(seconds)
    if round(left, 1) < 10:
        return f"{sign}{left:.1f} s"
    whole = round(left)
    if whole < 60:
        return f"{sign}{whole} s"
    if whole < 3600:
        minutes, secs = divmod(whole, 60)
        return f"{sign}{minutes} min" + (f" {secs} s" if secs else "")
    hours, rest = divmod(whole, 3600)
    minutes = round(rest / 60)
    if minutes == 60:
        hours, minutes = hours + 1, 0
    return f"{sign}{hours} h" + (f" {minutes} min" if minutes else "")


@_known
def latency(seconds: float) -> str:
    """A measured latency: 1.8234 -> "1.82 s", 1.9959 -> "2.00 s"; under a second in
    milliseconds: 0.3 -> "300 ms"."""
    if 0 < abs(seconds) < 1:
        return f"{significant(seconds * 1000, trim=False)} ms"
    return f"{significant(seconds, trim=False)} s"


@_known
def count(value: float) -> str:
    """A count of things (requests): whole, with thousands separated: "1,234"."""
    return f"{round(value):,}"


@_known
def number(value: float) -> str:
    """A figure without a known unit (a business metric): three significant digits, whole
    from a thousand up: 41.237 -> "41.2", 12345.6 -> "12,346"."""
    if abs(value) >= 1000:
        return count(value)
    return significant(value)


def metric_value(metric: str, value: float | None) -> str:
    """A value of one of the decision's metrics in its unit: the 5xx ratio as a percentage,
    p99 latency in seconds, a business metric as a number."""
    if metric == ERROR_RATIO:
        return percent(value)
    if metric == P99_LATENCY:
        return latency(value)
    return number(value)


def clock(moment: datetime | None) -> str:
    """The time of day in UTC, to the second: "14:02:10"."""
    if moment is None:
        return NOT_KNOWN
    return moment.astimezone(UTC).strftime("%H:%M:%S")


def instant(moment: datetime | None) -> str:
    """A moment in UTC, to the second: "2026-11-20 14:02:10 UTC"."""
    if moment is None:
        return NOT_KNOWN
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --- the decision's reasons: six significant digits, as they have always been written ---


def exact(value: float) -> str:
    """Six significant digits (``%g``): the decision's reasons and warnings."""
    return f"{value:.6g}"


def exact_percent(ratio: float) -> str:
    """A ratio in the decision's reasons: 0.0562879 -> "5.62879%"."""
    return f"{exact(ratio * 100)}%"


def exact_seconds(seconds: float) -> str:
    """Seconds in the decision's reasons: "120 s"."""
    return f"{exact(seconds)} s"
