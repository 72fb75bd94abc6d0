"""Where a service's series are in Prometheus: the ``metrics`` settings and their PromQL (pure).

"When to Rollback" needs, per sample: the 5xx ratio (0..1), the p99 latency in seconds, and
the business metrics. ``Metrics`` says how to find them, in one of two ways per signal:

- raw PromQL: ``error_ratio_query`` (a ratio 0..1), ``latency_p99_query`` (seconds) and
  ``business_queries`` (name -> any query: a counter's rate, a gauge, a ratio);
- building blocks, for a service instrumented the usual way: a request counter with a status
  label, a latency histogram and its unit. ``metrics_preset`` names a convention that fills
  them in (``PRESETS``); each block given explicitly overrides the preset's.

    error_ratio    (sum(rate(C{sel,L=~"R"}[w])) or vector(0)) / sum(rate(C{sel}[w]))
    p99_latency_s  histogram_quantile(0.99, sum by (le) (rate(H_bucket{sel}[w])))  [/ 1000]
    business:NAME  sum(rate(M{sel}[w]))   (for a counter M), or the raw query given

``or vector(0)`` makes "no 5xx series yet" a ratio of 0 rather than a missing sample (a client
library creates a labelled series only when the first 5xx happens); with no requests at all
the division is still empty, so the sample stays missing. A unit is never guessed: a histogram
in milliseconds is declared (``latency_unit: ms``, or a preset that says so) and the query
divides by 1000; a name that says the other unit is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from runbook_lib.core.kinds import DECIDE, Entry, Group, Kind, setting
from runbook_lib.errors import ParameterError

__all__ = [
    "BUSINESS_PREFIX",
    "ERROR_RATIO",
    "P99_LATENCY",
    "PRESETS",
    "Metrics",
    "Preset",
    "build_queries",
    "selector_from_labels",
]

ERROR_RATIO = "error_ratio"
P99_LATENCY = "p99_latency_s"
BUSINESS_PREFIX = "business:"

_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# A business metric's name is a column (business:NAME) and a recorded series' name part.
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DURATION = re.compile(r"^(?:[0-9]+(?:ms|s|m|h|d|w|y))+$")
_STRING = r'"(?:[^"\\]|\\.)*"'
_MATCHER = rf"\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*{_STRING}\s*"
_SELECTOR = re.compile(rf"^(?:{_MATCHER}(?:,{_MATCHER})*,?\s*)?$")


@dataclass(frozen=True)
class Preset:
    """A metric naming convention: the request counter, its status label, the histogram."""

    request_counter: str
    status_label: str
    error_regex: str
    latency_histogram: str
    latency_unit: str  # "s" or "ms"


PRESETS: Mapping[str, Preset] = {
    # Prometheus' client libraries, and the sandbox's traffic model.
    "prometheus-client": Preset(
        "http_requests_total", "code", "5..", "http_request_duration_seconds", "s"
    ),
    # OpenTelemetry's HTTP semantic conventions through a Prometheus exporter: no separate
    # request counter, the histogram's _count counts the requests.
    "otel": Preset(
        "http_server_request_duration_seconds_count",
        "http_response_status_code",
        "5..",
        "http_server_request_duration_seconds",
        "s",
    ),
    # Istio's standard metrics (add reporter="destination" to the selector).
    "istio": Preset(
        "istio_requests_total", "response_code", "5..", "istio_request_duration_milliseconds", "ms"
    ),
    "nginx-ingress": Preset(
        "nginx_ingress_controller_requests",
        "status",
        "5..",
        "nginx_ingress_controller_request_duration_seconds",
        "s",
    ),
    # Linkerd's proxy metrics: responses classified as failure (add direction="inbound").
    "linkerd": Preset("response_total", "classification", "failure", "response_latency_ms", "ms"),
}


def _metric_or_empty(value: str) -> str | None:
    return None if not value or _METRIC.match(value) else f"not a Prometheus metric name: {value!r}"


def _label_or_empty(value: str) -> str | None:
    return None if not value or _LABEL.match(value) else f"not a label name: {value!r}"


def _regex_or_empty(value: str) -> str | None:
    return None if '"' not in value else f"must be a regex without quotes: {value!r}"


def _selector(value: str) -> str | None:
    if _SELECTOR.match(value):
        return None
    return f'expected label matchers like job="api",env!="dev", got {value!r}'


def _rate_window(value: str) -> str | None:
    if _DURATION.match(value):
        return None
    return f"not a PromQL duration (e.g. 1m, 30s): {value!r}"


def _query_or_empty(value: str) -> str | None:
    if value and not value.strip():
        return "empty query (leave it empty to build one)"
    return None


def _histogram(value: str) -> str | None:
    if value.endswith("_bucket"):
        return f"give the histogram's name without _bucket: {value.removesuffix('_bucket')!r}"
    return _metric_or_empty(value)


def _business_names(value: Mapping[str, str]) -> str | None:
    for name, text in value.items():
        if not _NAME.match(name):
            return f"{name!r} cannot name a business metric (letters, digits, '_')"
        if not text.strip():
            return f"{name}: empty"
    return None


def _counter_names(value: Mapping[str, str]) -> str | None:
    bad = [metric for metric in value.values() if not _METRIC.match(metric)]
    return _business_names(value) or (f"not a metric name: {bad[0]!r}" if bad else None)


_M = DECIDE | {Entry.RULES}
_PER_PRESET = "empty: the preset's"


@dataclass(frozen=True, kw_only=True)
class Metrics(Group):
    """How to find the runbook's series in Prometheus (defaults: Prometheus client libraries).

    Construction checks every field and raises ``ParameterError`` listing every problem.
    """

    metrics_preset: str = setting(
        "prometheus-client",
        Kind.CHOICE,
        "metric names: otel, istio, nginx-ingress or linkerd",
        used_by=_M,
        choices=tuple(PRESETS),
        shown_as="NAME",
    )
    prometheus_selector: str = setting(
        "",
        Kind.TEXT,
        "PromQL label matchers for every built query; empty: none",
        used_by=_M,
        check=_selector,
        shown_as="MATCHERS",
    )
    prometheus_rate_window: str = setting(
        "1m",
        Kind.TEXT,
        "PromQL rate() window, at least 4 scrapes",
        used_by=_M,
        check=_rate_window,
        shown_as="DURATION",
    )
    request_counter: str = setting(
        "",
        Kind.TEXT,
        f"request counter; {_PER_PRESET}",
        used_by=_M,
        check=_metric_or_empty,
        shown_as="METRIC",
    )
    status_label: str = setting(
        "",
        Kind.TEXT,
        f"the counter's status label; {_PER_PRESET}",
        used_by=_M,
        check=_label_or_empty,
        shown_as="LABEL",
    )
    error_regex: str = setting(
        "",
        Kind.TEXT,
        f"status values that are errors (regex); {_PER_PRESET}",
        used_by=_M,
        check=_regex_or_empty,
        shown_as="REGEX",
    )
    latency_histogram: str = setting(
        "",
        Kind.TEXT,
        f"latency histogram, without _bucket; {_PER_PRESET}",
        used_by=_M,
        check=_histogram,
        shown_as="METRIC",
    )
    latency_unit: str = setting(
        "",
        Kind.CHOICE,
        f"unit of the histogram's buckets, s or ms; {_PER_PRESET}",
        used_by=_M,
        choices=("", "s", "ms"),
    )
    error_ratio_query: str = setting(
        "",
        Kind.TEXT,
        "raw PromQL for the 5xx ratio (0..1); empty: built",
        used_by=_M,
        check=_query_or_empty,
    )
    latency_p99_query: str = setting(
        "",
        Kind.TEXT,
        "raw PromQL for the p99 latency in seconds; empty: built",
        used_by=_M,
        check=_query_or_empty,
    )
    business_counters: Mapping[str, str] = setting(
        "",
        Kind.COUNTERS,
        "business metrics: NAME(equals)COUNTER, comma-separated; empty: none",
        used_by=_M,
        check=_counter_names,
    )
    business_queries: Mapping[str, str] = setting(
        "",
        Kind.QUERIES,
        "business metrics as raw PromQL, {name: query}; empty: none",
        used_by=_M,
        check=_business_names,
    )

    def cross_problems(self) -> list[str]:
        """What no single field says: a name given twice, a unit that contradicts a name."""
        found = [
            f"business_counters: {name!r} is also given in business_queries"
            for name in self.business_counters
            if name in self.business_queries
        ]
        if self.latency_unit and self.latency_p99_query:
            found.append(
                "latency_unit / latency_p99_query: the unit describes latency_histogram; "
                "latency_p99_query must return seconds (divide by 1000 in the query itself)"
            )
        histogram, unit = self.resolved("latency_histogram"), self.resolved("latency_unit")
        says = _unit_in_name(histogram)
        if not self.latency_p99_query and says and says != unit:
            source = "latency_unit" if self.latency_unit else f"preset {self.metrics_preset}"
            found.append(
                f"latency_histogram / latency_unit: {histogram!r} reads {_UNIT_WORDS[says]} but "
                f"the unit is {_UNIT_WORDS[unit]} ({source}); a unit is never guessed: set "
                "latency_unit"
            )
        return found

    @property
    def preset(self) -> Preset:
        return PRESETS[self.metrics_preset]

    def resolved(self, name: str) -> str:
        """A building block: the field when given, else the preset's."""
        value: str = getattr(self, name)
        return value or str(getattr(self.preset, name))


_UNIT_WORDS = {"s": "seconds", "ms": "milliseconds"}


def _unit_in_name(metric: str) -> str:
    if metric.endswith(("_milliseconds", "_ms")):
        return "ms"
    if metric.endswith("_seconds"):
        return "s"
    return ""


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


def error_ratio_promql(metrics: Metrics) -> str:
    """The 5xx share of all requests (0..1); the raw ``error_ratio_query`` if one is given."""
    if metrics.error_ratio_query:
        return metrics.error_ratio_query.strip()
    counter, selector = metrics.resolved("request_counter"), metrics.prometheus_selector
    label, regex = metrics.resolved("status_label"), metrics.resolved("error_regex")
    errors = _vector(counter, selector, f'{label}=~"{regex}"')
    every = _vector(counter, selector)
    window = metrics.prometheus_rate_window
    return f"(sum(rate({errors}[{window}])) or vector(0)) / sum(rate({every}[{window}]))"


def latency_p99_promql(metrics: Metrics) -> str:
    """The p99 latency in seconds from the histogram's buckets; or the raw query given."""
    if metrics.latency_p99_query:
        return metrics.latency_p99_query.strip()
    buckets = _vector(
        f"{metrics.resolved('latency_histogram')}_bucket", metrics.prometheus_selector
    )
    window = metrics.prometheus_rate_window
    quantile = f"histogram_quantile(0.99, sum by (le) (rate({buckets}[{window}])))"
    return f"{quantile} / 1000" if metrics.resolved("latency_unit") == "ms" else quantile


def business_counter_promql(metric: str, metrics: Metrics) -> str:
    """Per-second rate of a business counter (e.g. orders placed) under the selector."""
    vector = _vector(metric, metrics.prometheus_selector)
    return f"sum(rate({vector}[{metrics.prometheus_rate_window}]))"


def build_queries(metrics: Metrics) -> dict[str, str]:
    """Column name -> PromQL: ``error_ratio``, ``p99_latency_s``, then ``business:<name>``."""
    queries = {ERROR_RATIO: error_ratio_promql(metrics), P99_LATENCY: latency_p99_promql(metrics)}
    for name, metric in metrics.business_counters.items():
        queries[f"{BUSINESS_PREFIX}{name}"] = business_counter_promql(metric, metrics)
    for name, query in metrics.business_queries.items():
        queries[f"{BUSINESS_PREFIX}{name}"] = query.strip()
    return queries
