"""The assessment notebook's library calls, without a kernel: what each notebook cell shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib import assessment as rb
from runbook_lib.errors import ParameterError

REPO = Path(__file__).resolve().parents[2]
BAD = str(REPO / "notebooks" / "data" / "bad_deploy.csv")
HEALTHY = str(REPO / "notebooks" / "data" / "healthy_deploy.csv")
DEPLOYED_AT = "2026-11-20T14:00:00+00:00"


def test_check_params_lists_every_problem_with_the_notebook_names(tmp_path: Path) -> None:
    with pytest.raises(ParameterError) as caught:
        rb.check_settings(
            {
                "replay_csv": str(tmp_path / "missing.csv"),
                "deployed_at": "2026-11-20 14:00",
                "now": "soon",
                "error_ratio": "2 percent",
                "sustain": "45m",
                "window": "30m",
                "business_counters": "orders",
            }
        )
    assert sorted(p.split(":")[0] for p in caught.value.problems) == [
        "business_counters",
        "deployed_at",
        "error_ratio",
        "now",
        "replay_csv",
        "sustain",
    ]


def test_deployed_at_is_required_without_a_release_to_ask() -> None:
    with pytest.raises(ParameterError, match="deployed_at: required"):
        rb.check_settings({"replay_csv": BAD})


def test_bad_deploy_table_names_every_rule() -> None:
    settings = rb.check_settings({"replay_csv": BAD, "deployed_at": DEPLOYED_AT})
    window = rb.read_window(settings)
    decision = rb.decide(settings, window)
    table = rb.decision_table(decision)
    assert list(table.index) == ["error_rate", "latency_p99", "business", "business"]
    assert list(table["status"]) == ["fired", "fired", "clear", "fired"]
    # Figures a person reads: a unit and three significant digits, not 0.055834 or 107.739.
    assert list(table["peak"]) == ["5.58 %", "1.95 s", "39.3", "82.8"]
    assert list(table["threshold"]) == ["1 %", "1.00 s", "35.9", "108"]
    assert list(table["fired at (UTC)"]) == [
        "2026-11-20 14:05:15",
        "2026-11-20 14:06:15",
        "",
        "2026-11-20 14:04:45",
    ]
    assert rb.render(decision, window).startswith(
        "Verdict: ROLL BACK  (deployed 2026-11-20 14:00:00, evaluated as of 2026-11-20 14:30:00"
    )
    assert list(rb.warnings_table(decision)["warning"]) == ["(none)"]


def test_record_is_plain_json_with_the_cli_document() -> None:
    settings = rb.check_settings(
        {"replay_csv": HEALTHY, "deployed_at": DEPLOYED_AT, "sustain": "30s"}
    )
    window = rb.read_window(settings)
    record = rb.record(settings, rb.decide(settings, window), window)
    assert record._repr_json_()["rollback"] is True  # the 45 s burst now lasts long enough
    assert record["verdict"] == "rollback"
    assert {r["status"] for r in record["rules"]} <= {"fired", "clear", "not_evaluated"}
    assert record["thresholds"]["sustain"] == 30.0
    assert record["triggers"][0]["rule"] == "error_rate"
    assert repr(record).startswith("{\n")
