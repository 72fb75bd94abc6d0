"""``runbook evaluate --exit-status``: the verdict as an exit status for scripts and alert hooks.

0 no rollback, 3 roll back, 4 inconclusive; 2 stays bad input. ``--json`` keeps the fields
scripts already read (``rollback``, ``triggers``, ``warnings``) and adds ``verdict`` and
``rules``. The command's status as a process: tests/cli/test_console_script.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_in_process import runbook

REPO = Path(__file__).resolve().parents[2]
BAD = REPO / "notebooks" / "data" / "bad_deploy.csv"
HEALTHY = REPO / "notebooks" / "data" / "healthy_deploy.csv"
DEPLOYED_AT = "2026-11-20T14:00:00+00:00"
# Long before the first sample (the case): nothing after the deploy can be judged.
LONG_BEFORE = "2025-01-01T00:00:00Z"


CASES = [
    pytest.param(HEALTHY, DEPLOYED_AT, 0, "no_rollback", False, id="healthy"),
    pytest.param(BAD, DEPLOYED_AT, 3, "rollback", True, id="bad"),
    pytest.param(BAD, LONG_BEFORE, 4, "inconclusive", False, id="no-data-after-the-deploy"),
]


@pytest.mark.parametrize(("replay", "deployed_at", "status", "verdict", "rollback"), CASES)
def test_exit_status_follows_the_verdict_only_when_asked(
    replay: Path, deployed_at: str, status: int, verdict: str, rollback: bool
) -> None:
    args = ("evaluate", "--replay-csv", str(replay), "--deployed-at", deployed_at, "--json")
    plain = runbook(*args)
    assert plain.returncode == 0, plain.stderr  # without the option: 0 whenever evaluated
    scripted = runbook(*args, "--exit-status")
    assert scripted.returncode == status, scripted.stderr
    document = json.loads(scripted.stdout)
    assert document == json.loads(plain.stdout)
    assert list(document) == ["rollback", "triggers", "warnings", "verdict", "rules"]
    assert document["verdict"] == verdict
    assert document["rollback"] is rollback
    assert isinstance(document["triggers"], list)
    assert isinstance(document["warnings"], list)
    assert document["rollback"] is bool(document["triggers"])
    for rule in document["rules"]:
        assert set(rule) >= {"rule", "metric", "status", "reason"}
        assert rule["status"] in ("fired", "clear", "not_evaluated")
        assert rule["reason"]


def test_inconclusive_says_what_could_not_be_judged() -> None:
    result = runbook(
        "evaluate", "--metrics", str(BAD), "--deployed-at", LONG_BEFORE, "--exit-status", "--json"
    )
    assert result.returncode == 4
    document = json.loads(result.stdout)
    assert document["rollback"] is False
    assert {r["status"] for r in document["rules"]} == {"not_evaluated"}
    assert all(r["reason"].startswith("not judged") for r in document["rules"])
    assert any("missing data" in w for w in document["warnings"])
    # The table says it too, in words: "no rollback" is not what it says.
    table = runbook("evaluate", "--metrics", str(BAD), "--deployed-at", LONG_BEFORE)
    assert table.returncode == 0
    first = table.stdout.splitlines()[0]
    assert first.startswith("Verdict: INCONCLUSIVE")
    assert "no rollback" not in first.lower()


def test_a_manual_call_exits_3() -> None:
    result = runbook(
        "evaluate", "--metrics", str(HEALTHY), "--deployed-at", DEPLOYED_AT,
        "--manual-reason", "IC: checkout complaints", "--exit-status",
    )  # fmt: skip
    assert result.returncode == 3, result.stderr


def test_bad_input_stays_2_with_exit_status() -> None:
    result = runbook(
        "evaluate", "--metrics", str(BAD), "--deployed-at", DEPLOYED_AT, "--sustain", "2",
        "--exit-status",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--sustain: '2' has no unit" in result.stderr
    missing = runbook("evaluate", "--deployed-at", DEPLOYED_AT, "--exit-status")
    assert missing.returncode == 2
