"""A run started as the notebook starts it, with nothing to reach: for the step tests that
need a ``RunContext`` but no cluster, no metrics and no terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runbook_lib.steps import RunContext, start_run

__all__ = ["offline_run"]


def offline_run(tmp_path: Path, incident_id: str, **over: Any) -> RunContext:
    """``start_run`` against the ``kwok-runbook`` cluster it never asks, a replay file with
    no samples, evidence in ``tmp_path``, no output and no environment; ``over`` adds to or
    replaces any of those."""
    replay = tmp_path / "unused.csv"
    replay.write_text("timestamp,error_ratio,latency_p99_s\n")
    params: dict[str, Any] = {
        "expected_cluster": "kwok-runbook",
        "replay_csv": str(replay),
        "output_dir": str(tmp_path),
        "incident_id": incident_id,
        "out": lambda _text: None,
        "environ": {},
    }
    return start_run(**(params | over))
