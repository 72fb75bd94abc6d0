"""Prometheus -> Alertmanager -> ``runbook serve``, all real, on loopback.

A small exporter serves the request counter with a 5xx share the test sets; Debian's
Prometheus evaluates the rules ``runbook rules`` writes (1 s interval, 3 s sustain, rates over
4 s) and sends to Debian's Alertmanager, configured by the sandbox harness, which posts to the
receiver with the bearer token. Only the notebook run is a stand-in (it writes the record a
run leaves); the sandbox test runs the real notebook.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from receiver_doubles import FakeDispatch
from served_receiver import ServedReceiver, require_alertmanager

from runbook_lib.adapters.prometheus import PrometheusSource
from runbook_lib.core.alert_rules import render_rule_file
from runbook_lib.core.decision import evaluate
from runbook_lib.core.settings import Entry, Metrics, Rules, from_flat
from runbook_lib.receiver import RunSpec
from runbook_sandbox import alerting
from runbook_sandbox.prometheus_server import PrometheusServer, ScrapeTarget, free_port

RATE = 200.0  # requests per second


class Exporter:
    """``http_requests_total`` growing at RATE/s, a share ``error_share`` of it 5xx; latency low."""

    def __init__(self) -> None:
        self.error_share = 0.0
        self.counts = {"200": 0.0, "500": 0.0}
        self.last = time.monotonic()
        self.lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def render(self) -> str:
        with self.lock:
            now = time.monotonic()
            served = RATE * (now - self.last)
            self.last = now
            self.counts["500"] += served * self.error_share
            self.counts["200"] += served * (1 - self.error_share)
            lines = ["# TYPE http_requests_total counter"]
            lines += [f'http_requests_total{{code="{c}"}} {n}' for c, n in self.counts.items()]
            # Every request fast (under 0.1 s): only the 5xx share changes.
            total = sum(self.counts.values())
            lines += ["# TYPE http_request_duration_seconds histogram"]
            lines += [
                f'http_request_duration_seconds_bucket{{le="{le}"}} {total}'
                for le in ("0.1", "1", "+Inf")
            ]
            lines += [
                f"http_request_duration_seconds_count {total}",
                f"http_request_duration_seconds_sum {total * 0.05}",
            ]
        return "\n".join(lines) + "\n"


class Runs(FakeDispatch):
    """Stand-in for the notebook run (it leaves the timeline a run leaves); notes when each
    started."""

    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []

    def start(self, run: RunSpec) -> dict[str, Any]:
        self.at.append(time.monotonic())
        return super().start(run)


class Chain:
    def __init__(self, tmp: Path) -> None:
        require_alertmanager()
        self.tmp = tmp
        self.exporter = Exporter()
        self.runs = Runs()
        self.alertmanager_port = free_port()
        self.served = ServedReceiver(tmp, self.runs)
        self.receiver = self.served.receiver
        settings = from_flat(
            {
                "prometheus_selector": 'job="app"',
                "prometheus_rate_window": "4s",
                "sustain": "3s",
                "step": "1s",
            },
            used_by=Entry.RULES,
        )
        rules = tmp / "rules.yml"
        rules.write_text(render_rule_file(settings))
        self.prometheus = PrometheusServer(
            port=free_port(),
            targets=[ScrapeTarget("app", self.exporter.address)],
            work_dir=tmp / "prometheus",
            rule_files=[str(rules)],
            alertmanagers=[f"127.0.0.1:{self.alertmanager_port}"],
            # Resend firing alerts every 2 s (default 1 m), so a restarted Alertmanager
            # hears of them quickly.
            extra_args=["--rules.alert.resend-delay=2s"],
        )
        self.prometheus.start()
        self.prometheus.wait_scraped("app")

    def start_alertmanager(self) -> None:
        alerting.start(
            self.tmp,
            port=self.alertmanager_port,
            receiver=self.served.url,
        )

    def firing(self) -> bool:
        result = self.prometheus.query('ALERTS{alertname="RunbookErrorRatioHigh"}')
        return any(r["metric"].get("alertstate") == "firing" for r in result)

    def close(self) -> None:
        alerting.stop(self.tmp, port=self.alertmanager_port)
        self.prometheus.stop()
        self.served.close()
        self.exporter.server.shutdown()


@pytest.fixture
def chain(tmp_path: Path, prometheus_binary: str) -> Iterator[Chain]:
    built = Chain(tmp_path)
    try:
        yield built
    finally:
        built.close()


def _wait(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _notification_errors(prometheus_url: str) -> float:
    """Prometheus' own count of alert notifications it failed to send."""
    with urllib.request.urlopen(f"{prometheus_url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prometheus_notifications_errors_total")
    )


def test_a_sustained_breach_reaches_the_receiver_and_a_healthy_service_never_does(
    chain: Chain,
) -> None:
    chain.start_alertmanager()
    chain.exporter.error_share = 0.005  # healthy: under 1%
    assert not _wait(lambda: chain.runs.calls, 12)
    breach, breach_at = time.monotonic(), datetime.now(UTC)
    chain.exporter.error_share = 0.2
    assert _wait(lambda: chain.runs.calls, 40), chain.prometheus.log_tail()
    (call,) = chain.runs.calls
    assert (call["release"], call["namespace"], call["confirm"]) == ("app", "default", True)
    print(f"breach start to run started: {chain.runs.at[0] - breach:.1f} s")
    rows = chain.receiver.runs()
    assert rows[0]["alert"] == "RunbookErrorRatioHigh"
    # The engine on the same data (the recorded queries at a 1 s step) fires no later than
    # Prometheus did, and Prometheus no later than two evaluation intervals after it.
    with urllib.request.urlopen(f"{chain.prometheus.url}/api/v1/alerts", timeout=5) as resp:
        alerts = json.load(resp)["data"]["alerts"]
    (firing,) = [a for a in alerts if a["labels"]["alertname"] == "RunbookErrorRatioHigh"]
    alert_fired = pd.Timestamp(firing["activeAt"]) + pd.Timedelta(seconds=4)  # for: 4s
    source = PrometheusSource(
        chain.prometheus.url,
        metrics=Metrics(prometheus_selector='job="app"', prometheus_rate_window="4s"),
    )
    now = datetime.now(UTC)
    samples = source.query_range(breach_at - timedelta(seconds=20), now, 1.0)
    decision = evaluate(
        samples,
        deployed_at=breach_at - timedelta(seconds=10),
        now=now,
        rules=Rules(sustain=3.0),
    )
    (trigger,) = [t for t in decision.triggers if t.rule.value == "error_rate"]
    lag = (alert_fired - pd.Timestamp(trigger.fired_at)).total_seconds()
    print(f"Prometheus fired {lag:+.2f} s after the engine's fired_at")
    assert lag <= 2.0


def test_alertmanager_down_then_back_still_delivers_the_alert(chain: Chain) -> None:
    chain.exporter.error_share = 0.2
    assert _wait(chain.firing, 40), chain.prometheus.log_tail()
    # Prometheus tries to send, fails (connection refused) and keeps firing.
    assert _wait(lambda: _notification_errors(chain.prometheus.url) > 0, 30)
    assert chain.firing()
    assert chain.runs.calls == []
    chain.start_alertmanager()
    assert _wait(lambda: chain.runs.calls, 30)
    assert len(chain.runs.calls) == 1
