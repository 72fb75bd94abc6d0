"""Traces in the evidence (Post-Rollback Actions, step 2: "logs, metrics and traces").

``collect_traces`` asks the tracing backend for the release's traces of the deploy window
(deploy -> rollback) and of the minutes after the rollback, and writes:

    traces/summary.md          counts by period, version and status; error ratio and p99 from
                               the traces, beside Prometheus' figures when given; or why
                               traces were not collected
    traces/failing.json        the failing traces in full, earliest first
    traces/slowest.json        the slowest traces in full
    plots/trace_durations.png  every sampled trace's duration over time, coloured by version

The JSON files are Jaeger's own answer format (``{"data": [trace, ...]}``), so they load back
into a Jaeger UI ("Search", then "JSON File"). Each is bounded in traces and bytes; what a bound
cut is said in the summary. Everything passes through ``redact``. Traces are supporting
evidence: no URL, a backend that is down or an empty answer is written down as such, never
raised.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from runbook_lib.adapters.traces import JaegerSource
from runbook_lib.core.readable import latency, percent
from runbook_lib.core.traces import GroupStats, Trace, failing, slowest, stats_by_version
from runbook_lib.errors import ParameterError, TracesError
from runbook_lib.evidence import files as evidence_files
from runbook_lib.evidence.bundle import BundleReport, write_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "FAILING_JSON",
    "PLOT",
    "SLOWEST_JSON",
    "SUMMARY",
    "TraceBounds",
    "TracesEvidence",
    "bounded_export",
    "collect_traces",
    "plot_trace_durations",
]

# How failing traces are asked for. Jaeger 1.x matches the ``error`` tag; Jaeger 2.x keeps the
# span status apart from the tags and matches no ``error`` tag, so the usual 5xx codes are
# asked for too (the sample's own failures are added in any case).
FAILING_TAGS: tuple[dict[str, str], ...] = (
    {"error": "true"},
    *({"http.response.status_code": code} for code in ("500", "502", "503", "504")),
)
SUMMARY = "traces/summary.md"
FAILING_JSON = "traces/failing.json"
SLOWEST_JSON = "traces/slowest.json"
PLOT = "plots/trace_durations.png"


@dataclass(frozen=True)
class TraceBounds:
    """How much of the backend goes into the bundle."""

    max_traces: int = 20  # per JSON file
    max_file_bytes: int = 2 * 1024 * 1024  # per JSON file
    sample_limit: int = 2000  # traces asked per period for counts, p99 and the plot

    def __post_init__(self) -> None:
        problems = [
            f"{name}: must be >= 1, got {value}"
            for name, value in (
                ("max_traces", self.max_traces),
                ("max_file_bytes", self.max_file_bytes),
                ("sample_limit", self.sample_limit),
            )
            if value < 1
        ]
        if problems:
            raise ParameterError(problems)


@dataclass(frozen=True)
class TracesEvidence:
    """What ``collect_traces`` did: ``collected`` False means ``reason`` says why not."""

    collected: bool
    reason: str
    report: BundleReport
    stats: tuple[GroupStats, ...] = ()
    failing_count: int = 0
    slowest_count: int = 0


def bounded_export(traces: Sequence[Trace], bounds: TraceBounds) -> tuple[str, int, str]:
    """Jaeger's JSON of at most ``max_traces`` traces within ``max_file_bytes``: the text,
    how many traces it holds, and a note on what the bounds left out ("" if nothing)."""
    kept: list[object] = []
    size = len('{"data": []}\n')
    over_size = 0
    for trace in traces[: bounds.max_traces]:
        piece = len(json.dumps(trace.raw, indent=1)) + 2
        if size + piece > bounds.max_file_bytes:
            over_size += 1
            continue
        kept.append(dict(trace.raw))
        size += piece
    notes = []
    if len(traces) > bounds.max_traces:
        notes.append(f"{len(traces) - bounds.max_traces} beyond the limit of {bounds.max_traces}")
    if over_size:
        notes.append(f"{over_size} that would pass {bounds.max_file_bytes} bytes")
    text = json.dumps({"data": kept}, indent=1) + "\n"
    return text, len(kept), "; ".join(notes)


def _days(at: datetime) -> float:
    """matplotlib's date number: days since its default epoch, 1970-01-01 UTC."""
    return at.timestamp() / 86400.0


def plot_trace_durations(
    traces: Sequence[Trace], *, rollback_at: datetime | None, deployed_at: datetime, title: str
) -> Figure:
    """A scatter of trace durations over time, one colour per version (a matplotlib Figure)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5))
    ax = fig.add_subplot()
    for version in sorted({t.version or "unknown" for t in traces}):
        group = [t for t in traces if (t.version or "unknown") == version]
        ax.scatter(
            [_days(t.start) for t in group],
            [t.duration_s for t in group],
            s=6,
            alpha=0.6,
            label=f"{version} ({len(group)} traces)",
        )
    ax.xaxis_date(tz="UTC")
    ax.axvline(_days(deployed_at), color="grey", linestyle=":", label="deploy")
    if rollback_at is not None:
        ax.axvline(_days(rollback_at), color="black", linestyle="--", label="rollback")
    ax.set_ylabel("trace duration (s)")
    ax.set_xlabel("start time (UTC)")
    ax.set_title(title)
    if traces:
        ax.legend(loc="upper right", fontsize="small")
    fig.autofmt_xdate()
    return fig


def _summary(
    *,
    service: str,
    url: str,
    periods: Sequence[tuple[str, datetime, datetime]],
    stats: Sequence[GroupStats],
    prometheus: Mapping[str, tuple[float, float]],
    files: Sequence[tuple[str, int, str]],
    warnings: Sequence[str],
) -> str:
    lines = [f"# Traces of service `{service}`", "", f"Source: Jaeger at {url}", ""]
    lines += [
        f"- {label}: {start.isoformat()} to {end.isoformat()}" for label, start, end in periods
    ]
    lines += [
        "",
        "| period | version | traces | failing | error ratio | p99 | Prometheus error ratio"
        " | Prometheus p99 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in stats:
        prom_ratio, prom_p99 = prometheus.get(s.period, (math.nan, math.nan))
        lines.append(
            f"| {s.period} | {s.version} | {s.count} | {s.errors} | {percent(s.error_ratio)}"
            f" | {latency(s.p99_s)} | {percent(prom_ratio)} | {latency(prom_p99)} |"
        )
    if not stats:
        lines.append("| (no traces) | | | | | | | |")
    lines += [
        "",
        "Traces from the backend are a sample when it holds more than the query limit;"
        " Prometheus counts every request.",
        "",
    ]
    for rel, count, note in files:
        cut = f" (left out: {note})" if note else ""
        lines.append(f"- [`{Path(rel).name}`]({Path(rel).name}): {count} traces{cut}")
    lines.append(f"- [`{Path(PLOT).name}`](../{PLOT}): durations over time by version")
    lines += [
        "",
        "The JSON files are Jaeger's own format: load them in a Jaeger UI (Search, JSON File).",
    ]
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in warnings]
    return "\n".join(lines) + "\n"


def _not_collected(directory: Path, reason: str, redact: Callable[[str], str]) -> TracesEvidence:
    text = f"# Traces\n\nTraces were not collected: {reason}\n"
    rel = write_text(directory, SUMMARY, text, redact=redact)
    return TracesEvidence(False, reason, BundleReport((rel,), ()))


def collect_traces(
    directory: Path,
    source: JaegerSource | None,
    *,
    service: str,
    deployed_at: datetime,
    rollback_at: datetime | None,
    end: datetime,
    redact: Callable[[str], str],
    prometheus: Mapping[str, tuple[float, float]] | None = None,
    bounds: TraceBounds | None = None,
    not_collected_reason: str = "tracing_url is empty",
) -> TracesEvidence:
    """Write the trace evidence for the deploy window and the time after the rollback.

    ``source`` None (``tracing_url`` empty): ``traces/summary.md`` says traces were not
    collected and why (``not_collected_reason``). The periods are "deploy window"
    ``[deployed_at, rollback_at)`` and "after rollback" ``[rollback_at, end]``; without a
    rollback one period "since deploy". ``prometheus`` maps a period label to its
    ``(error_ratio, p99_s)`` from the metrics, shown beside the traces' own. A backend that
    fails mid-way leaves what was written and a problem in the report; this never raises for
    the backend's sake (``OSError`` writing the bundle does propagate).
    """
    bounds = bounds or TraceBounds()
    if source is None:
        return _not_collected(directory, not_collected_reason, redact)
    if rollback_at is None:
        periods = [("since deploy", deployed_at, end)]
    else:
        periods = [
            ("deploy window", deployed_at, rollback_at),
            ("after rollback", rollback_at, end),
        ]
    sampled: list[Trace] = []
    failed: list[Trace] = []
    warnings: list[str] = []
    try:
        for label, start, stop in periods:
            sample = source.find_traces(service, start, stop, limit=bounds.sample_limit)
            errors = [
                t
                for tags in FAILING_TAGS
                for t in source.find_traces(
                    service, start, stop, limit=bounds.max_traces + 1, tags=tags
                ).traces
            ]
            # The window's end is inclusive in Jaeger's query; a trace starting exactly at the
            # rollback belongs to the later period only.
            sampled += [t for t in sample.traces if t.start < stop or label == periods[-1][0]]
            failed += [t for t in errors if t.start < stop or label == periods[-1][0]]
            warnings += [f"{label}: {w}" for w in sample.warnings]
    except (TracesError, ParameterError) as err:
        reason = f"the tracing backend could not be queried: {err}"
        return TracesEvidence(
            False,
            reason,
            _not_collected(directory, reason, redact).report
            + BundleReport((), (f"traces: {err}",)),
        )
    stats = tuple(stats_by_version(sampled, periods))
    written: list[str] = []
    files = []
    failing_traces = failing(
        sorted(set(failed) | {t for t in sampled if t.error}, key=lambda t: t.start), 10**9
    )
    for rel, chosen in (
        (FAILING_JSON, failing_traces),
        (SLOWEST_JSON, slowest(sampled, bounds.max_traces)),
    ):
        text, count, note = bounded_export(chosen, bounds)
        written.append(write_text(directory, rel, text, redact=redact))
        files.append((rel, count, note))
    summary = _summary(
        service=service,
        url=source.url,
        periods=periods,
        stats=stats,
        prometheus=prometheus or {},
        files=files,
        warnings=warnings,
    )
    written.insert(0, write_text(directory, SUMMARY, summary, redact=redact))
    fig = plot_trace_durations(
        sampled,
        rollback_at=rollback_at,
        deployed_at=deployed_at,
        title=f"Trace durations: {redact(service)}",
    )
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    evidence_files.write_bytes(directory, PLOT, png.getvalue())
    written.append(PLOT)
    return TracesEvidence(
        True,
        "",
        BundleReport(tuple(written), ()),
        stats,
        failing_count=files[0][1],
        slowest_count=files[1][1],
    )
