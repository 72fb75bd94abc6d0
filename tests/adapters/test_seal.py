"""The one seal policy (``evidence.manifest.seal``): signed, else unsigned with the reason
recorded, a torn timeline cut first, and "sealed" only when the folder then verifies.

Real folders, real ``ssh-keygen`` keys; whatever ``seal`` says, ``verify_manifest`` (what
``runbook verify-evidence`` runs) must agree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runbook_lib.errors import InputFileError
from runbook_lib.evidence import files
from runbook_lib.evidence.manifest import MANIFEST_NAME, SIGNATURE_NAME, seal, verify_manifest
from runbook_lib.record.timeline import EventKind, Timeline, repair_torn_tail

T0 = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


def _bundle(tmp_path: Path) -> Path:
    folder = files.evidence_dir(tmp_path / "INC-1")
    timeline = Timeline(folder / "timeline.jsonl", clock=lambda: T0)
    timeline.record("start_run", EventKind.INFO, "run started")
    timeline.record("finish", EventKind.INFO, "finished")
    files.write_text(folder, "record.md", "# Incident INC-1\n")
    return folder


def _verifies(folder: Path) -> bool:
    try:
        return verify_manifest(folder).ok
    except InputFileError:
        return False


@pytest.fixture
def key(tmp_path: Path) -> Path:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen (OpenSSH) not installed")
    path = tmp_path / "keys" / "id_ed25519"
    path.parent.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "t", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def test_signed_when_the_key_signs(tmp_path: Path, key: Path) -> None:
    folder = _bundle(tmp_path)
    state = seal(folder, signing_key=key)
    assert (state.sealed, state.signed, state.why) == (True, True, "")
    assert (folder / SIGNATURE_NAME).exists()
    assert _verifies(folder)


def test_unsigned_with_the_reason_recorded_when_signing_fails(tmp_path: Path, key: Path) -> None:
    folder = _bundle(tmp_path)
    key.unlink()  # the key went away after the run started
    timeline = Timeline(folder / "timeline.jsonl", clock=lambda: T0)
    state = seal(
        folder,
        signing_key=key,
        on_unsigned=lambda why: timeline.record("seal", EventKind.WARNING, f"unsigned: {why}"),
    )
    assert state.sealed
    assert not state.signed
    assert str(key) in state.why
    # The reason is on the timeline, and the unsigned manifest covers that line too.
    assert "unsigned: signing with" in (folder / "timeline.jsonl").read_text()
    assert not (folder / SIGNATURE_NAME).exists()
    assert _verifies(folder)


def test_a_torn_timeline_line_is_cut_and_the_cut_recorded(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    with (folder / "timeline.jsonl").open("a") as fh:
        fh.write('{"at": "2026-11-20T14:31:00+00:00", "step": "check_rec')  # killed mid-write
    state = seal(folder, signing_key="")
    assert state.sealed
    assert "torn line 3" in state.repaired
    reread = Timeline(folder / "timeline.jsonl")
    assert reread.damaged == ()  # every line reads back
    assert [e.step for e in reread.events] == ["start_run", "finish", "timeline"]
    assert "line 3 was torn" in reread.events[-1].message
    assert reread.events[-1].data["excerpt"].startswith('{"at": "2026-11-20T14:31:00')
    assert _verifies(folder)


def test_a_whole_timeline_is_left_alone(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    before = (folder / "timeline.jsonl").read_bytes()
    assert repair_torn_tail(folder / "timeline.jsonl") is None
    assert (folder / "timeline.jsonl").read_bytes() == before


def test_a_repair_note_that_does_not_fit_leaves_a_whole_file(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    whole = (folder / "timeline.jsonl").read_bytes()
    with (folder / "timeline.jsonl").open("a") as fh:
        fh.write('{"at": "2026-11')

    def disk_full(path: Path, text: str) -> None:
        with path.open("a") as fh:
            fh.write(text[:10])  # part of the note reached the disk
        raise OSError(28, "No space left on device")

    repair = repair_torn_tail(folder / "timeline.jsonl", append=disk_full)
    assert repair is not None
    assert not repair.recorded
    assert (folder / "timeline.jsonl").read_bytes() == whole


def test_not_sealed_when_the_manifest_cannot_be_written(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    (folder / MANIFEST_NAME).mkdir()  # where the manifest must go, something that is no file
    state = seal(folder, signing_key="")
    assert not state.sealed
    assert state.sentence().startswith(f"NOT sealed: could not write {MANIFEST_NAME}")
    assert not _verifies(folder)


def test_a_stale_manifest_is_not_called_a_seal(tmp_path: Path) -> None:
    folder = _bundle(tmp_path)
    assert seal(folder, signing_key="").sealed
    files.write_text(folder, "record.json", "{}\n")  # written after the last seal ...
    # ... and the next manifest cannot be written (its temporary name is taken).
    (folder / f".{MANIFEST_NAME}.{os.getpid()}.tmp").mkdir()
    state = seal(folder, signing_key="")
    assert not state.sealed
    assert "added (not in manifest): record.json" in state.problems
    assert "record.json" in state.sentence()
    assert not _verifies(folder)


@pytest.fixture
def small_disk(tmpfs: Callable[[str], Path]) -> Path:
    return tmpfs("1m")


def _fill(path: Path) -> None:
    """Write to ``path`` until the file system says it is full."""
    with path.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass


def test_a_full_disk_is_never_called_sealed(small_disk: Path) -> None:
    folder = _bundle(small_disk)
    assert seal(folder, signing_key="").sealed
    # The run goes on writing until the disk is full; the record is cut short.
    _fill(folder / "rollback.html")
    state = seal(folder, signing_key="")
    assert state.sealed is _verifies(folder)
    assert not state.sealed
    assert any("rollback.html" in problem for problem in state.problems)


def test_the_reserve_gives_the_ending_its_room(small_disk: Path) -> None:
    folder = files.evidence_dir(small_disk / "INC-1")
    assert files.reserve_room(folder, 256 * 1024)
    _fill(folder / "filler")
    with pytest.raises(OSError, match="No space left"):
        files.write_text(folder, "record.json", "x" * 100_000)
    assert files.release_room(folder)
    files.write_text(folder, "record.json", "x" * 100_000)  # the reserve's room
    assert not (folder / files.RESERVE_NAME).exists()
    assert not files.reserve_room(folder, 10 * 2**20)  # more than the disk: nothing held
    assert not (folder / files.RESERVE_NAME).exists()
