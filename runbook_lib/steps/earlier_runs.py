"""Runs of the same release that crashed: found after this run took the lock, sealed, linked.

A run killed mid-rollback (a laptop dying, a runner killed with SIGKILL) leaves a timeline with
no ending and no manifest. The next run finds it in three ways: the Lease it took over names the
crashed run's incident and evidence folder, ``output_dir`` holds incident folders with a run
that took the lock and never ended, and this run's own incident timeline may hold an earlier
attempt that did. Each one found is read back from the cluster (``ClusterReadBack``: whether
its rollback was applied, whatever its timeline got to say), sealed as "interrupted" (a
``Finished`` fact on its behalf, its record written, its manifest re-written) and linked from
this run's record by an ``EarlierRunFound`` fact.

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
from runbook_lib.record.facts import (
    EarlierRunFound,
    Finished,
    Outcome,
    RunFacts,
    attempts,
    record_fact,
)
from runbook_lib.record.timeline import Event, EventKind, Timeline
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.read_back import cut_off_reason, read_cluster_back

__all__ = ["Candidate", "crashed", "crashed_runs", "link_earlier_runs"]

_TIMELINE = "timeline.jsonl"
_STEP = "sealed_by_later_run"


@dataclass(frozen=True)
class Candidate:
    """A run in an incident folder that took the release's lock and never ended."""

    path: Path
    incident_id: str
    holder: str
    facts: RunFacts  # the crashed run's facts (``facts.run`` is its id, "#n" without ids)


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


def _identified(key: str) -> bool:
    """Whether a run key is a run id (not the position of a run in an older timeline)."""
    return bool(key) and not key.startswith("#")


def crashed(events: Iterable[Event], *, run: str) -> list[RunFacts]:
    """The runs in a timeline that took the lock and never ended, except ``run`` (this one).

    Never ended: no ``Finished`` fact and no failed step since it took the lock (a failed or
    interrupted run wrote its own ending; ``RunFacts.ended``). In a timeline without run ids
    only its latest attempt is judged (the earlier ones cannot be told apart when sealing).
    """
    listed = list(events)
    keys = [key for key, _ in attempts(listed)]
    if not any(_identified(k) for k in keys):
        keys = keys[-1:]
    found = []
    for key in keys:
        if key == run:
            continue
        facts = RunFacts.read(listed, run=key)
        if facts.lock is None or facts.dry_run or facts.ended:
            continue
        found.append(facts)
    return found


def crashed_runs(
    output_dir: Path, *, release: str, namespace: str, run: str, exclude: Path
) -> list[Candidate]:
    """Runs in incident folders under ``output_dir`` that took the lock of ``release`` in
    ``namespace`` and never ended (newest folder first). ``exclude`` is this run's own folder
    (its earlier attempts are found in this run's timeline), ``run`` this run's id.
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
        for facts in crashed(Timeline(path).events, run=run):
            assert facts.lock is not None
            candidate = Candidate(folder, folder.name, facts.lock.holder, facts)
            found.append((path.stat().st_mtime, candidate))
    return [c for _, c in sorted(found, key=lambda pair: -pair[0])]


def _read_back(ctx: RunContext, facts: RunFacts, timeline: Timeline) -> str:
    """The crashed run's cluster read back, recorded on its behalf; the sentence or ""."""
    stopped = "its run stopped without an ending (crashed or killed)"
    if facts.rollback_started is not None and facts.rolled_back is None:
        reason = cut_off_reason(facts.rollback_started_at, None, f"never reported back: {stopped}")
    else:
        reason = stopped[0].upper() + stopped[1:]
    fact = read_cluster_back(ctx, _STEP, reason=reason, facts=facts, timeline=timeline)
    return fact.sentence if fact is not None else ""


def _seal_events(ctx: RunContext, candidate: Candidate, timeline: Timeline) -> str:
    """Read the cluster back and append "interrupted" on the crashed run's behalf."""
    settings = ctx.settings
    incident = settings.records.incident_id
    facts = candidate.facts
    run = facts.run if _identified(facts.run) else timeline.run
    sentence = _read_back(ctx, facts, timeline)
    timeline.record_for(
        run,
        _STEP,
        EventKind.WARNING,
        f"this run stopped without an ending (crashed or killed) while holding the lock; "
        f"found and sealed as interrupted by incident {incident} ({ctx.run_id}), "
        f"evidence {ctx.incident_dir.resolve()}",
        later_incident=incident,
        later_run=ctx.run_id,
        later_evidence=str(ctx.incident_dir.resolve()),
    )
    record_fact(
        timeline,
        _STEP,
        Finished(Outcome.INTERRUPTED, None, None, settings.acting.target),
        "outcome: interrupted (sealed by a later run)",
        run=run,
    )
    outcome = Outcome.INTERRUPTED.value
    return f"{outcome}; cluster read back: {sentence}" if sentence else outcome


def _seal(ctx: RunContext, candidate: Candidate) -> str:
    """Seal a crashed run in another folder: read back, "interrupted", record, manifest."""
    settings = ctx.settings
    target = settings.target
    facts = candidate.facts
    run = facts.run if _identified(facts.run) else ""
    timeline = Timeline(
        candidate.path / _TIMELINE, clock=ctx.timeline.now, redact=ctx.redact, run=run
    )
    outcome = _seal_events(ctx, candidate, timeline)
    if timeline.lost is not None:
        return f"not sealed: its timeline cannot be written ({timeline.lost})"
    # Its runner died before giving back the room it held for the record and the manifest.
    files.release_room(candidate.path)
    try:
        record = build_record(
            timeline.events,
            pd.DataFrame(),
            incident_id=candidate.incident_id,
            release=target.release,
            namespace=target.namespace,
            error_threshold=settings.rules.error_ratio,
            target_s=settings.acting.target,
            request_rate_rps=None,
            root_cause_hypothesis="",
            now=ctx.now(),
            run=run or None,
        )
        write_record(record, candidate.path, redact=ctx.redact)
    except OSError as err:
        return f"{outcome}; could not write its record: {err}"

    def unsigned(why: str) -> None:
        timeline.record(_STEP, EventKind.WARNING, f"the manifest is unsigned: {why}")

    state = seal(candidate.path, signing_key=settings.records.manifest_key, on_unsigned=unsigned)
    return outcome if state.sealed else f"{outcome}; {state.sentence()}"


def _link(ctx: RunContext, step: str, candidate: Candidate, outcome: str) -> EarlierRunFound:
    fact = EarlierRunFound(candidate.incident_id, str(candidate.path.resolve()), outcome)
    record_fact(
        ctx.timeline,
        step,
        fact,
        f"earlier run {candidate.incident_id} ({candidate.holder}) never finished: "
        f"{outcome}; its evidence: {candidate.path.resolve()}",
    )
    return fact


def _own_attempts(ctx: RunContext, step: str) -> list[EarlierRunFound]:
    """Earlier attempts of this incident (this run's timeline) that took the lock and never
    ended: sealed on their behalf in the same timeline, then linked."""
    linked: list[EarlierRunFound] = []
    own = ctx.incident_dir.resolve()
    for facts in crashed(ctx.timeline.events, run=ctx.run_id):
        assert facts.lock is not None
        candidate = Candidate(own, ctx.settings.records.incident_id, facts.lock.holder, facts)
        if ctx.dry_run:
            message = f"would seal the earlier attempt {facts.run} as interrupted"
            ctx.timeline.record(step, EventKind.DRY_RUN, message)
            continue
        if _identified(facts.run):
            outcome = _seal_events(ctx, candidate, ctx.timeline)
            outcome += " (an earlier attempt of this incident, in this timeline)"
        else:  # a timeline without run ids: its attempts cannot be sealed apart from this one
            outcome = "interrupted (the attempt before this one, earlier in this timeline)"
        linked.append(_link(ctx, step, candidate, outcome))
    return linked


def link_earlier_runs(ctx: RunContext, step: str, info: LockInfo | None) -> list[EarlierRunFound]:
    """Find, read back, seal and link the crashed runs of this release (preflight, after
    the lock).

    ``info`` is how this run took the lock: a stale or gone holder's Lease names the crashed
    run's folder. In a dry run the runs are named, not changed. Raises nothing: a folder
    that cannot be sealed is linked with why.
    """
    settings = ctx.settings
    own = ctx.incident_dir
    candidates = crashed_runs(
        Path(settings.records.output_dir),
        release=settings.target.release,
        namespace=settings.target.namespace,
        run=ctx.run_id,
        exclude=own,
    )
    previous = info.previous if info is not None else None
    alive = (
        previous.holder if previous is not None and info and info.takeover == "deliberate" else ""
    )
    if previous is not None and previous.evidence_dir and not alive:
        folder = Path(previous.evidence_dir)
        known = {c.path.resolve() for c in candidates}
        if folder.resolve() != own.resolve() and folder.resolve() not in known:
            if (folder / _TIMELINE).is_file():
                incident = previous.incident_id or folder.name
                found = crashed(Timeline(folder / _TIMELINE).events, run=ctx.run_id)
                candidates[0:0] = [
                    Candidate(folder, incident, previous.holder, facts) for facts in found
                ]
            else:
                fact = EarlierRunFound(
                    previous.incident_id,
                    str(folder),
                    "not sealed: its evidence folder is not on this machine",
                )
                record_fact(
                    ctx.timeline,
                    step,
                    fact,
                    f"earlier run {previous.incident_id} crashed; its evidence "
                    f"{folder} is not here",
                )
    linked = _own_attempts(ctx, step)
    for candidate in candidates:
        if alive and candidate.holder == alive:
            outcome = "not sealed: its lock was taken over deliberately; it may still be running"
        elif ctx.dry_run:
            ctx.timeline.record(
                step, EventKind.DRY_RUN, f"would seal {candidate.path} as interrupted"
            )
            continue
        else:
            outcome = _seal(ctx, candidate)
        linked.append(_link(ctx, step, candidate, outcome))
    return linked
