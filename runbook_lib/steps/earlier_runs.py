"""Runs of the same release that crashed: found after this run took the lock, sealed, linked.

A run killed mid-rollback (a laptop dying, a runner killed with SIGKILL) leaves a timeline with
no ending and no manifest. The next run finds it in two ways: the Lease it took over names the
crashed run's incident and evidence folder, and ``output_dir`` holds incident folders whose
latest attempt took the lock and never ended. Each one found is sealed as "interrupted" (a
``Finished`` fact appended to its timeline, its record written from that timeline, its manifest
re-written) and linked from this run's record by an ``EarlierRunFound`` fact.

Only after this run holds the lock: a run that never took the lock may be alive (still
assessing), and a holder whose lock this run took over deliberately is alive too; neither is
touched.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from runbook_lib.adapters.lease import LockInfo
from runbook_lib.evidence import files
from runbook_lib.evidence.incident_record import build_record, write_record
from runbook_lib.evidence.manifest import seal
from runbook_lib.record.facts import EarlierRunFound, Finished, Outcome, RunFacts, record_fact
from runbook_lib.record.timeline import EventKind, Timeline
from runbook_lib.steps.context import RunContext

__all__ = ["Candidate", "crashed_runs", "link_earlier_runs"]

_TIMELINE = "timeline.jsonl"


@dataclass(frozen=True)
class Candidate:
    """An incident folder whose latest attempt took the release's lock and never ended."""

    path: Path
    incident_id: str
    holder: str


def _first_event(path: Path) -> dict[str, object] | None:
    try:
        with path.open(encoding="utf-8") as handle:
            line = handle.readline()
        first = json.loads(line)
    except (OSError, ValueError):
        return None
    return first if isinstance(first, dict) else None


def _same_release(first: dict[str, object], release: str, namespace: str) -> bool:
    data = first.get("data")
    params = data.get("params") if isinstance(data, dict) else None
    if not isinstance(params, dict):
        return False
    return params.get("release") == release and params.get("namespace") == namespace


def crashed(events: Iterable[object], *, holder: str) -> RunFacts | None:
    """The facts of a timeline's latest attempt if it took the lock and never ended.

    Never ended: no ``Finished`` fact and no failed step (a failed or interrupted run wrote its
    own ending). ``holder`` is this run's: its own attempts are never "crashed".
    """
    facts = RunFacts.read(events)  # type: ignore[arg-type]
    if facts.lock is None or facts.dry_run or facts.lock.holder == holder:
        return None
    if facts.finished is not None or facts.failures:
        return None
    return facts


def crashed_runs(
    output_dir: Path, *, release: str, namespace: str, holder: str, exclude: Path
) -> list[Candidate]:
    """Incident folders under ``output_dir`` whose latest attempt took the lock of ``release``
    in ``namespace`` and never ended (newest first). ``exclude`` is this run's own folder.
    """
    found: list[tuple[float, Candidate]] = []
    try:
        folders = [p for p in output_dir.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []
    for folder in folders:
        path = folder / _TIMELINE
        if folder.resolve() == exclude.resolve() or not path.is_file() or path.is_symlink():
            continue
        first = _first_event(path)  # one line read for the folders of other releases
        if first is None or not _same_release(first, release, namespace):
            continue
        facts = crashed(Timeline(path).events, holder=holder)
        if facts is None or facts.lock is None:
            continue
        found.append((path.stat().st_mtime, Candidate(folder, folder.name, facts.lock.holder)))
    return [c for _, c in sorted(found, key=lambda pair: -pair[0])]


def _seal(ctx: RunContext, candidate: Candidate, step: str) -> str:
    """Append "interrupted" to the crashed run's timeline, write its record, re-seal it."""
    settings = ctx.settings
    incident, target = settings.records.incident_id, settings.target
    timeline = Timeline(candidate.path / _TIMELINE, clock=ctx.timeline.now, redact=ctx.redact)
    timeline.record(
        "sealed_by_later_run",
        EventKind.WARNING,
        f"this run stopped without an ending (crashed or killed) while holding the lock; "
        f"found and sealed as interrupted by incident {incident} ({settings.lock.lock_holder}), "
        f"evidence {ctx.incident_dir.resolve()}",
        later_incident=incident,
        later_evidence=str(ctx.incident_dir.resolve()),
    )
    record_fact(
        timeline,
        "sealed_by_later_run",
        Finished(Outcome.INTERRUPTED, None, None, settings.acting.target),
        "outcome: interrupted (sealed by a later run)",
    )
    if timeline.lost is not None:
        return f"not sealed: its timeline cannot be written ({timeline.lost})"
    # Its runner died before giving back the room it held for the record and the manifest.
    files.release_room(candidate.path)
    try:
        record = build_record(
            timeline.events, pd.DataFrame(), incident_id=candidate.incident_id,
            release=target.release, namespace=target.namespace,
            error_threshold=settings.rules.error_ratio, target_s=settings.acting.target,
            request_rate_rps=None, root_cause_hypothesis="", now=ctx.now(),
        )  # fmt: skip
        write_record(record, candidate.path, redact=ctx.redact)
    except OSError as err:
        return f"interrupted; could not write its record: {err}"

    def unsigned(why: str) -> None:
        timeline.record("sealed_by_later_run", EventKind.WARNING, f"unsigned manifest: {why}")

    state = seal(candidate.path, signing_key=settings.records.manifest_key, on_unsigned=unsigned)
    if not state.sealed:
        return f"interrupted; {state.sentence()}"
    return Outcome.INTERRUPTED.value


def link_earlier_runs(ctx: RunContext, step: str, info: LockInfo | None) -> list[EarlierRunFound]:
    """Find, seal and link the crashed runs of this release (preflight, after the lock).

    ``info`` is how this run took the lock: a stale Lease names the crashed run's folder. In a
    dry run the folders are named, not changed. Raises nothing: a folder that cannot be
    sealed is linked with why.
    """
    settings = ctx.settings
    own, holder, incident = (
        ctx.incident_dir,
        settings.lock.lock_holder,
        settings.records.incident_id,
    )
    candidates = crashed_runs(
        Path(settings.records.output_dir), release=settings.target.release,
        namespace=settings.target.namespace, holder=holder, exclude=own,
    )  # fmt: skip
    previous = info.previous if info is not None else None
    alive = (
        previous.holder if previous is not None and info and info.takeover == "deliberate" else ""
    )
    if previous is not None and previous.evidence_dir and not alive:
        folder = Path(previous.evidence_dir)
        known = {c.path.resolve() for c in candidates}
        if folder.resolve() != own.resolve() and folder.resolve() not in known:
            if (folder / _TIMELINE).is_file():
                facts = crashed(Timeline(folder / _TIMELINE).events, holder=holder)
                if facts is not None:
                    candidates.insert(0, Candidate(folder, previous.incident_id or folder.name,
                                                   previous.holder))  # fmt: skip
            else:
                fact = EarlierRunFound(
                    previous.incident_id, str(folder),
                    "not sealed: its evidence folder is not on this machine",
                )  # fmt: skip
                record_fact(ctx.timeline, step, fact,
                            f"earlier run {previous.incident_id} crashed; its evidence "
                            f"{folder} is not here")  # fmt: skip
    linked: list[EarlierRunFound] = []
    # A re-run of the same incident appends to its timeline: the attempt before this one.
    events = ctx.timeline.events
    starts = [i for i, e in enumerate(events) if e.step == "start_run"]
    if len(starts) > 1:
        before = events[starts[-2] : starts[-1]]
        facts = crashed(before, holder="")  # same incident: the holder may be the same
        if facts is not None and facts.lock is not None:
            fact = EarlierRunFound(
                incident, str(own.resolve()),
                "interrupted (the attempt before this one, earlier in this timeline)",
            )  # fmt: skip
            record_fact(ctx.timeline, step, fact,
                        f"the previous attempt of {incident} ({facts.lock.holder}) "
                        "never finished")  # fmt: skip
            linked.append(fact)
    for candidate in candidates:
        if alive and candidate.holder == alive:
            outcome = "not sealed: its lock was taken over deliberately; it may still be running"
        elif ctx.dry_run:
            ctx.timeline.record(step, EventKind.DRY_RUN,
                                f"would seal {candidate.path} as interrupted")  # fmt: skip
            continue
        else:
            outcome = _seal(ctx, candidate, step)
        fact = EarlierRunFound(candidate.incident_id, str(candidate.path.resolve()), outcome)
        record_fact(
            ctx.timeline, step, fact,
            f"earlier run {candidate.incident_id} ({candidate.holder}) never finished: "
            f"{outcome}; its evidence: {candidate.path.resolve()}",
        )  # fmt: skip
        linked.append(fact)
    return linked
