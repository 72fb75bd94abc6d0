"""Evidence plots: the signals of "When to Rollback" before and after the deploy and the rollback.

Functions take the metric frame, the thresholds (settings groups) and the moments of the
incident (from the timeline) and return a ``matplotlib.figure.Figure``. They never touch
pyplot's global state, so they work headless (papermill, CI) and in threads; the caller saves
or displays the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from runbook_lib.core import readable
from runbook_lib.core.redact import redact_text
from runbook_lib.core.series import NS_PER_S, FloatArray, times_ns, trailing_mean, window_starts
from runbook_lib.core.settings import RecoveryCheck, Rules

__all__ = ["Moments", "plot_business", "plot_error_and_latency"]

# Colours chosen to stay distinguishable for the common forms of colour blindness.
_BEFORE = "#dbe9f6"
_BAD = "#fbe3d6"
_AFTER = "#dff2e1"
_SIGNAL = "#1f4e79"
_LIMIT = "#c0392b"
_RECOVERY = "#2e7d32"
_DEFAULT_RULES, _DEFAULT_RECOVERY = Rules(), RecoveryCheck()
_MARKS = {
    "deploy": ("#000000", "-"),
    "decision": ("#e67e22", "--"),
    "rollback": ("#7b1fa2", "--"),
    "recovered": ("#2e7d32", ":"),
}


@dataclass(frozen=True, kw_only=True)
class Moments:
    """The incident's moments to mark; all but ``deployed_at`` are optional (not happened yet)."""

    deployed_at: datetime
    decided_at: datetime | None = None
    rollback_at: datetime | None = None
    recovered_at: datetime | None = None


def plot_error_and_latency(
    samples: pd.DataFrame,
    *,
    moments: Moments,
    rules: Rules = _DEFAULT_RULES,
    recovery: RecoveryCheck = _DEFAULT_RECOVERY,
    title: str = "",
) -> Figure:
    """Evidence for "When to Rollback" and "Check error rate": 5xx ratio and p99 latency.

    Two panels sharing the time axis, thresholds drawn, deploy/decision/rollback/recovery
    marked, and the periods before the deploy, while the bad release ran, and after the rollback
    shaded. Raises ``KeyError`` when the frame lacks ``error_ratio`` or ``p99_latency_s``.
    """
    times = _plot_times(samples.index)
    figure = Figure(figsize=(11, 6.5), layout="constrained")
    error_axes, latency_axes = figure.subplots(2, 1, sharex=True)
    error_axes.plot(
        times,
        samples["error_ratio"].to_numpy(dtype=float) * 100,
        color=_SIGNAL,
        linewidth=1.4,
        label="5xx ratio",
    )
    error_axes.axhline(
        rules.error_ratio * 100,
        color=_LIMIT,
        linestyle="--",
        linewidth=1.2,
        label=f"rollback threshold ({readable.percent(rules.error_ratio)})",
    )
    if moments.rollback_at is not None:
        error_axes.axhline(
            recovery.recovery_error_ratio * 100,
            color=_RECOVERY,
            linestyle=":",
            label=f"recovered below ({readable.percent(recovery.recovery_error_ratio)})",
        )
    error_axes.set_ylabel("5xx ratio (%)")
    error_axes.set_ylim(bottom=0)

    latency_axes.plot(
        times,
        samples["p99_latency_s"].to_numpy(dtype=float),
        color=_SIGNAL,
        linewidth=1.4,
        label="p99 latency",
    )
    latency_axes.axhline(
        rules.latency_p99,
        color=_LIMIT,
        linestyle="--",
        linewidth=1.2,
        label=f"rollback threshold ({readable.latency(rules.latency_p99)})",
    )
    latency_axes.set_ylabel("p99 latency (s)")
    latency_axes.set_ylim(bottom=0)

    _shade_and_mark(error_axes, times, moments, rules, labelled=True)
    _shade_and_mark(latency_axes, times, moments, rules, labelled=False)
    _legend(error_axes)
    _legend(latency_axes)
    _time_axis(latency_axes)
    # Titles and metric names come from data and parameters: redacted like the evidence.
    figure.suptitle(redact_text(title or _default_title(moments)), fontsize=12)
    return figure


def plot_business(
    samples: pd.DataFrame,
    *,
    moments: Moments,
    rules: Rules = _DEFAULT_RULES,
    title: str = "",
) -> Figure:
    """Evidence for the business rule of "When to Rollback": each ``business:<name>`` metric.

    One panel per metric: raw samples, the trailing mean the rule compares, and the line at
    ``(1 - drop) * baseline``; a frame without business metrics gives one panel saying so.
    """
    columns = [c for c in samples.columns if str(c).startswith("business:")]
    times = _plot_times(samples.index)
    figure = Figure(figsize=(11, 2.2 + 2.3 * max(len(columns), 1)), layout="constrained")
    axes_list: Sequence[Axes] = list(
        np.atleast_1d(figure.subplots(max(len(columns), 1), 1, sharex=True))
    )
    if not columns:
        axes_list[0].text(
            0.5,
            0.5,
            "no business metrics in these samples",
            ha="center",
            va="center",
            transform=axes_list[0].transAxes,
        )
        axes_list[0].set_axis_off()
    nanos = times_ns(pd.DatetimeIndex(samples.index))
    deploy = pd.Timestamp(moments.deployed_at)
    baseline_from = deploy - pd.Timedelta(seconds=rules.business_baseline)
    for axes, column in zip(axes_list, columns, strict=False):
        values = samples[column].to_numpy(dtype=float)
        span_ns = round(rules.business_smoothing * NS_PER_S)
        smoothed = trailing_mean(nanos, values, window_starts(nanos, span_ns))
        axes.plot(times, values, color="#9fb7cf", linewidth=0.9, label="samples")
        axes.plot(
            times,
            smoothed,
            color=_SIGNAL,
            linewidth=1.6,
            label=f"mean over {readable.duration(rules.business_smoothing)}",
        )
        in_baseline = (samples.index >= baseline_from) & (samples.index < deploy)
        baseline = samples.loc[in_baseline, column].dropna()
        if not baseline.empty:
            limit = (1 - rules.business_drop) * float(baseline.mean())
            drop = readable.percent(rules.business_drop)
            axes.axhline(
                limit,
                color=_LIMIT,
                linestyle="--",
                linewidth=1.2,
                label=f"rollback below {readable.number(limit)} ({drop} under baseline)",
            )
        axes.set_ylabel(redact_text(column.removeprefix("business:")))
        _shade_and_mark(axes, times, moments, rules, labelled=axes is axes_list[0])
        _legend(axes)
    _time_axis(axes_list[-1])
    figure.suptitle(redact_text(title or "Business metrics around the deploy"), fontsize=12)
    return figure


def _plot_times(index: pd.Index) -> FloatArray:
    # Matplotlib's date numbers (days since its epoch) keep the axes typed as plain floats.
    naive = pd.DatetimeIndex(index).tz_convert(UTC).tz_localize(None).to_numpy()
    return np.asarray(mdates.date2num(naive), dtype=np.float64)  # type: ignore[no-untyped-call]


def _naive(moment: datetime) -> float:
    plain = moment.astimezone(UTC).replace(tzinfo=None)
    return float(mdates.date2num(plain))  # type: ignore[no-untyped-call]


def _shade_and_mark(
    axes: Axes,
    times: FloatArray,
    moments: Moments,
    rules: Rules,
    *,
    labelled: bool,
) -> None:
    # Shading and marks are the same on every panel: name them in the first panel's legend only.
    def label(text: str) -> str:
        return text if labelled else "_nolegend_"

    if times.size == 0:
        return
    start, end = float(times[0]), float(times[-1])
    deploy = _naive(moments.deployed_at)
    bad_until = _naive(moments.rollback_at) if moments.rollback_at is not None else end
    periods = [
        ("before deploy", start, deploy, _BEFORE, 0.6),
        ("new release live", deploy, bad_until, _BAD, 0.6),
    ]
    if moments.rollback_at is not None:
        periods.append(("after rollback", bad_until, end, _AFTER, 0.7))
    for name, left, right, colour, alpha in periods:
        left, right = max(left, start), min(right, end)
        if left < right:  # a period outside the samples gets neither shading nor a legend entry
            axes.axvspan(left, right, color=colour, alpha=alpha, linewidth=0, label=label(name))
    window_end = moments.deployed_at + timedelta(seconds=rules.window)
    if start <= _naive(window_end) <= end:
        axes.axvline(
            _naive(window_end),
            color="#7f8c8d",
            linestyle=(0, (1, 3)),
            linewidth=1,
            label=label("end of decision window"),
        )
    for name, moment in (
        ("deploy", moments.deployed_at),
        ("decision", moments.decided_at),
        ("rollback", moments.rollback_at),
        ("recovered", moments.recovered_at),
    ):
        if moment is None:
            continue
        text = f"{name} {readable.clock(moment)}"
        at = _naive(moment)
        if not start <= at <= end:
            # No line to point at, but the reader should still learn the moment: a legend
            # entry without a handle, saying which side of the plot it lies on.
            side = "before" if at < start else "after"
            axes.plot([], [], linestyle="none", label=label(f"{text} ({side} the plotted span)"))
            continue
        colour, style = _MARKS[name]
        axes.axvline(at, color=colour, linestyle=style, linewidth=1.6, label=label(text))
    axes.set_xlim(start, end)
    axes.grid(True, axis="y", color="#e5e5e5", linewidth=0.8)


def _legend(axes: Axes) -> None:
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _time_axis(axes: Axes) -> None:
    locator = mdates.AutoDateLocator(minticks=5, maxticks=12)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    # Labels follow the tick spacing: HH:MM for minute ticks (an hour-long replay), HH:MM:SS
    # for sub-minute ticks (a two-minute demo; a fixed "%H:%M" repeated one label there).
    formatter = mdates.AutoDateFormatter(locator)  # type: ignore[no-untyped-call]
    formatter.scaled = {1.0: "%Y-%m-%d", 1 / 1440: "%H:%M", 1 / 86400: "%H:%M:%S"}
    axes.xaxis.set_major_formatter(formatter)
    axes.set_xlabel("time (UTC)")


def _default_title(moments: Moments) -> str:
    deployed = moments.deployed_at.astimezone(UTC)
    return f"5xx ratio and p99 latency around the deploy at {deployed:%Y-%m-%d %H:%M} UTC"
