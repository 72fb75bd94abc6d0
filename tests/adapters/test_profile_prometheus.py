"""``runbook profile init`` and ``runbook profile check`` against a real Prometheus.

A local exporter serves release ``cart`` (namespace ``shop``) the way Prometheus' client
libraries name things: ``http_requests_total{code}`` (2% 5xx), ``http_request_duration_seconds``
(p99 in (0.25, 0.5] s), the business counter ``orders_total``, and a second latency histogram
``cart_latency`` whose buckets count *milliseconds* although its name says nothing. Debian's
Prometheus scrapes it every second. ``init`` must propose a profile that ``check`` passes;
``check`` must warn about the millisecond histogram read as seconds, a selector that matches
nothing, a rate window under four scrapes and a metric name that does not exist.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from runbook_lib.cli.main import main
from runbook_lib.core.profile import parse_profile
from runbook_sandbox.prometheus_server import PrometheusServer, ScrapeTarget, free_port

REQUESTS_PER_S = 50.0
ERRORS_PER_S = 1.0  # 2% of the requests
# Cumulative requests per second by upper bound: the 99th lies in (0.25, 0.5] s.
BUCKETS_S = {"0.1": 25.0, "0.25": 47.5, "0.5": 50.0, "1": 50.0, "+Inf": 50.0}
BUCKETS_MS = {"100": 25.0, "250": 47.5, "500": 50.0, "5000": 50.0, "+Inf": 50.0}
SINCE = "20s"
LABELS = {"release": "cart", "namespace": "shop"}


class Cart:
    """Counters growing at constant rates from far in the past (no start-at-zero guesswork)."""

    def __init__(self) -> None:
        self.origin = time.time() - 1000.0

    def collect(self) -> Iterator[Metric]:
        seconds = time.time() - self.origin
        names, values = list(LABELS), list(LABELS.values())
        requests = CounterMetricFamily(
            "http_requests", "Requests by status code.", labels=[*names, "code"]
        )
        requests.add_metric([*values, "200"], (REQUESTS_PER_S - ERRORS_PER_S) * seconds)
        requests.add_metric([*values, "503"], ERRORS_PER_S * seconds)
        orders = CounterMetricFamily("orders", "Orders placed.", labels=names)
        orders.add_metric(values, 2.0 * seconds)
        yield from (requests, orders)
        for name, buckets in (
            ("http_request_duration_seconds", BUCKETS_S),
            ("cart_latency", BUCKETS_MS),
        ):
            histogram = HistogramMetricFamily(name, "Request latency.", labels=names)
            histogram.add_metric(
                values,
                buckets=[(le, n * seconds) for le, n in buckets.items()],
                sum_value=seconds,
            )
            yield histogram


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def prom(start_prometheus: Any) -> Iterator[PrometheusServer]:
    """Prometheus with more than ``SINCE`` of the cart's series."""
    registry = CollectorRegistry()
    registry.register(Cart())  # type: ignore[arg-type]
    exporter: WSGIServer = make_server(
        "127.0.0.1", free_port(), make_wsgi_app(registry), handler_class=_Quiet
    )
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    server = start_prometheus([ScrapeTarget("cart", f"127.0.0.1:{exporter.server_port}")])
    # until the check's window is full of samples
    server.wait_scraped("cart", times=25, window="40s", timeout_s=90)
    yield server
    exporter.shutdown()
    exporter.server_close()


def _check(
    capsys: pytest.CaptureFixture[str], prom: PrometheusServer, profile: Path, *extra: str
) -> tuple[int, dict[str, Any]]:
    status = main(
        ["profile", "check", str(profile), "--prometheus-url", prom.url, "--since", SINCE,
         "--step", "1s", "--json", *extra]
    )  # fmt: skip
    out = capsys.readouterr().out
    return status, json.loads(out)


def _profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cart.yaml"
    path.write_text("release: cart\nnamespace: shop\n" + text, encoding="utf-8")
    return path


def _findings(document: dict[str, Any], signal: str) -> list[tuple[str, str]]:
    found = next(s for s in document["signals"] if s["signal"] == signal)
    return [(f["severity"], f["message"]) for f in found["findings"]]


def test_init_proposes_a_profile_that_check_passes(
    prom: PrometheusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cart.yaml"
    status = main(
        ["profile", "init", "--prometheus-url", prom.url, "--release", "cart",
         "--namespace", "shop", "--since", SINCE, "-o", str(path)]
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    text = path.read_text()
    values = parse_profile(text, source=str(path)).values
    assert values["metrics_preset"] == "prometheus-client"
    assert values["prometheus_selector"] == 'release="cart",namespace="shop"'
    assert '#   orders: sum(rate(orders_total{release="cart",namespace="shop"}[1m]))' in text
    capsys.readouterr()

    status, document = _check(capsys, prom, path, "--strict")
    assert status == 0, document
    signals = {s["signal"]: s for s in document["signals"]}
    assert [s["series"] for s in signals.values()] == [1, 1]
    assert signals["error_ratio"]["last"] == pytest.approx(ERRORS_PER_S / REQUESTS_PER_S, rel=0.05)
    # histogram_quantile interpolates within (0.25, 0.5]: 0.99 of 50/s lies at 49.5 of 47.5..50.
    assert signals["p99_latency_s"]["last"] == pytest.approx(0.45, rel=0.05)

    # Written again only with --force.
    again = main(["profile", "init", "--prometheus-url", prom.url, "--release", "cart",
                  "-o", str(path)])  # fmt: skip
    assert again == 2
    assert "exists (--force overwrites it)" in capsys.readouterr().err
    assert path.read_text() == text


def test_a_millisecond_histogram_read_as_seconds_is_warned(
    prom: PrometheusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = _profile(
        tmp_path, 'prometheus_selector: release="cart"\nlatency_histogram: cart_latency\n'
    )
    status, document = _check(capsys, prom, profile)
    assert status == 0  # warnings only
    latency = next(s for s in document["signals"] if s["signal"] == "p99_latency_s")
    assert latency["last"] == pytest.approx(450, rel=0.05)
    assert _findings(document, "p99_latency_s") == [
        ("warning", f'reaches {latency["max"]:.6g} "seconds": no HTTP service\'s p99; '
         "milliseconds read as seconds? (set latency_unit: ms)"),
    ]  # fmt: skip
    assert document["worst"] == "warning"
    assert _check(capsys, prom, profile, "--strict")[0] == 1
    # Declared, it reads 0.45 s and says nothing.
    declared = _profile(
        tmp_path,
        'prometheus_selector: release="cart"\nlatency_histogram: cart_latency\nlatency_unit: ms\n',
    )
    status, document = _check(capsys, prom, declared, "--strict")
    assert status == 0, document
    assert document["signals"][1]["last"] == pytest.approx(0.45, rel=0.05)


def test_a_selector_that_matches_nothing_is_a_bad_profile(
    prom: PrometheusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = _profile(tmp_path, 'prometheus_selector: release="kart"\n')
    status, document = _check(capsys, prom, profile)
    assert status == 2
    findings = _findings(document, "error_ratio")
    assert findings[0][0] == "problem"
    assert findings[0][1].startswith("returns no series in the window")
    assert (
        "warning",
        'selector http_requests_total{release="kart"} matches no series in the window '
        "(http_requests_total has release: cart)",
    ) in findings


def test_short_rate_windows_and_unknown_metrics_are_warned(
    prom: PrometheusServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = _profile(
        tmp_path,
        'prometheus_selector: release="cart"\nprometheus_rate_window: 2s\n'
        "business_queries:\n  orders: sum(rate(order_total[1m]))\n",
    )
    status, document = _check(capsys, prom, profile)
    assert status == 2  # the business query returns nothing at all
    assert (
        "warning",
        "range [2s] of http_requests_total is under four scrape intervals of its target "
        "(4 x 1s): rate() will miss samples; set prometheus_rate_window: 4s or more",
    ) in _findings(document, "error_ratio")
    assert (
        "warning",
        "metric order_total does not exist in this Prometheus; did you mean orders_total?",
    ) in _findings(document, "business:orders")


def test_prometheus_that_cannot_be_reached_has_its_own_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = _profile(tmp_path, "")
    down = f"http://127.0.0.1:{free_port()}"
    assert main(["profile", "check", str(profile), "--prometheus-url", down]) == 7
    assert f"cannot reach Prometheus at {down}: connection refused" in capsys.readouterr().err
    assert main(["profile", "init", "--prometheus-url", down, "--release", "cart"]) == 7
