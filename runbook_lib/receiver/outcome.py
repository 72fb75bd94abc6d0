"""How a run ended, read from the timeline it left: the receiver's one reader of a run's end.

A run (a local child or a Job writing to a volume the receiver also mounts) leaves
``<incident>/timeline.jsonl``; its facts say the outcome, the verdict and whether the cluster
was changed, whoever watched the run and whether or not the receiver was up when it ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runbook_lib.record.facts import Outcome, RunFacts
from runbook_lib.record.timeline import Timeline

__all__ = ["RunEnd", "read_run_end"]


@dataclass(frozen=True)
class RunEnd:
    """What a run's timeline says: ``ended`` is False while it tells no ending (still
    running, or killed before it could write one)."""

    outcome: str
    verdict: str
    changed_cluster: bool
    ended: bool


def read_run_end(incident_dir: Path) -> RunEnd | None:
    """The run's end from ``incident_dir/timeline.jsonl``; None when there is no timeline
    (the run never started its first step, or its evidence is not visible here)."""
    path = incident_dir / "timeline.jsonl"
    if not path.is_file():
        return None
    facts = RunFacts.read(Timeline(path).events)
    return RunEnd(
        outcome=facts.outcome.value,
        verdict=facts.decided.verdict if facts.decided is not None else "",
        changed_cluster=facts.changed_cluster,
        ended=facts.outcome is not Outcome.INCOMPLETE,
    )
