"""The installed ``runbook`` console script as a process: what scripts and alert hooks see.

Everything else about ``runbook evaluate`` runs in the tests' own interpreter
(tests/unit/test_cli_evaluate.py, test_verdict_exit_status.py); here the entry point that
pyproject installs is started once per exit status a script relies on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BAD_DEPLOY = REPO / "notebooks" / "data" / "bad_deploy.csv"
DEPLOYED_AT = "2026-11-20T14:00:00+00:00"
RUNBOOK = Path(sys.executable).parent / "runbook"


def _runbook(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUNBOOK), *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    ("options", "status"),
    [pytest.param((), 0, id="evaluated"), pytest.param(("--exit-status",), 3, id="roll-back")],
)
def test_the_console_script_prints_the_decision_and_exits_with_its_status(
    options: tuple[str, ...], status: int
) -> None:
    done = _runbook(
        "evaluate", "--replay-csv", str(BAD_DEPLOY), "--deployed-at", DEPLOYED_AT, "--json",
        *options,
    )  # fmt: skip
    assert done.returncode == status, done.stderr
    assert json.loads(done.stdout)["verdict"] == "rollback"


def test_bad_input_exits_2_naming_the_problem_without_a_traceback() -> None:
    done = _runbook("evaluate", "--replay-csv", str(BAD_DEPLOY), "--deployed-at", "yesterday")
    assert done.returncode == 2
    assert "--deployed-at" in done.stderr
    assert "Traceback" not in done.stderr
