"""Prometheus' HTTP API, one call per endpoint the runbook reads (over ``adapters.http``).

    query_range   /api/v1/query_range        a range query's series (the decision's samples)
    query         /api/v1/query              an instant query's result
    series        /api/v1/series             the label sets a selector matches in a window
    label_names   /api/v1/labels             the label names of a selector's series
    label_values  /api/v1/label/NAME/values  a label's values (``__name__``: the metric names)
    metadata      /api/v1/metadata           each metric's type, help and unit
    targets       /api/v1/targets            the scrape targets and their scrape intervals

Every failure becomes ``MetricsError`` carrying the query and Prometheus' own error text, with
``retryable`` as the shared HTTP client decides it; a query or selector Prometheus answered and
refused (HTTP 400 or 422: bad PromQL) is ``QueryRejected``, so a caller can tell "this query is
wrong" from "Prometheus cannot be read".
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from runbook_lib.adapters.http import ErrorKind, HttpClient, HttpError
from runbook_lib.errors import MetricsError, ParameterError

__all__ = ["PrometheusApi", "QueryRejected", "check_url"]


class QueryRejected(MetricsError):
    """Prometheus answered and refused the query or selector (bad PromQL): never retryable."""


def check_url(url: str) -> list[str]:
    """The problems of a Prometheus base URL (none when it is ``http(s)://host[:port][/path]``)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return [f"url: expected http(s)://host:port, got {url!r}"]
    return []


class PrometheusApi:
    """Prometheus' HTTP API at ``url`` (a path prefix such as ``/prometheus`` is kept).

    ``timeout_s`` bounds each request and is passed on as the queries' own timeout. Raises
    ``ParameterError`` for a bad URL or timeout.
    """

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        problems = check_url(url)
        if not timeout_s > 0:
            problems.append(f"timeout_s: must be > 0, got {timeout_s}")
        if problems:
            raise ParameterError(problems)
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._http = HttpClient(timeout_s=timeout_s)

    def query_range(
        self, query: str, *, start_ms: int, end_ms: int, step_ms: int
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The series of a range query (``values``: [unix seconds, "text"] pairs), and
        Prometheus' warnings."""
        form = {
            "query": query,
            "start": f"{start_ms / 1000:.3f}",
            "end": f"{end_ms / 1000:.3f}",
            "step": f"{step_ms / 1000:.3f}",
            # Plain seconds: Prometheus reads a fraction only without a unit ("2.5", not "2.5s").
            "timeout": f"{self.timeout_s:g}",
        }
        body = self._call("/api/v1/query_range", form=form, command=query)
        data = body.get("data") or {}
        if data.get("resultType") != "matrix":
            raise MetricsError(
                f"expected a range vector (matrix), got {data.get('resultType')!r}", command=query
            )
        return list(data.get("result") or []), [str(w) for w in body.get("warnings") or []]

    def query(self, query: str, *, at_s: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result (a vector's samples, or a range selector's series)."""
        form = {"query": query, "timeout": f"{self.timeout_s:g}"}
        if at_s is not None:
            form["time"] = f"{at_s:.3f}"
        data = self._call("/api/v1/query", form=form, command=query).get("data") or {}
        return list(data.get("result") or [])

    def series(self, match: str, *, start_s: float, end_s: float) -> list[dict[str, str]]:
        """The label sets of the series ``match`` (a selector) selects within the window."""
        form = {"match[]": match, "start": f"{start_s:.3f}", "end": f"{end_s:.3f}"}
        return list(self._call("/api/v1/series", form=form, command=match).get("data") or [])

    def label_names(self, *, match: str, start_s: float, end_s: float) -> list[str]:
        """The label names of ``match``'s series within the window."""
        form = {"match[]": match, "start": f"{start_s:.3f}", "end": f"{end_s:.3f}"}
        data = self._call("/api/v1/labels", form=form, command=f"labels of {match}")
        return [str(name) for name in data.get("data") or []]

    def label_values(
        self,
        label: str,
        *,
        match: str = "",
        start_s: float | None = None,
        end_s: float | None = None,
    ) -> list[str]:
        """The values of ``label`` (``__name__``: metric names), of ``match``'s series only
        when given, within the window when given."""
        params = {"match[]": match} if match else {}
        if start_s is not None and end_s is not None:
            params.update({"start": f"{start_s:.3f}", "end": f"{end_s:.3f}"})
        path = f"/api/v1/label/{urllib.parse.quote(label, safe='')}/values"
        command = f"label {label} values" + (f" of {match}" if match else "")
        return [str(v) for v in self._call(path, query=params, command=command).get("data") or []]

    def metadata(self) -> dict[str, list[dict[str, str]]]:
        """Each metric family's metadata as its targets expose it: type, help, unit."""
        data = self._call("/api/v1/metadata", query={}, command="metadata").get("data") or {}
        return dict(data) if isinstance(data, Mapping) else {}

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets: ``labels``, ``scrapeInterval`` ("15s"), ``health``."""
        data = self._call("/api/v1/targets", query={"state": "active"}, command="targets")
        found = (data.get("data") or {}).get("activeTargets") or []
        return [dict(t) for t in found if isinstance(t, Mapping)]

    # --- one request ------------------------------------------------------------------------

    def _call(
        self,
        path: str,
        *,
        command: str,
        form: Mapping[str, str] | None = None,
        query: Mapping[str, str | Sequence[str]] | None = None,
    ) -> dict[str, Any]:
        endpoint = f"{self.url}{path}"
        try:
            if form is not None:
                # A POSTed form reads like a GET (long PromQL fits), so it is retried like one.
                raw = self._http.post(endpoint, form=form, command=command, idempotent=True).body
            else:
                address = endpoint + (
                    "?" + urllib.parse.urlencode(query, doseq=True) if query else ""
                )
                raw = self._http.get(address, command=command).body
        except HttpError as err:
            raise self._failed(err, endpoint, command) from err
        try:
            body = json.loads(raw)
            status = body["status"]
        except (ValueError, KeyError, TypeError) as err:
            raise MetricsError(
                f"{endpoint} did not answer like the Prometheus API: {raw[:200]!r}",
                command=command,
            ) from err
        if status != "success":
            raise MetricsError(
                f"Prometheus at {self.url} reported an error",
                command=command,
                stderr=str(body.get("error", body)),
            )
        return dict(body)

    def _failed(self, err: HttpError, endpoint: str, command: str) -> MetricsError:
        """The request's ``MetricsError`` for a failed request, in Prometheus' terms."""
        if err.status is None:
            if err.kind is ErrorKind.MALFORMED:
                message = f"{endpoint} did not answer like the Prometheus API: {err.reason}"
            else:
                message = f"cannot reach Prometheus at {self.url}: {err.reason}"
            return MetricsError(
                message, command=command, stderr=err.reason, retryable=err.retryable
            )
        if err.status in (400, 422):  # bad_data, execution: the query's fault
            return QueryRejected(
                f"Prometheus at {self.url} rejected the query (HTTP {err.status})",
                command=command,
                stderr=_error_text(err.text),
                retryable=False,
            )
        kind = "server error" if err.retryable else "rejected the query"
        return MetricsError(
            f"Prometheus at {self.url} {kind} (HTTP {err.status})",
            command=command,
            stderr=_error_text(err.text),
            retryable=err.retryable,
        )


def _error_text(text: str) -> str:
    """Prometheus' own message from an error response (``errorType: error``), else the body."""
    try:
        body = json.loads(text)
        return f"{body.get('errorType', 'error')}: {body.get('error', '')}"
    except (ValueError, AttributeError):
        return text
