"""Jaeger as a traces source: a service and a time window in, traces out.

Reads Jaeger's HTTP query API (``/api/services``, ``/api/traces``, the one its UI uses; the
same in Jaeger 1.x and 2.x). Parsing is ``core.traces``; this module only asks and maps
failures: a backend that is down, refuses, times out or answers garbage raises
``TracesError`` (``retryable`` as the shared client ``adapters.http`` decides: refused, timed
out, 429/5xx); an empty answer is not an error but a ``TraceQuery`` with a warning, because
"no traces" is itself worth recording.

Parameters (runbook vocabulary): ``tracing_url`` ("" = traces not collected) and
``tracing_service`` ("" = the release's name).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runbook_lib.adapters.http import HttpClient, HttpError
from runbook_lib.core.traces import Trace, parse_traces
from runbook_lib.errors import AdapterError, ParameterError, TracesError

__all__ = ["JaegerSource", "TraceQuery", "resolve_service"]

DEFAULT_LIMIT = 2000


def resolve_service(tracing_service: str, release: str) -> str:
    """``tracing_service``, or the release's name when it is empty."""
    return tracing_service.strip() or release


@dataclass(frozen=True)
class TraceQuery:
    """Traces of ``service`` that started in ``[start, end]``, oldest first, and warnings
    (nothing found; the answer hit ``limit`` so it is a sample; the backend's own errors)."""

    service: str
    start: datetime
    end: datetime
    limit: int
    traces: tuple[Trace, ...]
    warnings: tuple[str, ...] = ()

    @property
    def truncated(self) -> bool:
        return len(self.traces) >= self.limit


def _micros(at: datetime) -> int:
    if at.tzinfo is None:
        raise ParameterError([f"time window: {at.isoformat()} has no UTC offset"])
    return int(at.timestamp() * 1_000_000)


class JaegerSource:
    """Jaeger's query API at ``url`` (``tracing_url``, e.g. ``http://127.0.0.1:16686``).

    ``timeout_s`` bounds each request. Raises ``ParameterError`` naming ``tracing_url`` when
    the URL is not http(s)://host[:port].
    """

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        parsed = urllib.parse.urlsplit(url.strip())
        problems = []
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            problems.append(f"tracing_url: expected http(s)://host:port, got {url!r}")
        if not timeout_s > 0:
            problems.append(f"tracing timeout: must be > 0, got {timeout_s}")
        if problems:
            raise ParameterError(problems)
        self.url = url.strip().rstrip("/")
        self.timeout_s = timeout_s
        self._http = HttpClient(timeout_s=timeout_s)

    def _get(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        target = f"{self.url}{path}"
        if query:
            target += "?" + urllib.parse.urlencode(query)
        try:
            body = self._http.get(target, command=target).body
        except HttpError as err:
            message = err.in_words(
                "Jaeger answered HTTP {status}",
                f"Jaeger at {self.url} is not reachable: {{reason}}",
                malformed=f"Jaeger at {self.url} did not answer like Jaeger: {{reason}}",
            )
            raise TracesError(
                message, command=target, stderr=err.text, retryable=err.retryable
            ) from err
        try:
            return json.loads(body)
        except ValueError as err:
            raise TracesError(
                f"Jaeger's answer is not JSON: {err}",
                command=target,
                stderr=body[:500].decode(errors="replace"),
            ) from err

    def services(self) -> list[str]:
        """The services Jaeger holds traces of. Raises ``TracesError``."""
        payload = self._get("/api/services")
        data = payload.get("data") if isinstance(payload, dict) else None
        return sorted(str(s) for s in data or [])

    def find_traces(
        self,
        service: str,
        start: datetime,
        end: datetime,
        *,
        limit: int = DEFAULT_LIMIT,
        tags: Mapping[str, str] | None = None,
        min_duration_s: float | None = None,
    ) -> TraceQuery:
        """Traces of ``service`` that started in ``[start, end]`` (at most ``limit``), with
        ``tags`` on a span (e.g. ``{"error": "true"}``) and at least ``min_duration_s``.

        Raises ``ParameterError`` for an empty service, a window that ends before it starts
        or a limit < 1; ``TracesError`` when Jaeger cannot answer.
        """
        problems = []
        if not service.strip():
            problems.append("tracing_service: empty (and no release name to default to)")
        if end < start:
            problems.append(
                f"time window: ends ({end.isoformat()}) before it starts ({start.isoformat()})"
            )
        if limit < 1:
            problems.append(f"limit: must be >= 1, got {limit}")
        if problems:
            raise ParameterError(problems)
        query = {
            "service": service,
            "start": str(_micros(start)),
            "end": str(_micros(end)),
            "limit": str(limit),
        }
        if tags:
            query["tags"] = json.dumps(dict(tags), sort_keys=True)
        if min_duration_s is not None:
            query["minDuration"] = f"{max(0, round(min_duration_s * 1000))}ms"
        payload = self._get("/api/traces", query)
        try:
            traces = parse_traces(payload)
        except AdapterError as err:
            raise TracesError(str(err), command=f"{self.url}/api/traces") from err
        warnings = [
            str(e.get("msg", e)) if isinstance(e, dict) else str(e)
            for e in payload.get("errors") or []
        ]
        if not traces:
            warnings.append(
                f"no traces of service {service!r} between {start.isoformat()}"
                f" and {end.isoformat()}"
            )
        elif len(traces) >= limit:
            warnings.append(f"the answer holds the limit of {limit} traces: counts are a sample")
        return TraceQuery(service, start, end, limit, traces, tuple(warnings))

    def trace(self, trace_id: str) -> Trace:
        """One trace by id. Raises ``TracesError`` (also when Jaeger does not know it)."""
        payload = self._get(f"/api/traces/{urllib.parse.quote(trace_id, safe='')}")
        try:
            traces = parse_traces(payload)
        except AdapterError as err:
            raise TracesError(str(err), command=f"{self.url}/api/traces/{trace_id}") from err
        if not traces:
            raise TracesError(
                f"Jaeger has no trace {trace_id}", command=f"{self.url}/api/traces/{trace_id}"
            )
        return traces[0]
