"""Evidence files: atomic, never through a symlink, 0640 files and 0750 folders."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from runbook_lib.evidence import files
from runbook_lib.evidence.files import (
    append_text,
    evidence_dir,
    remove_file,
    symlinks_in,
    write_bytes,
    write_text,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_and_folders_are_private_to_owner_and_group(tmp_path: Path) -> None:
    old = os.umask(0o000)  # even a permissive umask gives 0640/0750
    try:
        path = write_text(tmp_path / "INC-1", "helm/values-diff.txt", "diff\n")
        log = append_text(tmp_path / "INC-1", "timeline.jsonl", "{}\n")
    finally:
        os.umask(old)
    assert path.read_text() == "diff\n"
    assert _mode(path) == 0o640
    assert _mode(log) == 0o640
    assert _mode(tmp_path / "INC-1") == 0o750
    assert _mode(tmp_path / "INC-1" / "helm") == 0o750


def test_a_planted_file_symlink_is_replaced_not_written_through(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("keep me")
    bundle = evidence_dir(tmp_path / "INC-1")
    (bundle / "record.json").symlink_to(elsewhere)
    write_text(bundle, "record.json", "{}\n")
    assert elsewhere.read_text() == "keep me"
    assert not (bundle / "record.json").is_symlink()
    assert (bundle / "record.json").read_text() == "{}\n"


def test_appending_through_a_symlink_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_text("")
    bundle = evidence_dir(tmp_path / "INC-1")
    (bundle / "timeline.jsonl").symlink_to(elsewhere)
    with pytest.raises(OSError, match="symlink") as caught:
        append_text(bundle, "timeline.jsonl", "{}\n")
    assert caught.value.errno == errno.ELOOP
    assert elsewhere.read_text() == ""


def test_symlinked_folders_are_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bundle = evidence_dir(tmp_path / "INC-1")
    (bundle / "plots").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OSError, match="symlink"):
        write_bytes(bundle, "plots/before.png", b"png")
    assert list(elsewhere.iterdir()) == []
    linked = tmp_path / "INC-2"
    linked.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OSError, match="symlink"):
        write_text(linked, "record.md", "x")
    assert symlinks_in(bundle) == ["plots"]
    assert symlinks_in(linked) == ["."]


def test_paths_outside_the_bundle_are_refused(tmp_path: Path) -> None:
    for bad in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(ValueError, match="inside the bundle"):
            write_text(tmp_path, bad, "x")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = evidence_dir(tmp_path / "INC-1")
    write_text(bundle, "record.json", "old")

    def full_disk(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    # A full disk on demand: the one thing a test cannot get from this machine's real disk.
    monkeypatch.setattr(files.os, "write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_text(bundle, "record.json", "new")
    monkeypatch.undo()
    assert (bundle / "record.json").read_text() == "old"
    assert [p.name for p in bundle.iterdir()] == ["record.json"]


def test_remove_file_removes_a_symlink_itself(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.write_text("x")
    bundle = evidence_dir(tmp_path / "INC-1")
    (bundle / "MANIFEST.sha256.sig").symlink_to(target)
    assert remove_file(bundle, "MANIFEST.sha256.sig")
    assert target.exists()
    assert not remove_file(bundle, "MANIFEST.sha256.sig")


def test_folders_from_an_older_run_are_tightened(tmp_path: Path) -> None:
    old = tmp_path / "INC-1" / "plots"
    old.mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    os.chmod(old.parent, 0o755)
    os.chmod(old, 0o777)
    write_bytes(tmp_path / "INC-1", "plots/before.png", b"png")
    assert _mode(old.parent) == 0o750
    assert _mode(old) == 0o750
    assert _mode(tmp_path) == 0o755  # output_dir itself is the operator's: untouched
