"""Jaeger's JSON parsed and summarised (core/traces.py) and bounded exports."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runbook_lib.core.traces import (
    failing,
    parse_traces,
    quantile,
    slowest,
    stats_by_version,
)
from runbook_lib.errors import AdapterError, ParameterError
from runbook_lib.evidence.traces import (
    TraceBounds,
    bounded_export,
)

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def _trace(
    n: int, *, version: str, at: datetime, duration_s: float, code: int, error: bool = False
) -> dict[str, Any]:
    start_us = int(at.timestamp() * 1e6)
    tags = [
        {"key": "service.version", "type": "string", "value": version},
        {"key": "k8s.pod.name", "type": "string", "value": f"app-{version}-{n % 2}"},
        {"key": "http.route", "type": "string", "value": "/api/products"},
        {"key": "http.response.status_code", "type": "int64", "value": code},
        {"key": "span.kind", "type": "string", "value": "server"},
    ]
    if error:
        tags.append({"key": "error", "type": "bool", "value": True})
    return {
        "traceID": f"{n:032x}",
        "spans": [
            {
                "traceID": f"{n:032x}",
                "spanID": f"{n:016x}",
                "operationName": "GET /api/products",
                "references": [],
                "startTime": start_us,
                "duration": int(duration_s * 1e6),
                "tags": tags,
                "logs": [],
                "processID": "p1",
            }
        ],
        "processes": {"p1": {"serviceName": "app", "tags": []}},
        "warnings": None,
    }


def _payload(*traces: dict[str, Any]) -> dict[str, Any]:
    return {"data": list(traces), "total": 0, "limit": 0, "offset": 0, "errors": None}


def test_parse_reads_version_pod_route_status_and_duration() -> None:
    raw = _trace(1, version="v1.1.0", at=T0, duration_s=0.5, code=503, error=True)
    (trace,) = parse_traces(_payload(raw))
    assert trace.trace_id == f"{1:032x}"
    assert (trace.service, trace.operation) == ("app", "GET /api/products")
    assert (trace.version, trace.pod, trace.route) == ("v1.1.0", "app-v1.1.0-1", "/api/products")
    assert trace.status_code == 503
    assert trace.error
    assert trace.start == T0
    assert trace.duration_s == pytest.approx(0.5)
    assert trace.raw == raw


def test_a_5xx_without_an_error_tag_still_fails_and_a_200_does_not() -> None:
    traces = parse_traces(
        _payload(
            _trace(1, version="v1", at=T0, duration_s=0.1, code=500),
            _trace(2, version="v1", at=T0, duration_s=0.1, code=200),
        )
    )
    assert [t.error for t in traces] == [True, False]


@pytest.mark.parametrize("payload", [[], {"data": 3}, {"data": [{"spans": []}]}, "x"])
def test_malformed_answers_are_adapter_errors(payload: Any) -> None:
    with pytest.raises(AdapterError):
        parse_traces(payload)


def test_nearest_rank_quantile() -> None:
    assert math.isnan(quantile([], 0.99))
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert quantile([float(i) for i in range(1, 101)], 0.99) == 99.0


def test_stats_failing_and_slowest() -> None:
    deploy, rollback = T0, T0 + timedelta(minutes=5)
    raws = [
        _trace(i, version="v1.1.0", at=deploy + timedelta(seconds=i), duration_s=1.0 + i / 100,
               code=500 if i % 10 == 0 else 200)
        for i in range(1, 51)
    ] + [
        _trace(100 + i, version="v1.0.0", at=rollback + timedelta(seconds=i), duration_s=0.1,
               code=200)
        for i in range(20)
    ]  # fmt: skip
    traces = parse_traces(_payload(*raws))
    periods = [
        ("deploy window", deploy, rollback),
        ("after rollback", rollback, rollback + timedelta(minutes=5)),
    ]
    stats = stats_by_version(traces, periods)
    assert [(s.period, s.version, s.count, s.errors) for s in stats] == [
        ("deploy window", "v1.1.0", 50, 5),
        ("after rollback", "v1.0.0", 20, 0),
    ]
    assert stats[0].error_ratio == pytest.approx(0.1)
    assert stats[0].p99_s == pytest.approx(1.5)
    assert [t.status_code for t in failing(traces, 3)] == [500, 500, 500]
    assert failing(traces, 3)[0].start < failing(traces, 3)[1].start
    assert [t.duration_s for t in slowest(traces, 2)] == pytest.approx([1.5, 1.49])


def test_export_is_bounded_in_count_and_bytes() -> None:
    traces = parse_traces(
        _payload(*[_trace(i, version="v", at=T0, duration_s=0.1, code=200) for i in range(30)])
    )
    text, count, note = bounded_export(traces, TraceBounds(max_traces=10))
    assert count == 10
    assert "20 beyond the limit of 10" in note
    assert len(json.loads(text)["data"]) == 10
    one = len(json.dumps(traces[0].raw, indent=1))
    text, count, note = bounded_export(traces, TraceBounds(max_traces=10, max_file_bytes=3 * one))
    assert count == 2
    assert len(text.encode()) <= 3 * one
    assert "that would pass" in note
    assert json.loads(text)["data"][0] == traces[0].raw  # Jaeger's own format, unchanged


def test_bad_trace_bounds_name_the_parameter() -> None:
    with pytest.raises(ParameterError, match="max_traces"):
        TraceBounds(max_traces=0)
