"""The traffic model's series: one tally per target, exposed in that target's dialect.

Each simulated request is counted once, in a ``Tally`` keyed by (version, status code,
method) with latency buckets; at scrape time ``TrafficCollector`` renders every target's tally
under its dialect's names, summing away what a dialect does not label. So a target costs the
same per request whatever its dialect, and only the (cheap) rendering differs:

    prometheus  http_requests_total{code,version}                      counter
                http_request_duration_seconds{version}                 histogram, seconds
                orders_total                                           counter
    otel        http_server_request_duration_seconds{http_request_method,
                  http_response_status_code,http_route,url_scheme}     histogram, seconds
                shop_orders_per_minute                                 gauge (last 60 s)
    istio       istio_requests_total{reporter,response_code,response_flags,
                  destination_canonical_revision,...}                  counter
                istio_request_duration_milliseconds{same labels}       histogram, milliseconds
                shop_orders_total                                      counter

Every series also has ``release`` and ``namespace`` (the target's), as a Kubernetes service
discovery relabelling would add them. OpenTelemetry has no request counter: the count is the
histogram's ``_count``; its version lives in resource attributes, so it is not a label there.
Istio's workload and service labels carry the release name.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from runbook_sandbox.traffic_targets import Dialect, Target

__all__ = [
    "LATENCY_BUCKETS_MS",
    "LATENCY_BUCKETS_S",
    "NO_POD_VERSION",
    "OUTCOMES",
    "ROUTES",
    "Tally",
    "TallySnapshot",
    "TrafficCollector",
]

# About 10-15% apart from 0.1 s to 5 s, and exact at the versions' p99s (0.3 s and 1.8 s)
# and the runbook's 1 s threshold: histogram_quantile interpolates linearly inside a bucket,
# which stays within 3% of a log-normal's true p99 anywhere in that range (the traffic tests
# check it, in both units).
LATENCY_BUCKETS_S = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.115, 0.13, 0.15, 0.165, 0.18, 0.2, 0.225, 0.25,
    0.275, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.15, 1.3, 1.5, 1.65, 1.8,
    2.0, 2.25, 2.5, 2.75, 3.0, 3.5, 4.0, 4.5, 5.0, 7.5, 10.0,
)  # fmt: skip
# The same boundaries in milliseconds (Istio's unit), so both units are equally accurate.
LATENCY_BUCKETS_MS = tuple(round(b * 1000, 6) for b in LATENCY_BUCKETS_S)
NO_POD_VERSION = "none"  # version of requests that found no ready pod (answered 503)
ROUTES = {"GET": "/api/products", "POST": "/api/orders"}
# (method, code) pairs the model produces: each series exists from the start, so rate()
# sees the first error too.
OUTCOMES = (
    ("GET", "200"), ("GET", "404"), ("GET", "500"), ("GET", "503"),
    ("POST", "201"), ("POST", "500"), ("POST", "503"),
)  # fmt: skip
ORDERS_WINDOW_S = 60.0
_S_LE = (*(floatToGoString(b) for b in LATENCY_BUCKETS_S), "+Inf")
_MS_LE = (*(floatToGoString(b) for b in LATENCY_BUCKETS_MS), "+Inf")

Key = tuple[str, str, str]  # (version, code, method)


@dataclass(frozen=True)
class TallySnapshot:
    """A consistent copy of a tally: per key its bucket counts (last: above all bounds) and
    the sum of latencies in seconds; successful orders in total and per minute."""

    series: dict[Key, tuple[tuple[int, ...], float]]
    orders: int
    orders_per_minute: float


class Tally:
    """Request outcomes of one target since it started. Writers hold ``lock`` for a batch."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._series: dict[Key, list[float]] = {}  # bucket counts..., then the sum
        self.orders = 0
        self._recent: deque[tuple[float, int]] = deque()  # (end of a batch, orders in it)
        self._first_at: float | None = None

    def ensure(self, version: str) -> None:
        """Create every outcome's series of ``version`` (caller holds ``lock``)."""
        for method, code in OUTCOMES:
            self._series.setdefault((version, code, method), [0.0] * (len(_S_LE) + 1))

    def observe(self, version: str, code: str, method: str, duration_s: float) -> None:
        """Count one request (caller holds ``lock``)."""
        row = self._series.get((version, code, method))
        if row is None:
            row = self._series[(version, code, method)] = [0.0] * (len(_S_LE) + 1)
        row[bisect_left(LATENCY_BUCKETS_S, duration_s)] += 1
        row[-1] += duration_s

    def add_orders(self, n: int, *, start: float, end: float) -> None:
        """``n`` orders succeeded in ``(start, end]`` (Unix seconds; caller holds ``lock``)."""
        if self._first_at is None:
            self._first_at = start
        self.orders += n
        self._recent.append((end, n))
        while self._recent and self._recent[0][0] <= end - ORDERS_WINDOW_S:
            self._recent.popleft()

    def _per_minute(self) -> float:
        if not self._recent or self._first_at is None:
            return 0.0
        last = self._recent[-1][0]
        covered = min(ORDERS_WINDOW_S, last - self._first_at)
        if covered <= 0:
            return 0.0
        return sum(n for _, n in self._recent) * 60.0 / covered

    def snapshot(self) -> TallySnapshot:
        with self.lock:
            series = {
                key: (tuple(int(c) for c in row[:-1]), row[-1]) for key, row in self._series.items()
            }
            return TallySnapshot(series, self.orders, self._per_minute())


# --- rendering ------------------------------------------------------------------------------


Group = Callable[[Key], tuple[str, ...]]


def _counts(snap: TallySnapshot, group: Group) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = {}
    for key, (buckets, _) in snap.series.items():
        out[group(key)] = out.get(group(key), 0) + sum(buckets)
    return out


Histograms = dict[tuple[str, ...], tuple[list[int], float]]


def _histograms(snap: TallySnapshot, group: Group) -> Histograms:
    out: Histograms = {}
    for key, (buckets, total) in snap.series.items():
        g = group(key)
        if g in out:
            counts, before = out[g]
            out[g] = ([a + b for a, b in zip(counts, buckets, strict=True)], before + total)
        else:
            out[g] = (list(buckets), total)
    return out


def _add_histogram(
    family: HistogramMetricFamily,
    labels: Sequence[str],
    counts: Sequence[int],
    total_s: float,
    *,
    ms: bool,
) -> None:
    les = _MS_LE if ms else _S_LE
    cumulative, running = [], 0
    for le, count in zip(les, counts, strict=True):
        running += count
        cumulative.append((le, float(running)))
    family.add_metric(list(labels), cumulative, total_s * 1000 if ms else total_s)


class _Families:
    """The metric families of one dialect, filled target by target."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        where = ["release", "namespace"]
        if dialect is Dialect.PROMETHEUS:
            self.requests = CounterMetricFamily(
                "http_requests_total", "Requests answered, by status code and app version.",
                labels=["code", "version", *where],
            )  # fmt: skip
            self.duration = HistogramMetricFamily(
                "http_request_duration_seconds", "Request latency by app version.",
                labels=["version", *where],
            )  # fmt: skip
            self.business: CounterMetricFamily | GaugeMetricFamily = CounterMetricFamily(
                "orders_total", "Orders placed successfully.", labels=where
            )
        elif dialect is Dialect.OTEL:
            self.duration = HistogramMetricFamily(
                "http_server_request_duration_seconds", "Duration of HTTP server requests.",
                labels=["http_request_method", "http_response_status_code", "http_route",
                        "url_scheme", *where],
            )  # fmt: skip
            self.business = GaugeMetricFamily(
                "shop_orders_per_minute", "Orders placed successfully in the last minute.",
                labels=where,
            )  # fmt: skip
        else:
            labels = [*_ISTIO_LABELS, *where]
            self.requests = CounterMetricFamily(
                "istio_requests_total", "Requests handled by the sidecar.", labels=labels
            )
            self.duration = HistogramMetricFamily(
                "istio_request_duration_milliseconds", "Request duration at the sidecar.",
                labels=labels,
            )  # fmt: skip
            self.business = CounterMetricFamily(
                "shop_orders_total", "Orders placed successfully.", labels=where
            )

    def add(self, target: Target, snap: TallySnapshot) -> None:
        where = (target.release, target.namespace)
        if self.dialect is Dialect.PROMETHEUS:
            for (code, version), n in _counts(snap, lambda k: (k[1], k[0])).items():
                self.requests.add_metric([code, version, *where], n)
            for (version,), (counts, total) in _histograms(snap, lambda k: (k[0],)).items():
                _add_histogram(self.duration, [version, *where], counts, total, ms=False)
            self.business.add_metric(list(where), snap.orders)
        elif self.dialect is Dialect.OTEL:
            by_outcome = _histograms(snap, lambda k: (k[2], k[1]))
            for (method, code), (counts, total) in by_outcome.items():
                labels = [method, code, ROUTES.get(method, "/"), "http", *where]
                _add_histogram(self.duration, labels, counts, total, ms=False)
            self.business.add_metric(list(where), snap.orders_per_minute)
        else:
            by_outcome = _histograms(snap, lambda k: (k[0], k[1]))
            for (version, code), (counts, total) in by_outcome.items():
                labels = [*_istio_values(target, version, code), *where]
                self.requests.add_metric(labels, sum(counts))
                _add_histogram(self.duration, labels, counts, total, ms=True)
            self.business.add_metric(list(where), snap.orders)

    def families(self) -> Iterator[Metric]:
        if self.dialect is not Dialect.OTEL:
            yield self.requests
        yield self.duration
        yield self.business


_ISTIO_LABELS = (
    "reporter", "destination_workload", "destination_workload_namespace",
    "destination_service_name", "destination_canonical_service",
    "destination_canonical_revision", "request_protocol", "response_code", "response_flags",
)  # fmt: skip


def _istio_values(target: Target, version: str, code: str) -> tuple[str, ...]:
    # No ready pod: the sidecar answers 503 itself, flagged UH ("no healthy upstream").
    flags = "UH" if version == NO_POD_VERSION else "-"
    name = target.release
    return ("destination", name, target.namespace, name, name, version, "http", code, flags)


class TrafficCollector:
    """A prometheus_client collector over the targets ``source()`` returns at each scrape."""

    def __init__(self, source: Callable[[], Iterable[tuple[Target, Tally]]]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        by_dialect: dict[Dialect, _Families] = {}
        for target, tally in self.source():
            snap = tally.snapshot()
            families = by_dialect.get(target.dialect)
            if families is None:
                families = by_dialect[target.dialect] = _Families(target.dialect)
            families.add(target, snap)
        for dialect in Dialect:  # a stable order, whatever the targets' order
            if dialect in by_dialect:
                yield from by_dialect[dialect].families()
