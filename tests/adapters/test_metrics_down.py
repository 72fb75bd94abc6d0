"""Prometheus down until the end: the after-rollback plot does not stop the run, the record is
written, and ``collection-errors.txt`` says what could not be read (a real refused port)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from loopback_http import closed_port

from runbook_lib import steps
from runbook_lib.evidence import bundle

DEPLOYED = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def test_metrics_down_after_the_rollback_still_leaves_a_record(tmp_path: Path) -> None:
    ctx = steps.start_run(
        expected_cluster="kwok-runbook",
        prometheus_url=f"http://127.0.0.1:{closed_port()}",
        deployed_at=DEPLOYED,
        output_dir=str(tmp_path / "out"),
        incident_id="inc-metrics-down",
        out=lambda _text: None,
        environ={},
    )
    # What plot_assessment saved while Prometheus still answered.
    index = pd.date_range(
        DEPLOYED - timedelta(minutes=10), periods=80, freq="15s", name="timestamp"
    )
    frame = pd.DataFrame({"error_ratio": 0.2, "p99_latency_s": 0.3}, index=index)
    bundle.write_samples_csv(ctx.incident_dir, frame)

    plotted = steps.plot_before_after(ctx)
    assert not isinstance(plotted, steps.Skipped)
    assert (ctx.incident_dir / "plots" / "before_after.png").stat().st_size > 1000
    errors = (ctx.incident_dir / "collection-errors.txt").read_text()
    assert "metric samples after the rollback: MetricsError" in errors

    steps.write_record(ctx)
    record = json.loads((ctx.incident_dir / "record.json").read_text())
    assert record["impact"]["peak_error_ratio"] == 0.2  # from the samples saved before
    assert record["rolled_back"] is False
    assert any("metric samples after the rollback" in e["message"] for e in record["timeline"])
