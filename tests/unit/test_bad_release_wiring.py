"""The capture and trace parameters, facts and record lines, without a cluster.

The sandbox tests (tests/e2e/test_bad_release_evidence.py) run the same through the steps.
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from runbook_lib.core.kinds import parse
from runbook_lib.core.settings import Entry, field_named, from_flat
from runbook_lib.errors import ParameterError
from runbook_lib.evidence.capture import CaptureJob, CaptureReport
from runbook_lib.evidence.incident_record import build_record, render_markdown
from runbook_lib.record.facts import BadPodsCaptured, RunFacts, TracesCollected, record_fact
from runbook_lib.record.timeline import Timeline
from runbook_lib.steps.bad_pods import settle_capture
from runbook_lib.steps.context import RunContext, start_run
from runbook_lib.steps.trace_evidence import collect_run_traces, prometheus_figures

DEPLOY = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
REPLAY = Path(__file__).parents[2] / "notebooks/data/bad_deploy.csv"
BASE = {"expected_cluster": "kwok-runbook", "replay_csv": "x.csv"}


@pytest.mark.parametrize(
    ("text", "size"),
    [("1MiB", 1024**2), ("512KiB", 512 * 1024), ("1.5GiB", 3 * 1024**3 // 2), ("4096B", 4096)],
)
def test_sizes_need_a_binary_unit(text: str, size: int) -> None:
    assert parse(field_named("capture_per_pod"), text) == size


@pytest.mark.parametrize(
    ("text", "says"),
    [("1048576", "has no unit"), ("1MB", "unknown unit"), ("-1MiB", "negative"),
     ("lots", "not a size")],
)  # fmt: skip
def test_bad_sizes_are_refused_naming_the_parameter(text: str, says: str) -> None:
    with pytest.raises(ParameterError, match=f"capture_total: .*{says}"):
        from_flat({**BASE, "capture_total": text}, used_by=Entry.ROLLBACK)


def test_capture_bounds_and_tracing_url_are_checked_together() -> None:
    with pytest.raises(ParameterError) as caught:
        from_flat(
            {**BASE, "capture_per_pod": "100B", "capture_total": "50B", "tracing_url": "jaeger"},
            used_by=Entry.ROLLBACK,
        )
    problems = caught.value.problems
    assert any(p.startswith("capture_per_pod: at least 1KiB") for p in problems)
    assert any(p.startswith("capture_total: at least capture_per_pod") for p in problems)
    assert any(p.startswith("tracing_url: expected http(s)://") for p in problems)
    settings = from_flat(
        {**BASE, "capture_per_pod": "2MiB", "capture_total": "1GiB"}, used_by=Entry.ROLLBACK
    )
    capture = settings.capture
    assert (capture.capture_per_pod, capture.capture_total) == (2 * 1024**2, 1024**3)
    assert capture.tracing_url == capture.tracing_service == ""


def test_prometheus_figures_by_the_trace_periods() -> None:
    index = pd.date_range(DEPLOY - timedelta(minutes=1), periods=12, freq="30s")
    bad = [DEPLOY <= t < DEPLOY + timedelta(minutes=3) for t in index]
    frame = pd.DataFrame(
        {"error_ratio": [0.2 if b else 0.0 for b in bad], "p99_latency_s": [2.0 if b else 0.1
                                                                           for b in bad]},
        index=index,
    )  # fmt: skip
    figures = prometheus_figures(frame, deployed_at=DEPLOY,
                                 rollback_at=DEPLOY + timedelta(minutes=3),
                                 end=DEPLOY + timedelta(minutes=5))  # fmt: skip
    assert figures["deploy window"] == (pytest.approx(0.2), pytest.approx(2.0))
    assert figures["after rollback"] == (0.0, pytest.approx(0.1))
    alone = prometheus_figures(frame, deployed_at=DEPLOY, rollback_at=None, end=DEPLOY)
    assert math.isnan(alone["since deploy"][0])  # no sample in an empty period: n/a
    assert prometheus_figures(pd.DataFrame(), deployed_at=DEPLOY, rollback_at=None,
                              end=DEPLOY) == {}  # fmt: skip


def _record_md(*facts: BadPodsCaptured | TracesCollected) -> tuple[str, RunFacts]:
    timeline = Timeline(None, clock=lambda: DEPLOY)
    for fact in facts:
        record_fact(timeline, "preserve_evidence", fact, fact.NAME)
    record = build_record(timeline.events, pd.DataFrame(), incident_id="INC-1", release="app",
                          namespace="default", now=DEPLOY)  # fmt: skip
    return render_markdown(record), RunFacts.read(timeline.events)


def test_the_record_names_the_captured_pods_gaps_and_links_the_traces() -> None:
    captured = BadPodsCaptured(
        revision=2, version="v1.1.0", pods=("app-bad-1", "app-bad-2"),
        gaps=("app-bad-3/api: the pod vanished before its log was read",),
        truncated=("kubernetes/before-rollback/logs/app-bad-1.log",), bytes_captured=2048,
        started_at=DEPLOY,
    )  # fmt: skip
    traces = TracesCollected(collected=True, reason="", service="app", tracing_url="http://j:1",
                             failing=7, slowest=20,
                             failing_sampled={"deploy window / v1.1.0": 7,
                                              "after rollback / v1.0.0": 0})  # fmt: skip
    text, facts = _record_md(captured, traces)
    assert facts.bad_pods == captured  # read back as the same fact
    assert facts.traces == traces
    assert "2 pod(s) of revision 2 (v1.1.0) listed at 2026-11-27 10:00:00 UTC" in text
    assert "1 log(s) cut at the bound" in text
    assert "  - gap: app-bad-3/api: the pod vanished before its log was read" in text
    assert "[traces/summary.md](traces/summary.md); 7 failing and 20 slowest" in text
    assert "(deploy window / v1.1.0: 7; after rollback / v1.0.0: 0)" in text


def test_the_record_says_why_traces_were_not_collected() -> None:
    down = TracesCollected(collected=False, service="app", tracing_url="http://127.0.0.1:9",
                           reason="the tracing backend could not be queried: refused")  # fmt: skip
    text, _ = _record_md(down)
    assert "- Traces were not collected: the tracing backend could not be queried" in text
    assert "Before the rollback: nothing captured" in text
    text, _ = _record_md()
    assert "- Traces: not collected by this run" in text


def _replay_run(tmp_path: Path, **over: object) -> RunContext:
    return start_run(replay_csv=str(REPLAY), expected_cluster="kwok-runbook", console=False,
                     output_dir=str(tmp_path), incident_id="INC-2", **over)  # fmt: skip


def test_a_capture_that_failed_or_never_ended_is_recorded_as_a_gap(tmp_path: Path) -> None:
    ctx = _replay_run(tmp_path)

    def broken() -> CaptureReport:
        raise OSError("No space left on device")

    ctx.live.capture = CaptureJob(broken)
    ctx.live.capture_started = (DEPLOY, 2, "v1.1.0")
    fact = settle_capture(ctx, "wait_for_rollout", timeout_s=5)
    assert fact is not None
    assert not fact.complete
    assert fact.gaps == ("the capture failed: OSError: No space left on device",)
    assert ctx.facts.bad_pods == fact
    assert ctx.live.capture is None

    release = threading.Event()
    ctx.live.capture = CaptureJob(lambda: (release.wait(10), broken())[1])
    # After the rollout a slow capture is left to finish; preserve_evidence is the last chance.
    assert settle_capture(ctx, "wait_for_rollout", timeout_s=0.05) is None
    late = settle_capture(ctx, "preserve_evidence", timeout_s=0.05)
    release.set()
    assert late is not None
    assert late.gaps == ("the capture was still running after 0.1 s: its files may be partial",)


def test_a_run_without_tracing_url_says_why_traces_were_not_collected(tmp_path: Path) -> None:
    ctx = _replay_run(tmp_path)
    report = collect_run_traces(ctx, pd.DataFrame())
    assert report.problems == ()
    traces = ctx.facts.traces
    assert traces is not None
    assert not traces.collected
    assert traces.reason == "tracing_url is empty (no tracing backend was named)"
    summary = (ctx.incident_dir / "traces/summary.md").read_text()
    assert "Traces were not collected: tracing_url is empty" in summary
