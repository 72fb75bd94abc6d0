"""``runbook evaluate --prometheus`` against a real Prometheus scraping a known bad service.

The exporter serves counters that grow at fixed rates: 5% of requests fail and every request
takes between 1 and 2 s, so both the error and the latency rules must fire; orders are steady, so
the business rule must not. Needs the prometheus binary (Debian package ``prometheus``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from runbook_sandbox.prometheus_server import (
    PrometheusServer,
    ScrapeTarget,
    free_port,
)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _exposition(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    x = time.time() - ORIGIN  # far from zero, so rate() never sees a counter reset
    text = (
        "# TYPE http_requests_total counter\n"
        f'http_requests_total{{code="200"}} {95 * x}\n'
        f'http_requests_total{{code="500"}} {5 * x}\n'
        "# TYPE http_request_duration_seconds histogram\n"
        'http_request_duration_seconds_bucket{le="0.5"} 0\n'
        'http_request_duration_seconds_bucket{le="1"} 0\n'
        f'http_request_duration_seconds_bucket{{le="2"}} {100 * x}\n'
        f'http_request_duration_seconds_bucket{{le="+Inf"}} {100 * x}\n'
        f"http_request_duration_seconds_sum {150 * x}\n"
        f"http_request_duration_seconds_count {100 * x}\n"
        "# TYPE orders_total counter\n"
        f"orders_total {2 * x}\n"
    )
    start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
    return [text.encode()]


ORIGIN = time.time() - 1000.0


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, prometheus_binary: str
) -> Iterator[PrometheusServer]:
    binary = prometheus_binary
    exporter = make_server("127.0.0.1", free_port(), _exposition, handler_class=_Quiet)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    server = PrometheusServer(
        port=free_port(),
        targets=[ScrapeTarget("bad", f"127.0.0.1:{exporter.server_port}")],
        work_dir=tmp_path_factory.mktemp("prometheus"),
        binary=binary,
    )
    server.start()
    try:
        server.wait_scraped("bad", times=14, timeout_s=60)
        yield server
    finally:
        server.stop()
        exporter.shutdown()
        exporter.server_close()


def runbook(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "runbook"
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_live_bad_service_fires_error_and_latency_rules(prometheus: PrometheusServer) -> None:
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    deployed_at = now - timedelta(seconds=7)
    result = runbook(
        "evaluate", "--prometheus", prometheus.url, "--json",
        "--deployed-at", deployed_at.isoformat(), "--now", now.isoformat(),
        "--step", "1s", "--sustain", "3s", "--window", "1m", "--rate-window", "4s",
        "--business-baseline", "5s", "--business-smoothing", "2s",
        "--business-counters", "orders=orders_total",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert list(document) == ["rollback", "triggers", "warnings", "verdict", "rules"]
    assert document["rollback"] is True
    by_rule = {t["rule"]: t for t in document["triggers"]}
    assert sorted(by_rule) == ["error_rate", "latency_p99"]
    assert by_rule["error_rate"]["peak"] == pytest.approx(0.05, rel=0.02)
    assert 1.0 < by_rule["latency_p99"]["peak"] <= 2.0
    for trigger in by_rule.values():
        started = datetime.fromisoformat(trigger["started_at"])
        fired = datetime.fromisoformat(trigger["fired_at"])
        assert started == deployed_at  # breaching from the first counted sample
        assert fired == deployed_at + timedelta(seconds=4)  # first sample more than 3 s later


def test_unreachable_prometheus_exits_1_naming_the_query() -> None:
    result = runbook(
        "evaluate", "--prometheus", f"http://127.0.0.1:{free_port()}",
        "--deployed-at", "2026-11-20T14:00:00Z", "--now", "2026-11-20T14:05:00Z",
    )  # fmt: skip
    assert result.returncode == 1
    assert "MetricsError: cannot reach Prometheus" in result.stderr
    assert "http_requests_total" in result.stderr
