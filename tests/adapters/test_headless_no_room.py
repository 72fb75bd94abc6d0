"""Headless runs on a disk too small for the evidence: a real tmpfs of a few MiB (mounted, so a
process, hence this tier). The run is refused before any change, and the refusal's record and
manifest still fit. The other endings, run the same way, are in
``tests/unit/test_headless_endings.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from headless_runs import BAD, headless_run, read_record, verifies

from runbook_lib.headless import HeadlessRun
from runbook_lib.record.facts import Outcome


@pytest.fixture
def small_disk(tmpfs: Callable[[str], Path]) -> Path:
    return tmpfs("8m")


def _leave_free(mount: Path, nbytes: int) -> None:
    """Fill the file system until about ``nbytes`` are left."""
    free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
    with (mount / "filler").open("wb", buffering=0) as fh:
        fh.write(b"\0" * max(free - nbytes, 0))


EXPECTED_AFTER_NO_ROOM = {"timeline.jsonl", "record.json", "record.md", "MANIFEST.sha256"}


def _refused_for_room(run: HeadlessRun, mount: Mapping[str, Any] | Path) -> None:
    ending = run.ending
    assert (ending.outcome, ending.exit_status) == (Outcome.REFUSED, 6)
    assert "at least 50 MiB needed" in ending.room_problem
    assert ending.failure is not None
    assert "at least 50 MiB needed" in ending.failure.message  # what runbook run prints
    assert ending.sealed
    folder = run.incident_dir
    written = {p.name for p in folder.iterdir()}
    # Nothing but the record and the manifest after the refusal (the samples and the "before"
    # plot were written before preflight ran).
    assert written - {"plots", "metrics"} == EXPECTED_AFTER_NO_ROOM
    assert run.notebook == ""
    assert any("not kept" in problem for problem in run.problems)
    assert read_record(folder)["outcome"] == "refused"
    assert verifies(folder)


def test_no_room_for_the_evidence_writes_only_the_record_and_the_manifest(
    small_disk: Path,
) -> None:
    run = headless_run(small_disk, BAD)
    _refused_for_room(run, small_disk)


def test_a_nearly_full_disk_still_takes_the_refusals_record(small_disk: Path) -> None:
    _leave_free(small_disk, 400 * 1024)  # less than the ending's reserve: none is held
    run = headless_run(small_disk, BAD)
    _refused_for_room(run, small_disk)
    assert "MiB free" in run.ending.room_problem
