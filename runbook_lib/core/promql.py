"""PromQL for the runbook's series, built from a few named parameters (pure: text in, text out).

"When to Rollback" needs, per sample: the 5xx ratio, the p99 latency, and the business metrics.
For a service instrumented the usual way (a request counter with a status-code label and a
latency histogram) ``QuerySpec`` names the metrics, the label selector, which label values
count as errors and the rate window; ``build_queries`` turns that into one query per column.
Any column can instead be given as raw PromQL, for services instrumented differently.

    error_ratio    (sum(rate(C{sel,code=~"5.."}[w])) or vector(0)) / sum(rate(C{sel}[w]))
    p99_latency_s  histogram_quantile(0.99, sum by (le) (rate(H_bucket{sel}[w])))
    business:NAME  sum(rate(M{sel}[w]))   (for a counter M), or the raw query given

``or vector(0)`` makes "no 5xx series yet" a ratio of 0 rather than a missing sample (a client
library creates a labelled series only when the first 5xx happens); with no requests at all the
division is still empty, so the sample stays missing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from runbook_lib.errors import ParameterError

__all__ = [
    "QuerySpec",
    "build_queries",
    "business_counter_query",
    "error_ratio_query",
    "latency_p99_query",
    "selector_from_labels",
]

ERROR_RATIO = "error_ratio"
P99_LATENCY = "p99_latency_s"
BUSINESS_PREFIX = "business:"

_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DURATION = re.compile(r"^(?:[0-9]+(?:ms|s|m|h|d|w|y))+$")
_STRING = r'"(?:[^"\\]|\\.)*"'
_MATCHER = rf"\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*{_STRING}\s*"
_SELECTOR = re.compile(rf"^(?:{_MATCHER}(?:,{_MATCHER})*,?\s*)?$")
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, kw_only=True)
class QuerySpec:
    """How to find the runbook's series in Prometheus. Defaults fit the sandbox's traffic model.

    ``selector`` is a comma-separated list of label matchers without braces
    (``job="api",namespace="shop"``); it applies to every built query. ``rate_window`` is a
    PromQL duration (at least four scrape intervals, or rate() has too few samples).
    ``business_counters`` maps a business metric's name to a counter whose per-second rate
    is the metric; ``business_queries`` maps names to raw PromQL. ``error_ratio_query`` /
    ``latency_query`` replace the built queries. The constructor raises ``ParameterError``
    listing every problem.
    """

    request_counter: str = "http_requests_total"
    latency_histogram: str = "http_request_duration_seconds"
    selector: str = ""
    error_label: str = "code"
    error_regex: str = "5.."
    rate_window: str = "1m"
    business_counters: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    business_queries: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    error_ratio_query: str | None = None
    latency_query: str | None = None

    def __post_init__(self) -> None:
        # Frozen copies, so a spec cannot change under a running source.
        object.__setattr__(
            self, "business_counters", MappingProxyType(dict(self.business_counters))
        )
        object.__setattr__(self, "business_queries", MappingProxyType(dict(self.business_queries)))
        problems = self.problems()
        if problems:
            raise ParameterError(problems)

    def problems(self) -> list[str]:
        """Every invalid field, as "name: what is wrong"."""
        found: list[str] = []
        for name in ("request_counter", "latency_histogram"):
            value = getattr(self, name)
            if not _METRIC.match(value):
                found.append(f"{name}: not a Prometheus metric name: {value!r}")
        if not _SELECTOR.match(self.selector):
            example = 'job="api",env!="dev"'
            found.append(f"selector: expected label matchers like {example}, got {self.selector!r}")
        if not _LABEL.match(self.error_label):
            found.append(f"error_label: not a label name: {self.error_label!r}")
        if not self.error_regex or '"' in self.error_regex:
            found.append(
                f"error_regex: must be a non-empty regex without quotes: {self.error_regex!r}"
            )
        if not _DURATION.match(self.rate_window):
            found.append(f"rate_window: not a PromQL duration (e.g. 1m, 30s): {self.rate_window!r}")
        for name, metric in self.business_counters.items():
            if not name.strip():
                found.append("business_counters: a business metric needs a name")
            if not _METRIC.match(metric):
                found.append(f"business_counters[{name!r}]: not a metric name: {metric!r}")
            if name in self.business_queries:
                found.append(f"business_counters[{name!r}]: also given as a raw query")
        for name, query in self.business_queries.items():
            if not name.strip():
                found.append("business_queries: a business metric needs a name")
            if not query.strip():
                found.append(f"business_queries[{name!r}]: empty query")
        for name in ("error_ratio_query", "latency_query"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                found.append(f"{name}: empty query (leave it unset to build one)")
        return found


def selector_from_labels(labels: Mapping[str, str]) -> str:
    """Equality matchers for ``labels``, quoted for PromQL: ``{"job": "api"}`` -> ``job="api"``."""
    parts = []
    for name, value in labels.items():
        if not _LABEL.match(name):
            raise ParameterError([f"labels: not a label name: {name!r}"])
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{name}="{escaped}"')
    return ",".join(parts)


def _vector(metric: str, *matchers: str) -> str:
    inner = ",".join(m.strip().rstrip(",") for m in matchers if m.strip())
    return f"{metric}{{{inner}}}" if inner else metric


def error_ratio_query(spec: QuerySpec) -> str:
    """The 5xx share of all requests (0..1); the raw ``error_ratio_query`` if one is given."""
    if spec.error_ratio_query is not None:
        return spec.error_ratio_query.strip()
    errors = _vector(
        spec.request_counter, spec.selector, f'{spec.error_label}=~"{spec.error_regex}"'
    )
    every = _vector(spec.request_counter, spec.selector)
    window = spec.rate_window
    return f"(sum(rate({errors}[{window}])) or vector(0)) / sum(rate({every}[{window}]))"


def latency_p99_query(spec: QuerySpec) -> str:
    """The p99 latency in seconds from the histogram's buckets; or the raw ``latency_query``."""
    if spec.latency_query is not None:
        return spec.latency_query.strip()
    buckets = _vector(f"{spec.latency_histogram}_bucket", spec.selector)
    return f"histogram_quantile(0.99, sum by (le) (rate({buckets}[{spec.rate_window}])))"


def business_counter_query(metric: str, spec: QuerySpec) -> str:
    """Per-second rate of a business counter (e.g. orders placed) under the spec's selector."""
    return f"sum(rate({_vector(metric, spec.selector)}[{spec.rate_window}]))"


def build_queries(spec: QuerySpec) -> dict[str, str]:
    """Column name -> PromQL: ``error_ratio``, ``p99_latency_s``, then ``business:<name>``."""
    queries = {ERROR_RATIO: error_ratio_query(spec), P99_LATENCY: latency_p99_query(spec)}
    for name, metric in spec.business_counters.items():
        queries[f"{BUSINESS_PREFIX}{name}"] = business_counter_query(metric, spec)
    for name, query in spec.business_queries.items():
        queries[f"{BUSINESS_PREFIX}{name}"] = query.strip()
    return queries
