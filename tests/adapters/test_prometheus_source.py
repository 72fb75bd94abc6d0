"""PrometheusSource against a real Prometheus scraping an exporter whose values are known.

The exporter's counters grow linearly in time at the rates in ``RATES`` (and its histogram's
buckets likewise), so every rate() Prometheus computes is in the same proportions and the
expected 5xx ratio, p99 and orders rate follow from the table, whatever the scrape timing.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from runbook_lib.adapters import metrics
from runbook_lib.adapters.prometheus import PrometheusSource
from runbook_lib.core import promql
from runbook_lib.core.promql import Metrics
from runbook_lib.errors import MetricsError, ParameterError
from runbook_sandbox.prometheus_server import PrometheusServer, ScrapeTarget, free_port

# Per second, per service: requests by status code, cumulative latency buckets, orders.
RATES: dict[str, dict[str, Any]] = {
    "api": {
        "codes": {"200": 95.0, "404": 3.0, "500": 1.5, "503": 0.5},
        "buckets": {"0.25": 50.0, "0.5": 90.0, "1.0": 96.0, "2.0": 100.0, "+Inf": 100.0},
        "orders": 10.0,
    },
    "batch": {
        "codes": {"200": 10.0, "500": 10.0},
        "buckets": {"0.25": 20.0, "0.5": 20.0, "1.0": 20.0, "2.0": 20.0, "+Inf": 20.0},
        "orders": 0.0,
    },
}
RATE_WINDOW = "5s"
PrometheusFactory = Callable[[Sequence[ScrapeTarget]], PrometheusServer]  # conftest fixture


def expected_error_ratio(services: Iterable[str]) -> float:
    codes = [RATES[s]["codes"] for s in services]
    errors = sum(r for c in codes for code, r in c.items() if code.startswith("5"))
    return errors / sum(r for c in codes for r in c.values())


def expected_p99(service: str) -> float:
    """histogram_quantile's definition: linear interpolation inside the bucket holding the rank."""
    buckets = [(float(le), n) for le, n in RATES[service]["buckets"].items() if le != "+Inf"]
    rank = 0.99 * RATES[service]["buckets"]["+Inf"]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    raise AssertionError("rank beyond the finite buckets")


class _QuietWSGIHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class KnownValues:
    """A prometheus_client collector whose counters equal rate x (seconds since an origin)."""

    started_at = math.inf  # wall-clock time of the first instance

    def __init__(self) -> None:
        KnownValues.started_at = min(KnownValues.started_at, time.time())
        # Far from zero, so Prometheus' "counter started at zero" extrapolation never applies.
        self.origin = time.time() - 1000.0

    def collect(self) -> Iterator[Metric]:
        x = time.time() - self.origin
        requests = CounterMetricFamily("http_requests", "Requests.", labels=["service", "code"])
        latency = HistogramMetricFamily(
            "http_request_duration_seconds", "Latency.", labels=["service"]
        )
        orders = CounterMetricFamily("orders", "Orders.", labels=["service"])
        for service, spec in RATES.items():
            for code, rate in spec["codes"].items():
                requests.add_metric([service, code], rate * x)
            latency.add_metric(
                [service],
                buckets=[(le, n * x) for le, n in spec["buckets"].items()],
                sum_value=0.4 * spec["buckets"]["+Inf"] * x,
            )
            orders.add_metric([service], spec["orders"] * x)
        yield from (requests, latency, orders)


def serve_in_thread(server: WSGIServer | HTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def known_prometheus(start_prometheus: PrometheusFactory) -> Iterator[PrometheusServer]:
    """Prometheus that has scraped the known exporter for long enough to fill a rate window."""
    registry = CollectorRegistry()
    registry.register(KnownValues())  # type: ignore[arg-type]
    exporter = make_server(
        "127.0.0.1", free_port(), make_wsgi_app(registry), handler_class=_QuietWSGIHandler
    )
    serve_in_thread(exporter)
    prom = start_prometheus([ScrapeTarget("known", f"127.0.0.1:{exporter.server_port}")])
    prom.wait_scraped("known", times=9, timeout_s=60)
    yield prom
    exporter.shutdown()
    exporter.server_close()


def recent(seconds: float = 4.0) -> tuple[datetime, datetime]:
    end = datetime.now(UTC) - timedelta(seconds=1)
    return end - timedelta(seconds=seconds), end


# --- the source's own arguments (no request) -----------------------------------------------


def test_builder_column_names_are_the_metric_frame_contract() -> None:
    assert (promql.ERROR_RATIO, promql.P99_LATENCY, promql.BUSINESS_PREFIX) == (
        metrics.ERROR_RATIO,
        metrics.P99_LATENCY,
        metrics.BUSINESS_PREFIX,
    )


def _source(url: str, *, timeout_s: float = 10.0, **metrics: Any) -> PrometheusSource:
    return PrometheusSource(url, metrics=Metrics(**metrics), timeout_s=timeout_s)


def test_source_rejects_bad_arguments_before_any_request() -> None:
    with pytest.raises(ParameterError) as caught:
        PrometheusSource("localhost:9090", timeout_s=0)
    assert len(caught.value.problems) == 2
    source = PrometheusSource(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ParameterError, match="timezone-aware"):
        source.query_range(datetime(2026, 1, 1), datetime(2026, 1, 1, 1), 15)


# --- against a real Prometheus -----------------------------------------------------------


def test_error_ratio_p99_and_orders_match_the_exporter(known_prometheus: PrometheusServer) -> None:
    source = _source(
        known_prometheus.url,
        prometheus_selector='service="api"',
        prometheus_rate_window=RATE_WINDOW,
        business_counters={"orders": "orders_total"},
        business_queries={"requests": 'sum(rate(http_requests_total{service="api"}[5s]))'},
    )
    frame = source.query_range(*recent(), step_s=1)

    columns = ["error_ratio", "p99_latency_s", "business:orders", "business:requests"]
    assert list(frame.columns) == columns
    assert not frame.isna().any().any()
    assert frame["error_ratio"].to_numpy() == pytest.approx(expected_error_ratio(["api"]))
    assert frame["p99_latency_s"].to_numpy() == pytest.approx(expected_p99("api"))
    # A lone rate() depends on scrape jitter (it extrapolates to the window's edges), but two
    # rates over the same scrapes are in exactly the exporter's proportion.
    orders_per_request = RATES["api"]["orders"] / sum(RATES["api"]["codes"].values())
    ratio = frame["business:orders"] / frame["business:requests"]
    assert ratio.to_numpy() == pytest.approx(orders_per_request)
    assert frame.attrs["queries"] == source.queries


def test_without_selector_all_services_count(known_prometheus: PrometheusServer) -> None:
    frame = _source(known_prometheus.url, prometheus_rate_window=RATE_WINDOW).query_range(
        *recent(), step_s=1
    )
    assert frame["error_ratio"].to_numpy() == pytest.approx(expected_error_ratio(RATES))


def test_frame_is_on_the_step_grid_with_nan_before_the_data(
    known_prometheus: PrometheusServer,
) -> None:
    end = datetime.now(UTC)
    start = end - timedelta(minutes=3)
    frame = _source(known_prometheus.url, prometheus_rate_window=RATE_WINDOW).query_range(
        start, end, step_s=5
    )
    index = frame.index
    assert isinstance(index, pd.DatetimeIndex)
    assert str(index.tz) == "UTC"
    assert start <= index[0]
    assert index[-1] <= end
    ns = index.as_unit("ns").asi8
    assert (ns % 5_000_000_000 == 0).all()  # multiples of the step
    assert (np.diff(ns) == 5_000_000_000).all()
    assert len(frame) in (36, 37)
    before_data = index < pd.Timestamp(KnownValues.started_at, unit="s", tz="UTC")
    assert before_data.sum() > 10  # the exporter is younger than the range
    assert frame["error_ratio"][before_data].isna().all()
    assert frame["error_ratio"].iloc[-1] == pytest.approx(expected_error_ratio(RATES))


def test_long_ranges_are_fetched_in_pieces(known_prometheus: PrometheusServer) -> None:
    # 4 h at 1 s is 14,401 points: more than Prometheus answers in one range query.
    end = datetime.now(UTC) - timedelta(seconds=1)
    frame = _source(known_prometheus.url, prometheus_rate_window=RATE_WINDOW).query_range(
        end - timedelta(hours=4), end, step_s=1
    )
    assert len(frame) in (14_400, 14_401)
    assert frame["error_ratio"].iloc[-3:].to_numpy() == pytest.approx(expected_error_ratio(RATES))


def test_raw_promql_per_column(known_prometheus: PrometheusServer) -> None:
    batch = 'http_requests_total{service="batch"'
    orders, api = 'orders_total{service="api"}[5s]', 'http_requests_total{service="api"}[5s]'
    source = _source(
        known_prometheus.url,
        error_ratio_query=f'sum(rate({batch},code="500"}}[5s])) / sum(rate({batch}}}[5s]))',
        latency_p99_query="vector(0.25)",
        timeout_s=2.5,  # a fractional timeout must be sent in a form Prometheus accepts
        business_queries={"orders_per_request": f"sum(rate({orders})) / sum(rate({api}))"},
    )
    frame = source.query_range(*recent(), step_s=1)
    assert frame["error_ratio"].to_numpy() == pytest.approx(0.5)
    assert frame["p99_latency_s"].to_numpy() == pytest.approx(0.25)
    expected = RATES["api"]["orders"] / sum(RATES["api"]["codes"].values())
    assert frame["business:orders_per_request"].to_numpy() == pytest.approx(expected)


def test_nan_samples_become_missing_samples(known_prometheus: PrometheusServer) -> None:
    # 1 where (t mod 20 s) >= 10 s, else 0/0 = NaN: Prometheus returns "NaN" for those steps.
    half = "(vector(time() % 20 >= bool 10))"
    source = _source(
        known_prometheus.url,
        error_ratio_query=f"{half} / {half}",
        prometheus_rate_window=RATE_WINDOW,
    )
    frame = source.query_range(*recent(60), step_s=5)
    seconds = (frame.index.as_unit("s").asi8) % 20
    assert frame["error_ratio"].isna().to_numpy().tolist() == (seconds < 10).tolist()
    assert (frame["error_ratio"][seconds >= 10] == 1.0).all()


def test_no_data_is_an_error_naming_the_query(known_prometheus: PrometheusServer) -> None:
    source = _source(known_prometheus.url, prometheus_selector='service="nonexistent"')
    with pytest.raises(MetricsError, match="no data for error_ratio") as caught:
        source.query_range(*recent(), step_s=1)
    assert 'service="nonexistent"' in caught.value.command
    assert not caught.value.retryable


def test_bad_promql_carries_prometheus_message(known_prometheus: PrometheusServer) -> None:
    source = _source(known_prometheus.url, error_ratio_query="sum(rate(up[1m])")
    with pytest.raises(MetricsError, match="rejected the query") as caught:
        source.query_range(*recent(), step_s=1)
    assert caught.value.command == "sum(rate(up[1m])"
    assert "parse error" in caught.value.stderr
    assert not caught.value.retryable


def test_several_series_must_be_aggregated(known_prometheus: PrometheusServer) -> None:
    source = _source(
        known_prometheus.url, error_ratio_query="sum by (code) (rate(http_requests_total[5s]))"
    )
    with pytest.raises(MetricsError, match="returned 4 series"):
        source.query_range(*recent(), step_s=1)


def test_infinite_values_are_an_error(known_prometheus: PrometheusServer) -> None:
    source = _source(known_prometheus.url, latency_p99_query="vector(1) / vector(0)")
    with pytest.raises(MetricsError, match=r"p99_latency_s is inf at .*largest finite bucket"):
        source.query_range(*recent(), step_s=1)


def test_server_down_is_a_retryable_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MetricsError, match="cannot reach Prometheus") as caught:
        PrometheusSource(url).query_range(*recent(), step_s=1)
    assert caught.value.retryable
    assert "refused" in caught.value.stderr.lower()


def test_a_server_that_never_answers_times_out_as_retryable() -> None:
    # A listening socket nobody serves: a hung server, which no real one shows on demand.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        source = PrometheusSource(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.5)
        with pytest.raises(MetricsError, match=r"cannot reach|failed") as caught:
            source.query_range(*recent(), step_s=1)
    assert caught.value.retryable
    assert "timed out" in str(caught.value)


class _Overloaded(BaseHTTPRequestHandler):
    """Answers like a Prometheus whose query engine is overloaded (a state not made on demand)."""

    def do_POST(self) -> None:
        body = {"status": "error", "errorType": "unavailable", "error": "too many queries"}
        payload = json.dumps(body).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_server_errors_are_retryable_and_carry_the_text() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Overloaded)
    serve_in_thread(server)
    try:
        source = PrometheusSource(f"http://127.0.0.1:{server.server_port}")
        with pytest.raises(MetricsError, match=r"server error \(HTTP 503\)") as caught:
            source.query_range(*recent(), step_s=1)
    finally:
        server.shutdown()
        server.server_close()
    assert caught.value.retryable
    assert caught.value.stderr == "unavailable: too many queries"
    assert "error_ratio" not in caught.value.command  # the command is the PromQL itself
    assert caught.value.command == source.queries["error_ratio"]
