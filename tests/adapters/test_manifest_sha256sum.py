"""The evidence manifest in sha256sum's format: coreutils' own ``sha256sum --check`` accepts it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from runbook_lib.evidence.manifest import MANIFEST_NAME, write_manifest


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "plots").mkdir()
    (tmp_path / "record.json").write_text('{"outcome": "recovered"}\n')
    (tmp_path / "plots" / "before_after.png").write_bytes(b"\x89PNG fake bytes")
    write_manifest(tmp_path)
    return tmp_path


def test_manifest_is_sha256sum_compatible(bundle: Path) -> None:
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum (coreutils) not installed")
    result = subprocess.run(
        ["sha256sum", "--check", "--strict", MANIFEST_NAME],
        cwd=bundle, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
