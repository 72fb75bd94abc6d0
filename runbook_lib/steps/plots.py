"""The before and after pictures: what "When to Rollback" saw, and what the rollback changed."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from runbook_lib.errors import PreconditionFailed, RunbookError
from runbook_lib.evidence import bundle
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps import collect as evidence
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.step import runbook_step

__all__ = ["PlotsWritten", "plot_assessment", "plot_before_after", "write_after_plot"]


@dataclass(frozen=True)
class PlotsWritten:
    files: tuple[str, ...]
    samples: int
    figure: Any = field(repr=False, compare=False)

    def __repr__(self) -> str:
        return f"Plots: {', '.join(self.files)} ({self.samples} samples)"

    def _repr_png_(self) -> bytes | None:
        # Jupyter shows the figure itself under the cell, and the summary as text.
        if self.figure is None:
            return None
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=80)
        return buffer.getvalue()


@runbook_step("plot_assessment", only_when_rolling_back=False, seals=True)
def plot_assessment(ctx: RunContext) -> PlotsWritten:
    """The "before" picture for "When to Rollback": the samples ``assess`` read, thresholds drawn.

    Saves the samples as ``metrics/samples.csv`` and the figure as ``plots/before.png``, so even
    a run that decides "no rollback" leaves them. Raises ``PreconditionFailed`` when ``assess``
    has not run.
    """
    window = ctx.live.window
    if window is None:
        raise PreconditionFailed("plot_assessment needs assess to have run first")
    csv = bundle.write_samples_csv(ctx.incident_dir, window.frame)
    if window.frame.empty:  # Prometheus could not be read: nothing to draw, and assess said why
        ctx.timeline.record("plot_assessment", EventKind.INFO, "no samples: nothing to plot")
        return PlotsWritten((csv,), 0, None)
    paths, figure = evidence.save_figures(ctx, window.frame, "before")
    result = PlotsWritten((csv, *paths), len(window.frame), figure)
    ctx.timeline.record("plot_assessment", EventKind.INFO, repr(result), files=[csv, *paths])
    return result


def write_after_plot(ctx: RunContext) -> PlotsWritten:
    """The samples up to now and ``plots/before_after.png`` (the step's body, and the salvage's
    after a failure past the rollback, e.g. an escalation).

    When the metrics cannot be read (Prometheus down), the failure goes to
    ``collection-errors.txt`` and the timeline, and the samples read before are plotted
    instead. Raises ``OSError`` when the bundle cannot be written.
    """
    try:
        frame = evidence.fetch_samples(ctx)
    except RunbookError as err:
        problem = f"metric samples after the rollback: {type(err).__name__}: {err}"
        report = bundle.BundleReport((), (problem,))
        bundle.write_problems(ctx.incident_dir, report, redact=ctx.redact)
        ctx.timeline.record("plot_before_after", EventKind.WARNING, problem)
        try:
            frame = evidence.samples(ctx, fetch=False)
        except RunbookError:
            return PlotsWritten((bundle.COLLECTION_ERRORS,), 0, None)
        paths, figure = evidence.save_figures(ctx, frame, "before_after")
        return PlotsWritten((*paths, bundle.COLLECTION_ERRORS), len(frame), figure)
    csv = bundle.write_samples_csv(ctx.incident_dir, frame)
    paths, figure = evidence.save_figures(ctx, frame, "before_after")
    result = PlotsWritten((csv, *paths), len(frame), figure)
    ctx.timeline.record("plot_before_after", EventKind.INFO, repr(result), files=[csv, *paths])
    return result


@runbook_step("plot_before_after", seals=True)
def plot_before_after(ctx: RunContext) -> PlotsWritten:
    """Error ratio and p99 latency before and after the rollback, deploy/decision/rollback marked.

    Supports Rollback Steps, step 4 (is the error rate back down?) and is the first piece of
    evidence. Saves the samples as ``metrics/samples.csv`` and the figure as
    ``plots/before_after.png``. When the metrics cannot be read (Prometheus down), the failure
    goes to ``collection-errors.txt`` and the timeline, the samples read before are plotted
    instead, and the run goes on: the record and the rest of the evidence matter more.
    """
    return write_after_plot(ctx)
