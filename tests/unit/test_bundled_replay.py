"""The bundled replays in notebooks/data are exactly what scripts/make_replay.py writes."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["bad_deploy.csv", "healthy_deploy.csv"])
def test_committed_replay_matches_the_generator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # The script as `python scripts/make_replay.py --out-dir DIR` runs it, in this interpreter.
    script = REPO / "scripts" / "make_replay.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--out-dir", str(tmp_path)])
    runpy.run_path(str(script), run_name="__main__")
    committed = (REPO / "notebooks" / "data" / name).read_bytes()
    assert (tmp_path / name).read_bytes() == committed, (
        f"notebooks/data/{name} is stale: run `python scripts/make_replay.py` and commit it"
    )
