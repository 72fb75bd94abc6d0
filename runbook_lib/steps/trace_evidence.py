"""The run's trace evidence: the deploy window and the minutes after the rollback.

Post-Rollback Actions, step 2 ("logs, metrics and traces"). ``collect_run_traces`` asks the
tracing backend (``tracing_url``; service ``tracing_service`` or the release's name) through
``evidence.traces.collect_traces`` for the periods the run's facts give (deploy -> rollback ->
now), puts the Prometheus figures of the same periods beside the traces' own, and records a
``TracesCollected`` fact, so the incident record says whether traces were collected and, if
not, why (no URL; the backend was down). Never raises for the backend's sake.
"""

from __future__ import annotations

import math
from datetime import datetime

import pandas as pd

from runbook_lib.adapters.traces import JaegerSource, resolve_service
from runbook_lib.errors import ParameterError
from runbook_lib.evidence.bundle import BundleReport
from runbook_lib.evidence.traces import collect_traces
from runbook_lib.record.facts import TracesCollected, record_fact
from runbook_lib.steps.context import RunContext

__all__ = ["TRACES_TIMEOUT_S", "collect_run_traces", "prometheus_figures"]

TRACES_TIMEOUT_S = 10.0  # per query to the backend; a backend that is down costs this once


def _period_figures(frame: pd.DataFrame, start: datetime, end: datetime) -> tuple[float, float]:
    """Mean 5xx ratio and median p99 latency of the samples in ``[start, end)``."""
    chosen = frame[(frame.index >= pd.Timestamp(start)) & (frame.index < pd.Timestamp(end))]
    ratio = chosen["error_ratio"].mean() if "error_ratio" in chosen else math.nan
    p99 = chosen["p99_latency_s"].median() if "p99_latency_s" in chosen else math.nan
    return float(ratio), float(p99)


def prometheus_figures(
    frame: pd.DataFrame, *, deployed_at: datetime, rollback_at: datetime | None, end: datetime
) -> dict[str, tuple[float, float]]:
    """``{period: (error_ratio, p99_s)}`` from the metric samples, by the periods of
    ``collect_traces`` ("deploy window", "after rollback", or "since deploy")."""
    if frame.empty:
        return {}
    if rollback_at is None:
        return {"since deploy": _period_figures(frame, deployed_at, end)}
    return {
        "deploy window": _period_figures(frame, deployed_at, rollback_at),
        "after rollback": _period_figures(frame, rollback_at, end),
    }


def collect_run_traces(ctx: RunContext, frame: pd.DataFrame) -> BundleReport:
    """Write ``traces/`` for this run and record ``TracesCollected``; problems listed.

    ``frame``: the run's metric samples (may be empty). Without ``tracing_url``, or without a
    deploy time to start from, ``traces/summary.md`` says why traces were not collected.
    """
    settings = ctx.settings
    facts = ctx.facts
    service = resolve_service(settings.capture.tracing_service, settings.target.release)
    end = ctx.now()
    deployed_at = facts.deployed_at
    rollback_at = facts.rolled_back_at
    source: JaegerSource | None = None
    reason = ""
    if not settings.capture.tracing_url:
        reason = "tracing_url is empty (no tracing backend was named)"
    elif deployed_at is None:
        reason = "the deploy time is unknown (the run stopped before the assessment)"
    else:
        try:
            source = JaegerSource(settings.capture.tracing_url, timeout_s=TRACES_TIMEOUT_S)
        except ParameterError as err:
            reason = f"tracing_url is not usable: {err}"
    result = collect_traces(
        ctx.incident_dir,
        source,
        service=service,
        deployed_at=deployed_at or end,
        rollback_at=rollback_at,
        end=end,
        redact=ctx.redact,
        prometheus=prometheus_figures(
            frame, deployed_at=deployed_at or end, rollback_at=rollback_at, end=end
        ),
        not_collected_reason=reason or "tracing_url is empty",
    )
    failing_sampled = {f"{s.period} / {s.version}": s.errors for s in result.stats}
    fact = TracesCollected(
        collected=result.collected,
        reason=result.reason,
        service=service,
        tracing_url=settings.capture.tracing_url,
        failing=result.failing_count,
        slowest=result.slowest_count,
        failing_sampled=failing_sampled,
    )
    message = (
        f"traces of {service}: {result.failing_count} failing and {result.slowest_count}"
        " slowest kept (traces/summary.md)"
        if result.collected
        else f"traces were not collected: {result.reason}"
    )
    record_fact(ctx.timeline, "preserve_evidence", fact, message)
    return result.report
