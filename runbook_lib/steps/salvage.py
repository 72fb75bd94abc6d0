"""Evidence of a run whose notebook stopped at a failing step, gathered from outside the kernel.

``runbook run`` calls ``collect_after_failure`` with the settings it ran the notebook with when
papermill reports a failed cell: the kernel is gone, but the incident timeline on disk says what
was done, so the record, the bundle and the manifest can still be written.
"""

from __future__ import annotations

from collections.abc import Mapping

from runbook_lib.core.settings import Settings
from runbook_lib.errors import ParameterError, RunbookError
from runbook_lib.evidence import incident_record as incident_record
from runbook_lib.steps import collect as evidence
from runbook_lib.steps.context import RunContext, open_timeline
from runbook_lib.steps.read_back import read_back_if_cut_off

__all__ = ["Salvaged", "collect_after_failure"]

# Refusals that leave nothing of this run's to collect from the cluster: another live run holds
# the release (it collects its own evidence, in this very folder when the incident is the
# same), or the credentials point at a cluster the run was told is not the one.
_NOTHING_TO_COLLECT = frozenset({"LockHeld", "WrongCluster"})


class Salvaged:
    """What the salvage wrote and what it could not collect."""

    def __init__(self, ctx: RunContext, written: tuple[str, ...], problems: tuple[str, ...]):
        self.directory = ctx.incident_dir
        self.written = written
        self.problems = problems
        self.outcome = ctx.facts.outcome


def collect_after_failure(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    collect: bool = True,
    run_id: str = "",
) -> Salvaged:
    """Gather the evidence of a run whose notebook stopped at a failing step.

    Reopens the incident's timeline, reads the cluster back when the run's ``helm rollback``
    was cut off (``read_back_if_cut_off``: the kernel died or was killed mid-rollback), writes
    the record (outcome from the timeline's facts) and the bundle, and re-seals the manifest
    (signed with ``signing_key``). Every source is best effort. ``collect=False`` (an
    interrupted run: the person wants it to stop) collects nothing else from the cluster or
    the metrics: the record is built from what is on disk; nor does a run refused because
    another run holds the release or the cluster is not the expected one. ``run_id`` is the
    run's id (``RUNBOOK_RUN_ID``): the incident's other runs may share the timeline; "" reads
    the latest run started. Raises ``ParameterError`` when the settings name no incident.
    """
    if not settings.records.incident_id:
        raise ParameterError(["incident_id: needed to find the failed run's timeline"])
    timeline, redact = open_timeline(settings, environ=environ, run=run_id)
    ctx = RunContext(settings=settings, timeline=timeline, redact=redact)
    problems: list[str] = []
    written: tuple[str, ...] = ()
    read_back_if_cut_off(ctx)
    failure = ctx.facts.failure
    if failure is not None and failure.error_type in _NOTHING_TO_COLLECT:
        collect = False
    if collect and (ctx.facts.decided is None or ctx.facts.rolling_back):
        try:
            report = evidence.collect(ctx)
        except OSError as err:  # the bundle cannot be written (disk full): the record may
            problems.append(f"evidence collection: OSError: {err}")
        else:
            written, problems = report.written, list(report.problems)
    try:
        record = evidence.build_incident_record(ctx, fetch=collect)
        incident_record.write_record(record, ctx.incident_dir, redact=redact)
    except (RunbookError, OSError) as err:
        problems.append(f"incident record: {type(err).__name__}: {err}")
    if timeline.lost is not None:
        problems.append(f"timeline: OSError: {timeline.lost}")
    sealed = evidence.seal(ctx)
    if sealed:
        problems.append(f"seal: {sealed}")
    return Salvaged(ctx, written, tuple(problems))
