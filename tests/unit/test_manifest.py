"""The evidence manifest catches every change (sha256sum reads it: tests/adapters)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib.errors import InputFileError
from runbook_lib.evidence.manifest import MANIFEST_NAME, verify_manifest, write_manifest


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "plots").mkdir()
    (tmp_path / "record.json").write_text('{"outcome": "recovered"}\n')
    (tmp_path / "plots" / "before_after.png").write_bytes(b"\x89PNG fake bytes")
    (tmp_path / "timeline.jsonl").write_text("{}\n")
    write_manifest(tmp_path)
    return tmp_path


def test_fresh_bundle_verifies(bundle: Path) -> None:
    check = verify_manifest(bundle)
    assert check.ok
    assert check.checked == 3
    assert check.problems() == []


def test_modified_missing_and_added_files_are_each_named(bundle: Path) -> None:
    (bundle / "record.json").write_text('{"outcome": "recovered!"}\n')
    (bundle / "plots" / "before_after.png").unlink()
    (bundle / "extra.txt").write_text("slipped in later")
    check = verify_manifest(bundle)
    assert not check.ok
    assert check.problems() == [
        "modified: record.json",
        "missing: plots/before_after.png",
        "added (not in manifest): extra.txt",
    ]


def test_missing_or_malformed_manifest_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="cannot read the manifest"):
        verify_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("not a manifest line\n")
    with pytest.raises(InputFileError, match="row 1"):
        verify_manifest(tmp_path)
