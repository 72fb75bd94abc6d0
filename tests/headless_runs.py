"""Headless runs of the rollback notebook in this interpreter (``InProcessExecutor``), against
the bundled replays, and what a person reads of them afterwards: the record and the manifest.
Shared by the pure endings (tests/unit/test_headless_endings.py) and the tmpfs ones
(tests/adapters/test_headless_no_room.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runbook_lib.evidence.manifest import verify_manifest
from runbook_lib.headless import HeadlessRun, InProcessExecutor, run_notebook

__all__ = ["BAD", "HEALTHY", "NOTEBOOK", "headless_run", "read_record", "verifies"]

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "rollback.ipynb"
DATA = REPO / "notebooks" / "data"
HEALTHY = DATA / "healthy_deploy.csv"
BAD = DATA / "bad_deploy.csv"
WINDOW = {"deployed_at": "2026-11-20T14:00:00+00:00", "now": "2026-11-20T14:30:00+00:00"}


def headless_run(
    output_dir: Path, replay: Path, notebook: Path = NOTEBOOK, **params: Any
) -> HeadlessRun:
    """A confirmed run of incident INC-1 on the ``kwok-runbook`` cluster over ``replay`` (read
    in the bundled replays' window), evidence in ``output_dir``; ``params`` add to or replace
    those."""
    given = {
        "incident_id": "INC-1",
        "expected_cluster": "kwok-runbook",
        "confirm": True,
        "output_dir": str(output_dir),
        "replay_csv": str(replay),
        **WINDOW,
        **params,
    }
    return run_notebook(given, notebook=notebook, executor=InProcessExecutor(), stream=False)


def read_record(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "record.json").read_text())
    return data


def verifies(folder: Path) -> bool:
    """Whether every file of the bundle still matches its manifest."""
    return verify_manifest(folder).ok
