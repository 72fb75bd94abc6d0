"""Preflight's first check: the evidence folder takes writes and has room, before any change."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from offline_run import offline_run

from runbook_lib import steps
from runbook_lib.errors import PreconditionFailed
from runbook_lib.steps.evidence_room import check_evidence_folder

DATA = Path(__file__).resolve().parents[2] / "notebooks" / "data"


def _start(tmp_path: Path, **over: object) -> steps.RunContext:
    return offline_run(tmp_path, "inc-room", output_dir=str(tmp_path / "out"), **over)


def test_a_writable_folder_passes_and_says_how_much_room(tmp_path: Path) -> None:
    ctx = _start(tmp_path)
    check_evidence_folder(ctx)
    assert "writable" in ctx.timeline.events[-1].message
    assert [p.name for p in ctx.incident_dir.iterdir()] == ["timeline.jsonl"]  # probe gone


def test_a_planted_timeline_symlink_is_never_written_through_and_stops_the_run(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("")
    folder = tmp_path / "out" / "inc-room"
    folder.mkdir(parents=True)
    (folder / "timeline.jsonl").symlink_to(elsewhere)
    ctx = _start(tmp_path)
    assert elsewhere.read_text() == ""  # start_run's event did not go through the link
    assert ctx.timeline.lost is not None
    assert ctx.timeline.lost.errno == errno.ELOOP
    assert ctx.timeline.events  # kept in memory: the run itself was not stopped by it
    with pytest.raises(PreconditionFailed, match="without_evidence=True"):
        check_evidence_folder(ctx)


def test_without_evidence_goes_on_with_a_warning(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("")
    folder = tmp_path / "out" / "inc-room"
    folder.mkdir(parents=True)
    (folder / "timeline.jsonl").symlink_to(elsewhere)
    shown: list[str] = []
    ctx = _start(tmp_path, without_evidence=True)
    ctx.out = shown.append
    check_evidence_folder(ctx)
    assert any("WITHOUT evidence" in text for text in shown)
    assert elsewhere.read_text() == ""
