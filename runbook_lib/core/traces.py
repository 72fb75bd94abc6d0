"""Traces as the evidence reads them: parsed from Jaeger's JSON, counted, picked (pure).

Jaeger's query API answers ``{"data": [trace, ...]}``; each trace is ``{"traceID", "spans":
[{"spanID", "operationName", "references", "startTime" (us), "duration" (us), "tags":
[{"key", "type", "value"}], "processID"}], "processes": {id: {"serviceName", "tags"}}}``. That
same document loads back into a Jaeger UI, so the evidence keeps each trace's JSON as received
(``Trace.raw``) beside the few facts the summary needs (``Trace`` fields).

Version, pod, route and status come from the root span's tags, else its process tags, under
the OpenTelemetry names (``service.version``, ``k8s.pod.name``, ``http.route``,
``http.response.status_code``; older ``http.status_code`` too). A trace is failing when any of
its spans is an error (``error=true``) or the root answered 5xx.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from runbook_lib.errors import AdapterError

__all__ = [
    "GroupStats",
    "Trace",
    "failing",
    "parse_traces",
    "quantile",
    "slowest",
    "stats_by_version",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Trace:
    """One trace: what the summary needs, and the backend's own JSON of it (``raw``)."""

    trace_id: str
    service: str
    operation: str
    start: datetime
    duration_s: float
    version: str = ""
    pod: str = ""
    route: str = ""
    status_code: int | None = None
    error: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _tags(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    return {str(t.get("key")): t.get("value") for t in items if isinstance(t, dict)}


def _is_error(tags: Mapping[str, Any]) -> bool:
    return tags.get("error") in (True, "true") or tags.get("otel.status_code") == "ERROR"


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _parse_one(raw: Mapping[str, Any]) -> Trace:
    spans = raw.get("spans")
    if not isinstance(spans, list) or not spans:
        raise ValueError("a trace without spans")
    processes = raw.get("processes") if isinstance(raw.get("processes"), dict) else {}
    roots = [
        s
        for s in spans
        if not any(r.get("refType") == "CHILD_OF" for r in s.get("references") or [])
    ]
    root = min(roots or spans, key=lambda s: int(s["startTime"]))
    start_us = min(int(s["startTime"]) for s in spans)
    end_us = max(int(s["startTime"]) + int(s["duration"]) for s in spans)
    process = processes.get(root.get("processID"), {}) if isinstance(processes, dict) else {}
    tags = {**_tags(process.get("tags")), **_tags(root.get("tags"))}
    code = _int(tags.get("http.response.status_code", tags.get("http.status_code")))
    error = any(_is_error(_tags(s.get("tags"))) for s in spans) or (
        code is not None and code >= 500
    )
    return Trace(
        trace_id=str(raw.get("traceID") or root.get("traceID") or ""),
        service=str(process.get("serviceName", "")),
        operation=str(root.get("operationName", "")),
        start=_EPOCH + timedelta(microseconds=start_us),
        duration_s=(end_us - start_us) / 1e6,
        version=str(tags.get("service.version", "")),
        pod=str(tags.get("k8s.pod.name", "")),
        route=str(tags.get("http.route", "")),
        status_code=code,
        error=error,
        raw=raw,
    )


def parse_traces(payload: Any) -> tuple[Trace, ...]:
    """The traces of a Jaeger query answer (``{"data": [...]}``), oldest first.

    Raises ``AdapterError`` naming what is malformed (the caller adds the URL).
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("data", []), list):
        raise AdapterError("not a Jaeger traces answer: expected an object with a 'data' list")
    traces = []
    for i, raw in enumerate(payload.get("data") or []):
        try:
            traces.append(_parse_one(raw))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise AdapterError(f"trace {i} of the answer is malformed: {err!r}") from err
    return tuple(sorted(traces, key=lambda t: (t.start, t.trace_id)))


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by the nearest-rank method (no interpolation); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class GroupStats:
    """Traces of one version in one period: how many, how many failed, their p99."""

    period: str
    version: str
    count: int
    errors: int
    p99_s: float

    @property
    def error_ratio(self) -> float:
        return self.errors / self.count if self.count else math.nan


def stats_by_version(
    traces: Iterable[Trace], periods: Sequence[tuple[str, datetime, datetime]]
) -> list[GroupStats]:
    """Counts, failures and p99 per (period, version); a period is ``(label, start, end)``
    with ``start <= trace.start < end``. Versions sort by name, unknown ones as "unknown"."""
    result = []
    listed = list(traces)
    for label, start, end in periods:
        inside = [t for t in listed if start <= t.start < end]
        for version in sorted({t.version or "unknown" for t in inside}):
            group = [t for t in inside if (t.version or "unknown") == version]
            result.append(
                GroupStats(
                    period=label,
                    version=version,
                    count=len(group),
                    errors=sum(t.error for t in group),
                    p99_s=quantile([t.duration_s for t in group], 0.99),
                )
            )
    return result


def failing(traces: Iterable[Trace], limit: int) -> list[Trace]:
    """Up to ``limit`` failing traces, the earliest first (how the failure began)."""
    return [t for t in traces if t.error][: max(0, limit)]


def slowest(traces: Iterable[Trace], limit: int) -> list[Trace]:
    """Up to ``limit`` traces with the longest durations, slowest first."""
    return sorted(traces, key=lambda t: (-t.duration_s, t.trace_id))[: max(0, limit)]
