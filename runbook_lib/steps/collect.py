"""Gathering a run's evidence: samples, figures, cluster and Helm state, the incident record.

Shared by the post-rollback steps (in the kernel) and the salvage path (``runbook run`` after a
step failed, outside the kernel), so both write the same bundle from the same timeline.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from runbook_lib.errors import RunbookError
from runbook_lib.evidence import bundle, files
from runbook_lib.evidence.incident_record import IncidentRecord, build_record
from runbook_lib.steps.bad_pods import SETTLE_IN_EVIDENCE_S, settle_capture, write_pods_by_revision
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.trace_evidence import collect_run_traces

__all__ = ["build_incident_record", "collect", "fetch_samples", "samples", "save_figures"]


def _markers(ctx: RunContext) -> dict[str, datetime]:
    """Deploy, decision, rollback and recovery moments for the plots, from the run's facts."""
    facts = ctx.facts
    marks: dict[str, datetime] = {}
    if facts.deployed_at is not None:
        marks["deploy"] = facts.deployed_at
    if facts.decided_at is not None:
        marks["decision"] = facts.decided_at
    if facts.rolled_back_at is not None:
        marks["rollback"] = facts.rolled_back_at
    if facts.recovered is not None:
        marks["recovered"] = facts.recovered.recovered_at
    return marks


def fetch_samples(ctx: RunContext) -> pd.DataFrame:
    """Samples from the business baseline before the deploy until now, for plots and impact."""
    settings = ctx.settings
    end = settings.sources.now or ctx.now()
    deployed = ctx.facts.deployed_at or settings.sources.deployed_at or end
    start = deployed - timedelta(seconds=settings.rules.business_baseline)
    return ctx.metrics.query_range(start, end, ctx.settings.sources.prometheus_step)


def samples(ctx: RunContext, *, fetch: bool = True) -> pd.DataFrame:
    """The samples saved in the bundle, else what assess read, else fresh ones (then saved).

    ``fetch=False``: never ask the metrics source (raises ``RunbookError`` when none is saved).
    """
    try:
        return bundle.read_samples_csv(ctx.incident_dir)
    except RunbookError:
        if ctx.live.window is None and not fetch:
            raise
        frame = ctx.live.window.frame if ctx.live.window is not None else fetch_samples(ctx)
        bundle.write_samples_csv(ctx.incident_dir, frame)
        return frame


def save_figures(ctx: RunContext, frame: pd.DataFrame, stem: str) -> tuple[list[str], Any]:
    """Save the 5xx/latency figure (and the business one, if any) as ``plots/<stem>*.png``."""
    from runbook_lib.display import plots

    # A fresh Prometheus has no data for most of the baseline window: start at the first sample.
    present = frame.notna().any(axis=1)
    if present.any():
        frame = frame.loc[present.idxmax() :]
    # A replay's samples are from another day than the run's wall clock: mark only the moments
    # near the plotted span, or the time axis would stretch to today.
    first, last = frame.index[0].to_pydatetime(), frame.index[-1].to_pydatetime()
    margin = timedelta(minutes=10)
    marks = {k: t for k, t in _markers(ctx).items() if first - margin <= t <= last + margin}
    moments = plots.Moments(
        deployed_at=marks.get("deploy") or first,
        decided_at=marks.get("decision"),
        rollback_at=marks.get("rollback"),
        recovered_at=marks.get("recovered"),
    )
    rules, recovery = ctx.settings.rules, ctx.settings.recovery
    figures = {
        f"{stem}.png": plots.plot_error_and_latency(
            frame, moments=moments, rules=rules, recovery=recovery
        )
    }
    if any(str(c).startswith("business:") for c in frame.columns):
        figures[f"{stem}-business.png"] = plots.plot_business(frame, moments=moments, rules=rules)
    for name, figure in figures.items():
        # Rendered in memory, then written like every evidence file (atomic, 0640, no symlink).
        png = io.BytesIO()
        figure.savefig(png, format="png", dpi=100)
        files.write_bytes(ctx.incident_dir, f"plots/{name}", png.getvalue())
    return [f"plots/{name}" for name in figures], figures[f"{stem}.png"]


def build_incident_record(ctx: RunContext, *, fetch: bool = True) -> IncidentRecord:
    """The incident record of this run, from its timeline and its samples.

    Samples that cannot be read (metrics down; ``fetch=False`` and none saved) leave the
    impact unknown: the record is written all the same.
    """
    settings = ctx.settings
    try:
        frame = samples(ctx, fetch=fetch)
    except (RunbookError, OSError):
        frame = pd.DataFrame()
    return build_record(
        ctx.timeline.events,
        frame,
        incident_id=settings.records.incident_id,
        release=settings.target.release,
        namespace=settings.target.namespace,
        error_threshold=settings.rules.error_ratio,
        target_s=settings.acting.target,
        request_rate_rps=settings.records.request_rate_rps or None,
        root_cause_hypothesis=settings.records.root_cause_hypothesis,
        now=ctx.now(),
        run=ctx.run_id or None,
        recovery_threshold=settings.recovery.recovery_error_ratio,
    )


def collect(ctx: RunContext) -> bundle.BundleReport:
    """Pods, events, logs, Helm history and diffs, metric samples, traces; problems listed,
    not raised. The bad release's pods captured before the rollback (``run/capture.py``) are
    waited for here at the latest; their gaps are listed with the problems."""
    settle_capture(ctx, "preserve_evidence", timeout_s=SETTLE_IN_EVIDENCE_S)
    settings = ctx.settings
    facts = ctx.facts
    directory = ctx.incident_dir
    report = bundle.BundleReport((), ())
    if facts.bad_pods is not None:
        report += bundle.BundleReport(
            (), tuple(f"before the rollback: {gap}" for gap in facts.bad_pods.gaps)
        )
    frame = pd.DataFrame()
    try:
        frame = samples(ctx)
        report += bundle.BundleReport((bundle.SAMPLES_CSV,), ())
    except RunbookError as err:
        report += bundle.BundleReport((), (f"metric samples: {type(err).__name__}: {err}",))
    rollback = facts.rolled_back or facts.earlier_rollback or facts.rollback_started
    bad = rollback.from_revision if rollback else None
    good = rollback.to_revision if rollback else None
    if rollback is None and facts.target is not None:
        bad = facts.target.bad_revision or facts.target.current_revision
        good = facts.target.target_revision
    try:
        kube, selector = ctx.kube, ctx.pod_selector
    except RunbookError as err:
        report += bundle.BundleReport((), (f"kubernetes: {type(err).__name__}: {err}",))
    else:
        report += bundle.collect_cluster(
            directory,
            kube,
            namespace=settings.target.namespace,
            pod_selector=selector,
            since=facts.deployed_at,
            redact=ctx.redact,
        )
        report += write_pods_by_revision(ctx)
    report += collect_run_traces(ctx, frame)
    report += bundle.collect_helm(
        directory,
        ctx.helm,
        release=settings.target.release,
        bad_revision=bad,
        good_revision=good,
        redact=ctx.redact,
    )
    bundle.write_problems(directory, report, redact=ctx.redact)
    return report
