"""Evidence of a run whose notebook stopped before its last cell, gathered from outside it.

``runbook run`` (``runbook_lib.headless``) uses these when the notebook stopped at a failing
step, was interrupted, or never started: the kernel is gone, but the incident timeline on disk
says what was done, so the evidence and the record can still be written, from the settings the
notebook ran with. Sealing is the caller's, once, at the very end.
"""

from __future__ import annotations

from collections.abc import Mapping

from runbook_lib.core.settings import Settings
from runbook_lib.errors import ParameterError, RunbookError
from runbook_lib.evidence import incident_record as incident_record
from runbook_lib.steps import collect as evidence
from runbook_lib.steps.context import RunContext, open_timeline
from runbook_lib.steps.plots import write_after_plot

__all__ = ["collect_after_failure", "open_failed_run", "record_after_failure"]

# Refusals that leave nothing of this run's to collect from the cluster: another live run holds
# the release (it collects its own evidence, in this very folder when the incident is the
# same), or the credentials point at a cluster the run was told is not the one.
_NOTHING_TO_COLLECT = frozenset({"LockHeld", "WrongCluster"})


def open_failed_run(
    settings: Settings, *, run_id: str = "", environ: Mapping[str, str] | None = None
) -> RunContext:
    """The run's context, its timeline reopened (appended to), for the evidence after a stop.

    ``run_id`` is the run's id (``RUNBOOK_RUN_ID``): the incident's other runs may share the
    timeline; "" reads the latest run started. Raises ``ParameterError`` when the settings
    name no incident.
    """
    if not settings.records.incident_id:
        raise ParameterError(["incident_id: needed to find the failed run's timeline"])
    timeline, redact = open_timeline(settings, environ=environ, run=run_id)
    return RunContext(settings=settings, timeline=timeline, redact=redact)


def collect_after_failure(ctx: RunContext) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The evidence a finished run's post-rollback steps would have written: (written, problems).

    After a rollback (an escalation, metrics down to the end) first the samples up to now and
    the before/after plot (``plot_before_after``'s body), then the bundle (pods, events, logs,
    Helm, traces). Every source is best effort: a problem is listed (and in
    ``collection-errors.txt``), never raised; a bundle that cannot be written at all is one
    problem naming ``OSError``. A run stopped by its decision collects nothing, nor does one
    refused because another run holds the release or the cluster is not the expected one.
    """
    facts = ctx.facts
    if facts.decided is not None and not facts.rolling_back:
        return (), ()
    if facts.failure is not None and facts.failure.error_type in _NOTHING_TO_COLLECT:
        return (), ()
    written: list[str] = []
    problems: list[str] = []
    if facts.changed_cluster:
        try:
            written += write_after_plot(ctx).files
        except OSError as err:
            problems.append(f"plot after the rollback: OSError: {err}")
    try:
        report = evidence.collect(ctx)
    except OSError as err:  # the bundle cannot be written (disk full): the record may
        problems.append(f"evidence collection: OSError: {err}")
    else:
        written += report.written
        problems += report.problems
    return tuple(written), tuple(problems)


def record_after_failure(ctx: RunContext, *, fetch: bool = True) -> tuple[str, ...]:
    """Write the incident record (``record.json``, ``record.md``) from the timeline's facts.

    ``fetch=False`` (an interrupted run, or one refused for lack of room): no metric is read,
    the record is built from what is on disk. Returns the problems (none raised).
    """
    try:
        record = evidence.build_incident_record(ctx, fetch=fetch)
        incident_record.write_record(record, ctx.incident_dir, redact=ctx.redact)
    except (RunbookError, OSError) as err:
        return (f"incident record: {type(err).__name__}: {err}",)
    return ()
