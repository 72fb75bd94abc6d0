"""``runbook evaluate`` as a user runs it, on the bundled replays and edge cases.

In this interpreter (``cli_in_process``): the command ends long before any kernel, and the
console script itself is run as a process once, in tests/cli."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_in_process import Ran, runbook
from replay_files import write_replay

REPO = Path(__file__).resolve().parents[2]
BAD_DEPLOY = REPO / "notebooks" / "data" / "bad_deploy.csv"
HEALTHY_DEPLOY = REPO / "notebooks" / "data" / "healthy_deploy.csv"
DEPLOYED_AT = "2026-11-20T14:00:00+00:00"
DEPLOY = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def _evaluate_json(path: Path, *options: str) -> Ran:
    """``runbook evaluate`` of the replay ``path``, deployed at DEPLOYED_AT, in JSON."""
    return runbook(
        "evaluate", "--metrics", str(path), "--deployed-at", DEPLOYED_AT, "--json", *options
    )


def boundary_file(tmp_path: Path, error_at: dict[int, float]) -> Path:
    """15 s samples from 10 min before to 30 min after the deploy; error ratio per offset."""
    return write_replay(tmp_path / "boundary.csv", DEPLOY, range(-600, 1801, 15), error_at)


def test_bundled_bad_deploy_json_is_exactly_the_public_document() -> None:
    result = _evaluate_json(BAD_DEPLOY)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert list(document) == ["rollback", "triggers", "warnings", "verdict", "rules"]
    assert document["rollback"] is True
    assert document["verdict"] == "rollback"
    for rule in document["rules"]:
        assert list(rule) == ["rule", "metric", "status", "reason"]
    assert document["warnings"] == []
    for trigger in document["triggers"]:
        assert list(trigger) == ["rule", "metric", "started_at", "fired_at", "peak", "threshold"]
        assert isinstance(trigger["peak"], float)
        assert isinstance(trigger["threshold"], float)
        for key in ("started_at", "fired_at"):
            assert datetime.fromisoformat(trigger[key]).utcoffset() == timedelta(0)
    summary = [
        (t["rule"], t["metric"], t["started_at"][11:19], t["fired_at"][11:19], t["threshold"])
        for t in document["triggers"]
    ]
    # Errors from 14:03 (fire 135 s later), latency from 14:04, orders' 5-min mean under 90%
    # of its baseline once 7 of its 20 samples are from the drop.
    assert summary == [
        ("business", "business:orders", "14:04:45", "14:04:45", 107.7393),
        ("error_rate", "error_ratio", "14:03:00", "14:05:15", 0.01),
        ("latency_p99", "p99_latency_s", "14:04:00", "14:06:15", 1.0),
    ]
    peaks = {t["rule"]: t["peak"] for t in document["triggers"]}
    assert 0.05 < peaks["error_rate"] < 0.06
    assert 1.8 < peaks["latency_p99"] < 2.0
    assert 80 < peaks["business"] < 86  # about 30% below 120 orders/min


def test_bundled_healthy_deploy_does_not_roll_back() -> None:
    result = _evaluate_json(HEALTHY_DEPLOY)
    assert result.returncode == 0
    document = json.loads(result.stdout)
    assert (document["rollback"], document["verdict"]) == (False, "no_rollback")
    assert (document["triggers"], document["warnings"]) == ([], [])


def test_table_output_reads_as_a_decision() -> None:
    result = runbook("evaluate", "--metrics", str(BAD_DEPLOY), "--deployed-at", DEPLOYED_AT)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "Verdict: ROLL BACK  (deployed 2026-11-20 14:00:00, "
        "evaluated as of 2026-11-20 14:30:00 UTC)"
    )
    # One line per rule says why, then the table (after a blank line).
    assert lines[1].startswith("  error_rate [error_ratio]: fired: above 1% from")
    header = lines[lines.index("") + 1].split()
    assert header == [
        "metric",
        "status",
        "why",
        "peak",
        "threshold",
        "run",
        "started",
        "(UTC)",
        "fired",
        "at",
        "(UTC)",
    ]
    rows = {line.split()[0]: line.split()[1:3] for line in lines[lines.index("") + 3 :]}
    assert rows["error_rate"] == ["error_ratio", "fired"]
    assert rows["latency_p99"] == ["p99_latency_s", "fired"]
    assert "business:logins  clear" in result.stdout


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        ({o: 0.01 for o in range(0, 1801, 15)}, None),
        ({o: 0.011 for o in range(60, 181, 15)}, None),
        ({o: 0.011 for o in range(60, 196, 15)}, ("14:01:00", "14:03:15")),
        ({o: 0.05 for o in range(1710, 1801, 15)}, None),
        ({o: 0.05 for o in range(-600, 16, 15)}, None),
    ],
    ids=["exactly-1pct", "exactly-120s", "120s-plus-one-step", "late-breach", "pre-deploy"],
)
def test_boundary_files(
    tmp_path: Path, errors: dict[int, float], expected: tuple[str, str] | None
) -> None:
    path = boundary_file(tmp_path, errors)
    result = _evaluate_json(path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["rollback"] is (expected is not None)
    fired = [(t["started_at"][11:19], t["fired_at"][11:19]) for t in document["triggers"]]
    assert fired == ([expected] if expected else [])


def test_pre_deploy_breach_is_reported_as_a_warning(tmp_path: Path) -> None:
    path = boundary_file(tmp_path, {o: 0.05 for o in range(-300, 1, 15)})
    result = _evaluate_json(path)
    warnings = json.loads(result.stdout)["warnings"]
    assert len(warnings) == 1
    assert warnings[0].startswith("error_ratio: already above 0.01 before")


def test_threshold_options_change_the_decision(tmp_path: Path) -> None:
    path = boundary_file(tmp_path, {o: 0.011 for o in range(60, 196, 15)})
    result = _evaluate_json(path, "--error-ratio", "2%", "--sustain", "1m")
    assert json.loads(result.stdout)["rollback"] is False
    result = _evaluate_json(path, "--sustain", "1m", "--now", "2026-11-20T14:02:30Z")
    assert [t["fired_at"] for t in json.loads(result.stdout)["triggers"]] == [
        "2026-11-20T14:02:15+00:00"
    ]


def test_manual_call_rolls_back_a_healthy_deploy() -> None:
    result = _evaluate_json(HEALTHY_DEPLOY, "--manual", "IC: checkout complaints")
    document = json.loads(result.stdout)
    assert document["rollback"] is True
    assert [t["rule"] for t in document["triggers"]] == ["manual"]
    table = runbook(
        "evaluate",
        "--metrics",
        str(HEALTHY_DEPLOY),
        "--deployed-at",
        DEPLOYED_AT,
        "--manual",
        "IC: checkout complaints",
    )
    assert (
        "manual [manual]: fired: manual call at 2026-11-20T14:30:00+00:00: IC: checkout "
        "complaints" in table.stdout
    )


def test_bad_options_are_listed_together_with_exit_2() -> None:
    result = runbook(
        "evaluate",
        "--metrics",
        str(BAD_DEPLOY),
        "--deployed-at",
        "2026-11-20T14:00",
        "--sustain",
        "2 fortnights",
        "--error-ratio",
        "150%",
    )
    assert result.returncode == 2
    assert "3 invalid parameter(s)" in result.stderr
    assert "--deployed-at: '2026-11-20T14:00' has no UTC offset" in result.stderr
    assert "--sustain: unknown unit 'fortnights'" in result.stderr
    assert "--error-ratio: a ratio is between 0 and 1 (0% and 100%), got '150%'" in result.stderr


def test_a_duration_without_a_unit_is_refused_naming_the_units() -> None:
    result = runbook(
        "evaluate", "--metrics", str(BAD_DEPLOY), "--deployed-at", DEPLOYED_AT, "--sustain", "2"
    )
    assert result.returncode == 2
    assert "--sustain: '2' has no unit" in result.stderr
    assert "units: ms, s" in result.stderr
