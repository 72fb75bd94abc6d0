"""The bundled replays in notebooks/data are exactly what scripts/make_replay.py writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["bad_deploy.csv", "healthy_deploy.csv"])
def test_committed_replay_matches_the_generator(tmp_path: Path, name: str) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_replay.py"), "--out-dir", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    committed = (REPO / "notebooks" / "data" / name).read_bytes()
    assert (tmp_path / name).read_bytes() == committed, (
        f"notebooks/data/{name} is stale: run `python scripts/make_replay.py` and commit it"
    )
