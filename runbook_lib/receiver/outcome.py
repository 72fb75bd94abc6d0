"""How a run ended, read from the timeline it left: the run's ``Ending``, as the run said it.

A run (a local child or a Job writing to a volume the receiver also mounts) leaves
``<incident>/timeline.jsonl``; its ``Ending`` (the one every ending is read from) says the
outcome, the verdict and whether the cluster was changed, whoever watched the run and whether
or not the receiver was up when it ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runbook_lib.record.ending import Ending
from runbook_lib.record.facts import Outcome
from runbook_lib.record.timeline import Timeline

__all__ = ["RunEnd", "read_run_end"]


@dataclass(frozen=True)
class RunEnd:
    """What a run's timeline says: ``ended`` is False while it tells no ending (still
    running, or killed before it could write one)."""

    outcome: str
    verdict: str
    changed_cluster: bool  # a rollback is in the release, or may be (helm cut off, not read)
    ended: bool


def read_run_end(incident_dir: Path) -> RunEnd | None:
    """The run's end from ``incident_dir/timeline.jsonl``; None when there is no timeline
    (the run never started its first step, or its evidence is not visible here)."""
    path = incident_dir / "timeline.jsonl"
    if not path.is_file():
        return None
    ending = Ending.of(Timeline(path).events)
    return RunEnd(
        outcome=ending.outcome.value,
        verdict=ending.verdict.value if ending.verdict is not None else "",
        # Not known counts as changed: the breaker must not let a run that may have rolled
        # back pass as one that did nothing.
        changed_cluster=ending.changed_cluster is not False,
        ended=ending.outcome is not Outcome.INCOMPLETE,
    )
