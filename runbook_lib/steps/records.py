"""Post-Rollback Actions, steps 1 and 2: the incident record and the evidence bundle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runbook_lib.core import readable
from runbook_lib.evidence import incident_record as incident_record
from runbook_lib.evidence.incident_record import IncidentRecord
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps import collect as evidence
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.step import runbook_step

__all__ = ["EvidenceWritten", "RecordWritten", "preserve_evidence", "write_record"]


@dataclass(frozen=True)
class RecordWritten:
    record: IncidentRecord
    files: tuple[str, ...]

    def __repr__(self) -> str:
        r = self.record
        target = {True: "met", False: "MISSED", None: "n/a"}[r.within_target]
        recovery = readable.duration(r.decision_to_recovery_s)
        above = readable.duration(r.impact.minutes_above_threshold * 60)
        return (
            f"Incident record {r.incident_id}: {r.headline or r.outcome.value}; verdict "
            f"{r.verdict or 'not reached'}; decision to verified recovery {recovery} (target "
            f"{readable.duration(r.target_s)}: {target}); {above} with the 5xx ratio above "
            f"the threshold; files {', '.join(self.files)}"
        )


@runbook_step("write_record", only_when_rolling_back=False, seals=True)
def write_record(ctx: RunContext) -> RecordWritten:
    """Post-Rollback Actions, step 1: the incident record (``record.json`` and ``record.md``).

    Written for every run, "no rollback" and "inconclusive" included ("we looked, and why
    not"): outcome, verdict and each rule's status, times, impact (failed requests when
    ``request_rate_rps`` is known, else minutes above the error threshold) and
    ``root_cause_hypothesis``, all from the timeline and the saved samples. Raises ``OSError``
    when the incident folder cannot be written.
    """
    record = evidence.build_incident_record(ctx)
    paths = incident_record.write_record(record, ctx.incident_dir, redact=ctx.redact)
    result = RecordWritten(record, tuple(path.name for path in paths))
    ctx.timeline.record("write_record", EventKind.INFO, repr(result))
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


@runbook_step("preserve_evidence", seals=True)
def preserve_evidence(ctx: RunContext) -> EvidenceWritten:
    """Post-Rollback Actions, step 2: logs, events, pods, helm history and diffs, metrics, traces.

    Waits (at the latest here) for the bad release's pods captured before the rollback, then
    collects what runs now and the traces of the deploy window and after the rollback, and
    re-writes the incident record so it says what was captured and whether traces were
    collected (and why not). Best effort: a source that cannot be read is listed
    (``collection-errors.txt``) instead of stopping the run; everything is redacted and sealed
    by ``MANIFEST.sha256``. Raises ``OSError`` only when the incident directory cannot be
    written.
    """
    report = evidence.collect(ctx)
    record = evidence.build_incident_record(ctx, fetch=False)
    incident_record.write_record(record, ctx.incident_dir, redact=ctx.redact)
    result = EvidenceWritten(ctx.incident_dir, report.written, report.problems)
    for problem in report.problems:
        ctx.timeline.record("preserve_evidence", EventKind.WARNING, problem)
    ctx.timeline.record(
        "preserve_evidence", EventKind.INFO, repr(result), files=list(report.written)
    )
    return result
