"""The runbook's "Post-Rollback Actions": plots, incident record, evidence, fix, post-mortem.

Each step records itself on the timeline and writes into the incident directory
(``<output_dir>/<incident_id>/``), then re-seals ``MANIFEST.sha256`` after its span has closed,
so the bundle verifies after whichever step the run stopped at. None of them changes the
cluster, so they also run in a dry run (fix forward then only says what it would create).
``steps.salvage`` gathers the same evidence from outside the kernel after a step failed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from runbook_lib.errors import ParameterError, PreconditionFailed, RunbookError
from runbook_lib.evidence import bundle, postmortem
from runbook_lib.evidence import record as incident_record
from runbook_lib.evidence.fixforward import FixForward, create_fix_branch
from runbook_lib.evidence.manifest import write_manifest
from runbook_lib.evidence.record import IncidentRecord, build_record
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.span import Skipped, skip_if_not_rolling_back, step_span
from runbook_lib.timeline import EventKind

__all__ = [
    "EvidenceWritten",
    "FixForwardResult",
    "PlotsWritten",
    "PostmortemDrafted",
    "RecordWritten",
    "draft_postmortem",
    "fix_forward",
    "plot_assessment",
    "plot_before_after",
    "preserve_evidence",
    "write_record",
]


def _seal(ctx: RunContext) -> None:
    write_manifest(ctx.incident_dir)


def _deployed_at(ctx: RunContext) -> datetime | None:
    if ctx.state.deployed_at is not None:
        return ctx.state.deployed_at
    for event in reversed(ctx.timeline.events):
        value = event.data.get("deployed_at")
        if isinstance(value, str):
            return datetime.fromisoformat(value)
    return ctx.params.deployed_at


def _revisions(ctx: RunContext) -> tuple[int | None, int | None]:
    """(bad, good) revision numbers: from preflight's state, else from its timeline event."""
    target = ctx.state.target
    if target is not None:
        return target.current.number, target.target.number
    for event in reversed(ctx.timeline.events):
        if event.step == "preflight" and "target" in event.data:
            return int(event.data["current"]), int(event.data["target"])
    return None, None


def _markers(ctx: RunContext) -> dict[str, datetime]:
    """Deploy, decision and rollback times for the plots, all from the timeline/state."""
    marks: dict[str, datetime] = {}
    deployed = _deployed_at(ctx)
    if deployed is not None:
        marks["deploy"] = deployed
    decision = next(
        (e for e in reversed(ctx.timeline.events) if e.kind == EventKind.DECISION), None
    )
    if decision is not None:
        marks["decision"] = decision.at
    rollback = ctx.timeline.last("helm_rollback", EventKind.STEP_END)
    if rollback is not None:
        marks["rollback"] = rollback.at
    if ctx.state.recovered_at is not None:
        marks["recovered"] = ctx.state.recovered_at
    return marks


def _fetch_samples(ctx: RunContext) -> pd.DataFrame:
    """Samples from before the deploy (the baseline window) until now, for plots and impact."""
    p = ctx.params
    end = p.now or ctx.now()
    deployed = _deployed_at(ctx) or end
    start = deployed - timedelta(seconds=p.thresholds.business_baseline_s)
    return ctx.metrics.query_range(start, end, p.metrics_step_s)


def _samples(ctx: RunContext) -> pd.DataFrame:
    """The samples saved by ``plot_before_after``, else fresh ones (saved for the bundle)."""
    try:
        return bundle.read_samples_csv(ctx.incident_dir)
    except RunbookError:
        samples = _fetch_samples(ctx)
        bundle.write_samples_csv(ctx.incident_dir, samples)
        return samples


@dataclass(frozen=True)
class PlotsWritten:
    files: tuple[str, ...]
    samples: int
    figure: Any = field(repr=False, compare=False)

    def __repr__(self) -> str:
        return f"Plots: {', '.join(self.files)} ({self.samples} samples)"

    def _repr_png_(self) -> bytes:
        # Jupyter shows the figure itself under the cell, and the summary as text.
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=80)
        return buffer.getvalue()


def _save_figures(ctx: RunContext, samples: pd.DataFrame, stem: str) -> tuple[list[str], Any]:
    """Save the 5xx/latency figure (and the business one, if any) as ``plots/<stem>*.png``."""
    from runbook_lib import plots

    # A fresh Prometheus has no data for most of the baseline window: start at the first sample.
    present = samples.notna().any(axis=1)
    if present.any():
        samples = samples.loc[present.idxmax() :]
    # A replay's samples are from another day than the run's wall clock: mark only the moments
    # that fall on the plotted span, or the time axis would stretch to today.
    first, last = samples.index[0].to_pydatetime(), samples.index[-1].to_pydatetime()
    margin = timedelta(minutes=10)
    marks = {k: t for k, t in _markers(ctx).items() if first - margin <= t <= last + margin}
    moments = plots.Moments(
        deployed_at=marks.get("deploy") or samples.index[0].to_pydatetime(),
        decided_at=marks.get("decision"),
        rollback_at=marks.get("rollback"),
        recovered_at=marks.get("recovered"),
    )
    th = ctx.params.thresholds
    figures = {f"{stem}.png": plots.plot_error_and_latency(samples, moments=moments, thresholds=th)}
    if any(str(c).startswith("business:") for c in samples.columns):
        figures[f"{stem}-business.png"] = plots.plot_business(
            samples, moments=moments, thresholds=th
        )
    directory = ctx.incident_dir / "plots"
    directory.mkdir(parents=True, exist_ok=True)
    for name, figure in figures.items():
        figure.savefig(directory / name, dpi=100)
    return [f"plots/{name}" for name in figures], figures[f"{stem}.png"]


def plot_assessment(ctx: RunContext) -> PlotsWritten:
    """The "before" picture for "When to Rollback": the samples ``assess`` read, thresholds drawn.

    Saved as ``plots/before.png``. Raises ``PreconditionFailed`` when ``assess`` has not run.
    """
    with step_span(ctx, "plot_assessment"):
        samples = ctx.state.samples
        if samples is None:
            raise PreconditionFailed("plot_assessment needs assess to have run first")
        paths, figure = _save_figures(ctx, samples, "before")
        result = PlotsWritten(tuple(paths), len(samples), figure)
        ctx.timeline.record("plot_assessment", EventKind.INFO, repr(result), files=paths)
    return result


def plot_before_after(ctx: RunContext) -> PlotsWritten | Skipped:
    """Error ratio and p99 latency before and after the rollback, deploy/decision/rollback marked.

    Supports Rollback Steps, step 4 (is the error rate back down?) and is the first piece of
    evidence. Saves the samples as ``metrics/samples.csv`` and the figure as
    ``plots/before_after.png``. Raises ``MetricsError`` when the samples cannot be read.
    """
    skipped = skip_if_not_rolling_back(ctx, "plot_before_after")
    if skipped:
        return skipped
    with step_span(ctx, "plot_before_after"):
        samples = _fetch_samples(ctx)
        csv = bundle.write_samples_csv(ctx.incident_dir, samples)
        paths, figure = _save_figures(ctx, samples, "before_after")
        result = PlotsWritten((csv, *paths), len(samples), figure)
        ctx.timeline.record("plot_before_after", EventKind.INFO, repr(result), files=[csv, *paths])
    _seal(ctx)
    return result


@dataclass(frozen=True)
class RecordWritten:
    record: IncidentRecord
    files: tuple[str, ...]

    def __repr__(self) -> str:
        r = self.record
        target = {True: "met", False: "MISSED", None: "n/a"}[r.within_target]
        recovery = (
            "n/a" if r.decision_to_recovery_s is None else f"{r.decision_to_recovery_s:.0f} s"
        )
        return (
            f"Incident record {r.incident_id}: outcome {r.outcome.value}; decision to recovery "
            f"{recovery} (5-minute target {target}); "
            f"{r.impact.minutes_above_threshold:.1f} min above threshold; "
            f"files {', '.join(self.files)}"
        )


def _versions(ctx: RunContext) -> dict[int, str]:
    history = ctx.state.history
    if not history:
        try:
            history = tuple(ctx.helm.history(ctx.params.release))
        except RunbookError:
            return {}
    return {r.number: r.app_version or r.chart for r in history}


def _build_record(
    ctx: RunContext, *, root_cause_hypothesis: str, request_rate_rps: float | None
) -> IncidentRecord:
    p = ctx.params
    return build_record(
        ctx.timeline.events,
        _samples(ctx),
        incident_id=p.incident_id,
        release=p.release,
        namespace=p.namespace,
        error_threshold=p.thresholds.error_ratio,
        request_rate_rps=request_rate_rps,
        root_cause_hypothesis=root_cause_hypothesis,
        versions=_versions(ctx),
        now=ctx.now(),
    )


def write_record(
    ctx: RunContext, *, root_cause_hypothesis: str = "", request_rate_rps: float | None = None
) -> RecordWritten | Skipped:
    """Post-Rollback Actions, step 1: the incident record (``record.json`` and ``record.md``).

    Built from the timeline and the saved samples; impact is failed requests when a request
    rate is known, else minutes above the error threshold. Raises ``MetricsError`` when no
    samples were saved and none can be read.
    """
    skipped = skip_if_not_rolling_back(ctx, "write_record")
    if skipped:
        return skipped
    with step_span(ctx, "write_record"):
        record = _build_record(
            ctx, root_cause_hypothesis=root_cause_hypothesis, request_rate_rps=request_rate_rps
        )
        paths = incident_record.write_record(record, ctx.incident_dir, redact=ctx.redact)
        result = RecordWritten(record, tuple(path.name for path in paths))
        ctx.timeline.record("write_record", EventKind.INFO, repr(result))
        ctx.show(repr(result))
    _seal(ctx)
    return result


@dataclass(frozen=True)
class EvidenceWritten:
    directory: Path
    files: tuple[str, ...]
    problems: tuple[str, ...]

    def __repr__(self) -> str:
        lines = [f"Evidence in {self.directory}: {len(self.files)} files collected"]
        lines += [f"  could not collect: {p}" for p in self.problems]
        return "\n".join(lines)


def _collect(ctx: RunContext) -> bundle.BundleReport:
    p = ctx.params
    directory = ctx.incident_dir
    report = bundle.BundleReport((), ())
    try:
        _samples(ctx)
        report += bundle.BundleReport((bundle.SAMPLES_CSV,), ())
    except RunbookError as err:
        report += bundle.BundleReport((), (f"metric samples: {type(err).__name__}: {err}",))
    bad, good = _revisions(ctx)
    report += bundle.collect_cluster(
        directory,
        ctx.kube,
        namespace=p.namespace,
        pod_selector=p.pod_selector,
        since=_deployed_at(ctx),
        redact=ctx.redact,
    )
    report += bundle.collect_helm(
        directory, ctx.helm, release=p.release, bad_revision=bad, good_revision=good,
        redact=ctx.redact,
    )  # fmt: skip
    bundle.write_problems(directory, report, redact=ctx.redact)
    return report


def preserve_evidence(ctx: RunContext) -> EvidenceWritten | Skipped:
    """Post-Rollback Actions, step 2: logs, events, pods, helm history and diffs, metrics.

    Best effort: a source that cannot be read is listed (``collection-errors.txt``) instead of
    stopping the run; everything is redacted and sealed by ``MANIFEST.sha256``. Raises
    ``OSError`` only when the incident directory cannot be written.
    """
    skipped = skip_if_not_rolling_back(ctx, "preserve_evidence")
    if skipped:
        return skipped
    with step_span(ctx, "preserve_evidence"):
        report = _collect(ctx)
        result = EvidenceWritten(ctx.incident_dir, report.written, report.problems)
        for problem in report.problems:
            ctx.timeline.record("preserve_evidence", EventKind.WARNING, problem)
        ctx.timeline.record("preserve_evidence", EventKind.INFO, repr(result),
                            files=list(report.written))  # fmt: skip
        ctx.show(repr(result))
    _seal(ctx)
    return result


@dataclass(frozen=True)
class FixForwardResult:
    """The branch created, or why none was (no repository given, refused)."""

    branch: FixForward | None
    refused: str = ""

    def __repr__(self) -> str:
        if self.branch is not None:
            return f"Fix forward: {self.branch}"
        return f"Fix forward: no branch created: {self.refused}"


def fix_forward(ctx: RunContext, *, repo: str = "") -> FixForwardResult | Skipped:
    """Post-Rollback Actions, step 3: branch ``fix/<incident_id>`` at the last good commit.

    The commit comes from the good revision's ``runbook.io/git-commit`` annotation or its
    values' ``commits`` mapping (or a tag named like the version). A refusal (branch exists,
    commit unknown, no repository given) is recorded as a warning and shown, not raised: the
    rollback itself is done. Raises ``CommandFailed`` when git itself fails.
    """
    skipped = skip_if_not_rolling_back(ctx, "fix_forward")
    if skipped:
        return skipped
    p = ctx.params
    with step_span(ctx, "fix_forward"):
        if not repo:
            result = FixForwardResult(None, "no repository given (parameter fix_forward_repo)")
        else:
            _bad, good = _revisions(ctx)
            manifest, values = "", {}
            if good is not None:
                manifest = ctx.helm.manifest(p.release, good)
                values = ctx.helm.values(p.release, good)
            try:
                branch = create_fix_branch(
                    Path(repo),
                    incident_id=p.incident_id,
                    good_version=_versions(ctx).get(good) if good is not None else None,
                    manifest_yaml=manifest,
                    values=values,
                    deployment=p.deployment,
                    dry_run=ctx.dry_run,
                )
            except (PreconditionFailed, ParameterError) as err:
                result = FixForwardResult(None, str(err))
            else:
                result = FixForwardResult(branch)
        kind = EventKind.DRY_RUN if ctx.dry_run and result.branch else EventKind.INFO
        if result.branch is None:
            kind = EventKind.WARNING
        ctx.timeline.record("fix_forward", kind, repr(result),
                            branch=result.branch.branch if result.branch else "")  # fmt: skip
        ctx.show(repr(result))
    _seal(ctx)
    return result


@dataclass(frozen=True)
class PostmortemDrafted:
    files: tuple[str, ...]
    slot: datetime
    reminder: postmortem.Reminder

    def __repr__(self) -> str:
        return (
            f"Post-mortem draft {self.files[0]}, invitation {self.files[1]} for "
            f"{self.slot:%a %Y-%m-%d %H:%M} UTC\n{self.reminder}"
        )


def draft_postmortem(
    ctx: RunContext,
    *,
    organizer: str = "",
    attendees: Sequence[str] = (),
    slow_step_s: float = 60.0,
) -> PostmortemDrafted | Skipped:
    """Post-Rollback Actions, steps 4 and 5: post-mortem draft, invitation, runbook reminder.

    Reads ``record.json`` (``write_record`` must have run). Writes ``postmortem.md``,
    ``postmortem.ics`` (RFC 5545, UTC, within 48 hours) and ``runbook-update.md`` listing the
    steps that failed or took longer than ``slow_step_s``. Raises ``PreconditionFailed`` when
    there is no record.
    """
    skipped = skip_if_not_rolling_back(ctx, "draft_postmortem")
    if skipped:
        _seal(ctx)
        return skipped
    directory = ctx.incident_dir
    with step_span(ctx, "draft_postmortem"):
        try:
            record = incident_record.load_record(directory / "record.json")
        except OSError as err:
            raise PreconditionFailed("draft_postmortem needs write_record to have run") from err
        now = ctx.now()
        slot = postmortem.postmortem_slot(now)
        fix = ctx.timeline.last("fix_forward", EventKind.INFO)
        branch = str(fix.data.get("branch", "")) if fix else ""
        reminder = postmortem.runbook_reminder(record, slow_s=slow_step_s)
        texts = {
            "postmortem.md": postmortem.postmortem_markdown(record, slot=slot, fix_branch=branch),
            "postmortem.ics": postmortem.calendar_invite(
                record, now=now, start=slot, organizer=organizer or None, attendees=attendees
            ),
            "runbook-update.md": f"# Runbook update for {ctx.params.incident_id}\n\n{reminder}\n",
        }
        for name, text in texts.items():
            # newline="" keeps the CRLF line ends RFC 5545 requires.
            with (directory / name).open("w", encoding="utf-8", newline="") as fh:
                fh.write(ctx.redact(text))
        result = PostmortemDrafted(tuple(texts), slot, reminder)
        ctx.timeline.record("draft_postmortem", EventKind.INFO, repr(result))
        ctx.show(repr(result))
    _seal(ctx)
    return result
