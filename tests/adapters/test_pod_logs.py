"""Per-pod logs and spans of the sandbox's traffic model, without a cluster."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from runbook_sandbox.pod_logs import (
    CRASH_ANNOTATION,
    PodLogs,
    PodRef,
    crashed_status,
    logs_object,
    parse_seconds,
)
from runbook_sandbox.spans import RequestSpans
from runbook_sandbox.traffic_model import PodView, Simulator, load_config, pod_views

GOOD, BAD = "v1.0.0", "v1.1.0"
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def _simulator(tmp_path: Path, spans: RequestSpans | None = None) -> tuple[Simulator, PodLogs]:
    logs = PodLogs(tmp_path)
    sim = Simulator(load_config(), registry=CollectorRegistry(), seed=3, pod_logs=logs, spans=spans)
    sim.set_pods([PodView("app-good", GOOD, ready=True), PodView("app-bad", BAD, ready=True)])
    return sim, logs


def test_each_pod_log_holds_only_its_own_requests(tmp_path: Path) -> None:
    sim, logs = _simulator(tmp_path)
    sim.serve(2000, now=NOW, span_s=10)
    good = logs.path("app-good").read_text().splitlines()
    bad = logs.path("app-bad").read_text().splitlines()
    assert len(good) + len(bad) == 2000
    assert good
    assert bad
    assert all(" stdout F " in line for line in good + bad)  # the CRI format kwok parses
    assert all(f"version={GOOD} pod=app-good" in line for line in good)
    assert all(f"version={BAD} pod=app-bad" in line for line in bad)
    assert any("status=500" in line or "status=503" in line for line in bad)


def test_injected_lines_reach_current_and_later_pods(tmp_path: Path) -> None:
    sim, logs = _simulator(tmp_path)
    sim.serve(10, now=NOW)
    (tmp_path / "logs" / "inject.log").write_text("2026-12-01T14:00:00Z stdout F hello\npart")
    logs.pull_injected()
    assert "stdout F hello\n" in logs.path("app-good").read_text()
    assert "part" not in logs.path("app-good").read_text()  # a half-written line waits
    logs.start("app-new")
    assert logs.path("app-new").read_text() == "2026-12-01T14:00:00Z stdout F hello\n"


def test_restart_moves_the_log_to_previous(tmp_path: Path) -> None:
    sim, logs = _simulator(tmp_path)
    sim.serve(50, now=NOW)
    before = logs.path("app-bad").read_text()
    crashing = [PodRef("app-bad", "uid-1", crash_every_s=5.0), PodRef("app-good", "uid-2")]
    assert logs.crash_due(crashing, now_mono=0.0) == []
    assert [p.name for p in logs.crash_due(crashing, now_mono=1e12)] == ["app-bad"]
    logs.restart("app-bad")
    assert logs.previous_path("app-bad").read_text() == before
    assert logs.path("app-bad").read_text() == ""


def test_crashed_status_counts_the_restart_and_keeps_the_old_start() -> None:
    statuses = [
        {"name": "api", "restartCount": 2, "ready": True,
         "state": {"running": {"startedAt": "2026-12-01T13:59:00Z"}}},
        {"name": "sidecar", "restartCount": 0},
    ]  # fmt: skip
    api, sidecar = crashed_status(statuses, NOW)
    assert api["restartCount"] == 3
    assert api["lastState"]["terminated"]["startedAt"] == "2026-12-01T13:59:00Z"
    assert api["lastState"]["terminated"]["finishedAt"] == "2026-12-01T14:00:00Z"
    assert api["state"] == {"running": {"startedAt": "2026-12-01T14:00:00Z"}}
    assert sidecar == {"name": "sidecar", "restartCount": 0}


def test_logs_object_points_at_the_pod_files_and_is_owned_by_the_pod(tmp_path: Path) -> None:
    obj = logs_object(PodRef("app-1", "uid-1"), "default", tmp_path)
    assert obj["kind"] == "Logs"
    assert obj["metadata"]["name"] == "app-1"
    assert obj["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    (rule,) = obj["spec"]["logs"]
    assert rule["logsFile"] == str(tmp_path / "app-1.log")
    assert rule["previousLogsFile"] == str(tmp_path / "app-1.previous.log")


@pytest.mark.parametrize(
    ("text", "seconds"), [("20s", 20.0), ("2m", 120.0), ("15", 15.0), ("", 0.0), ("x", 0.0)]
)
def test_crash_interval_text(text: str, seconds: float) -> None:
    assert parse_seconds(text) == seconds


def test_pod_views_read_uid_and_crash_annotation() -> None:
    from kubernetes import client

    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(
            name="app-1", uid="u-1", annotations={CRASH_ANNOTATION: "30s"}
        ),
        spec=client.V1PodSpec(containers=[client.V1Container(name="api", image="r/api:v1.1.0")]),
        status=client.V1PodStatus(conditions=[client.V1PodCondition(type="Ready", status="True")]),
    )
    (view,) = pod_views([pod])
    assert (view.uid, view.crash_every_s, view.version) == ("u-1", 30.0, BAD)


def _spans_of(tmp_path: Path, requests: int, sample_ratio: float) -> Sequence[ReadableSpan]:
    """The spans exported while the simulator serves ``requests`` with tracing sampled at
    ``sample_ratio``."""
    exporter = InMemorySpanExporter()
    spans = RequestSpans(sample_ratio=sample_ratio, exporter=exporter)
    sim, _ = _simulator(tmp_path, spans)
    sim.serve(requests, now=NOW, span_s=5)
    spans.shutdown()
    return exporter.get_finished_spans()


def test_each_request_becomes_a_span_with_version_pod_route_and_status(tmp_path: Path) -> None:
    finished = _spans_of(tmp_path, 500, sample_ratio=1.0)
    assert len(finished) == 500
    assert {s.resource.attributes["service.name"] for s in finished} == {"app"}
    assert len({s.context.trace_id for s in finished}) == 500  # one trace per request
    by_pod = {s.attributes["k8s.pod.name"]: s.attributes["service.version"] for s in finished}
    assert by_pod == {"app-good": GOOD, "app-bad": BAD}
    for span in finished:
        assert span.kind is SpanKind.SERVER
        assert (
            span.name == f"{span.attributes['http.request.method']} {span.attributes['http.route']}"
        )
        assert span.end_time is not None
        assert span.start_time is not None
        assert span.end_time > span.start_time
        code = span.attributes["http.response.status_code"]
        assert (span.status.status_code is StatusCode.ERROR) == (code >= 500)
    assert any(s.status.status_code is StatusCode.ERROR for s in finished)


def test_sampling_keeps_about_the_configured_share(tmp_path: Path) -> None:
    finished = _spans_of(tmp_path, 5000, sample_ratio=0.1)
    assert 300 < len(finished) < 700  # 500 expected; trace ids are random


def test_sampling_does_not_change_the_simulated_outcomes(tmp_path: Path) -> None:
    plain, _ = _simulator(tmp_path / "a")
    traced, _ = _simulator(tmp_path / "b", RequestSpans(exporter=InMemorySpanExporter()))
    plain.serve(300, now=NOW)
    traced.serve(300, now=NOW)
    assert (tmp_path / "a" / "logs" / "pods" / "app-bad.log").read_text() == (
        tmp_path / "b" / "logs" / "pods" / "app-bad.log"
    ).read_text()


def test_bad_sample_ratio_is_refused() -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        RequestSpans(sample_ratio=1.5, exporter=InMemorySpanExporter())
