"""``runbook evaluate --prometheus-url URL --profile FILE --json`` on a service that follows
none of the sandbox's metric names, against a real Prometheus.

The "ledger" service counts its calls by outcome (no status code), measures latency in a
histogram of *milliseconds*, and reports its business as a gauge. Its profile gives the 5xx
ratio as raw PromQL, declares the histogram's unit, and the gauge as a raw business query.
The exporter's values change at a known moment (the "deploy"): before it 0.2% of calls fail
and 120 postings a minute are made; after it 10% fail and 40 a minute. The p99 latency stays
at 450 ms throughout: read as seconds it would breach the 1 s threshold, so a verdict that
leaves the latency rule clear shows the unit was applied, not guessed.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from runbook_lib.cli.main import main
from runbook_sandbox.prometheus_server import PrometheusServer, ScrapeTarget, free_port

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

CALLS_PER_S = 50.0
FAILED = (0.1, 5.0)  # failed calls per second before and after the deploy
POSTINGS = (120.0, 40.0)  # the gauge before and after
# Cumulative calls per second by upper bound in ms: the 99th lies in (250, 500], at 450 ms.
BUCKETS_MS = {"100": 25.0, "250": 47.5, "500": 50.0, "+Inf": 50.0}
SWITCH_AFTER_S = 35  # the deploy, counted from the exporter's start

PROFILE = """\
release: ledger
namespace: payments
error_ratio_query: >-
  sum(rate(ledger_calls_total{outcome="failed"}[5s]))
  / sum(rate(ledger_calls_total[5s]))
latency_histogram: ledger_call_latency_ms
latency_unit: ms
prometheus_rate_window: 5s
business_queries:
  postings_per_minute: sum(ledger_postings_per_minute)
step: 1s
sustain: 4s
window: 1m
business_baseline: 10s
business_smoothing: 3s
"""


class Ledger:
    """Counters that are the integral of piecewise-constant rates, switching at ``switch_at``."""

    def __init__(self, switch_at: float) -> None:
        self.switch_at = switch_at
        # Far from zero, so Prometheus' "counter started at zero" extrapolation never applies.
        self.origin = time.time() - 1000.0

    def _integral(self, before: float, after: float) -> float:
        now = time.time()
        return before * (min(now, self.switch_at) - self.origin) + after * max(
            0.0, now - self.switch_at
        )

    def collect(self) -> Iterator[Metric]:
        failed = self._integral(*FAILED)
        calls = CounterMetricFamily("ledger_calls", "Calls by outcome.", labels=["outcome"])
        calls.add_metric(["failed"], failed)
        calls.add_metric(["ok"], self._integral(CALLS_PER_S, CALLS_PER_S) - failed)
        seconds = time.time() - self.origin
        latency = HistogramMetricFamily("ledger_call_latency_ms", "Call latency in ms.")
        latency.add_metric(
            [], buckets=[(le, n * seconds) for le, n in BUCKETS_MS.items()], sum_value=seconds
        )
        postings = GaugeMetricFamily("ledger_postings_per_minute", "Postings a minute.")
        postings.add_metric([], POSTINGS[time.time() >= self.switch_at])
        yield from (calls, latency, postings)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def ledger(start_prometheus: Any) -> Iterator[tuple[PrometheusServer, float]]:
    """Prometheus scraping the ledger until 16 s after its deploy; the deploy's Unix time."""
    switch_at = float(math.ceil(time.time()) + SWITCH_AFTER_S)
    registry = CollectorRegistry()
    registry.register(Ledger(switch_at))  # type: ignore[arg-type]
    exporter: WSGIServer = make_server(
        "127.0.0.1", free_port(), make_wsgi_app(registry), handler_class=_Quiet
    )
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    prom = start_prometheus([ScrapeTarget("ledger", f"127.0.0.1:{exporter.server_port}")])
    deadline = time.monotonic() + SWITCH_AFTER_S + 60
    while time.monotonic() < deadline:  # until a sample scraped 16 s after the deploy
        found = prom.query("timestamp(ledger_postings_per_minute)")
        if found and float(found[0]["value"][1]) >= switch_at + 16:
            break
        time.sleep(0.5)
    else:
        pytest.fail("Prometheus did not scrape the ledger up to 16 s after its deploy")
    yield prom, switch_at
    exporter.shutdown()
    exporter.server_close()


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat()


def _evaluate(
    capsys: pytest.CaptureFixture[str], prom: PrometheusServer, profile: Path, *args: str
) -> dict[str, Any]:
    status = main(
        ["evaluate", "--prometheus-url", prom.url, "--profile", str(profile), "--json", *args]
    )
    captured = capsys.readouterr()
    assert status == 0, captured.err
    document: dict[str, Any] = json.loads(captured.out)
    return document


def _statuses(document: dict[str, Any]) -> dict[str, str]:
    return {f"{r['rule']} {r['metric']}": r["status"] for r in document["rules"]}


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.yaml"
    path.write_text(PROFILE, encoding="utf-8")
    return path


def test_the_bad_deploy_is_judged_on_the_services_own_series(
    ledger: tuple[PrometheusServer, float], profile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prom, deployed = ledger
    document = _evaluate(
        capsys, prom, profile, "--deployed-at", _iso(deployed), "--now", _iso(deployed + 15)
    )
    assert set(document) == {"rollback", "triggers", "warnings", "verdict", "rules"}
    assert (document["verdict"], document["rollback"]) == ("rollback", True)
    assert _statuses(document) == {
        "error_rate error_ratio": "fired",
        "latency_p99 p99_latency_s": "clear",  # 450 ms is 0.45 s, not 450 s
        "business business:postings_per_minute": "fired",
    }
    latency = next(r for r in document["rules"] if r["rule"] == "latency_p99")
    assert latency["reason"] == "clear: never above 1 s"
    fired = {t["rule"]: t for t in document["triggers"]}
    assert fired["error_rate"]["peak"] == pytest.approx(0.1, rel=0.02)
    assert fired["business"]["threshold"] == pytest.approx(0.9 * POSTINGS[0], rel=1e-9)
    assert fired["business"]["peak"] == pytest.approx(POSTINGS[1])


def test_the_same_service_before_its_deploy_needs_no_rollback(
    ledger: tuple[PrometheusServer, float], profile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prom, switch = ledger
    document = _evaluate(
        capsys, prom, profile, "--deployed-at", _iso(switch - 14), "--now", _iso(switch - 1)
    )
    assert (document["verdict"], document["triggers"]) == ("no_rollback", [])
    assert set(_statuses(document).values()) == {"clear"}


def test_a_unit_that_contradicts_the_histogram_is_refused_before_any_query(
    ledger: tuple[PrometheusServer, float], profile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prom, switch = ledger
    status = main(
        ["evaluate", "--prometheus-url", prom.url, "--profile", str(profile),
         "--deployed-at", _iso(switch), "--latency-unit", "s"]
    )  # fmt: skip
    assert status == 2
    err = capsys.readouterr().err
    assert "'ledger_call_latency_ms' reads milliseconds but the unit is seconds" in err
    assert f"({profile}, line 6)" in err  # where the profile names the histogram
