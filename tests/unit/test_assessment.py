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


def test_validate_lists_every_problem_with_the_notebook_names(tmp_path: Path) -> None:
    with pytest.raises(ParameterError) as caught:
        rb.validate(
            metrics_csv=str(tmp_path / "missing.csv"),
            deployed_at="2026-11-20 14:00",
            now="soon",
            error_ratio="2 percent",
            sustain="45m",
            window="30m",
            business_counters="orders",
        )
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "metrics_csv",
        "deployed_at",
        "now",
        "business_counters",
        "error_ratio",
        "sustain",
    ]


def test_bad_deploy_table_names_every_rule() -> None:
    params = rb.validate(metrics_csv=BAD, deployed_at=DEPLOYED_AT)
    assessment = rb.evaluate(params, rb.load_samples(params))
    table = rb.decision_table(assessment)
    assert list(table.index) == ["error_rate", "latency_p99", "business", "business"]
    assert list(table["status"]) == ["fired", "fired", "clear", "fired"]
    assert list(table["fired at (UTC)"]) == [
        "2026-11-20 14:05:15",
        "2026-11-20 14:06:15",
        "",
        "2026-11-20 14:04:45",
    ]
    assert repr(assessment).startswith("Decision: ROLL BACK (as of 2026-11-20 14:30:00 UTC)")
    assert list(rb.warnings_table(assessment)["warning"]) == ["(none)"]


def test_record_is_plain_json_with_the_cli_document() -> None:
    params = rb.validate(metrics_csv=HEALTHY, deployed_at=DEPLOYED_AT, sustain="30s")
    record = rb.record(rb.evaluate(params, rb.load_samples(params)))
    assert record._repr_json_()["rollback"] is True  # the 45 s burst now lasts long enough
    assert record["thresholds"]["sustain"] == 30.0
    assert record["triggers"][0]["rule"] == "error_rate"
    assert repr(record).startswith("{\n")
