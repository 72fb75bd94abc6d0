"""A real Alertmanager group of 200 alerts reaches the receiver whole (loopback).

Debian's Alertmanager, configured by the sandbox harness (``runbook_sandbox.alerting``: the
route, the bearer token, group by alertname, release, namespace), gets 200 alerts of one
group through its own API, and posts them in one notification of a few hundred KiB: many TCP
segments. The receiver (real HTTP, journal, state; the run is the in-process stand-in) must
read all of it: one run for the release, every alert journaled, no failed notification.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from receiver_doubles import FakeDispatch
from served_receiver import ServedReceiver, require_alertmanager

from runbook_sandbox import alerting
from runbook_sandbox.prometheus_server import free_port

GROUP = 200


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServedReceiver, int]]:
    require_alertmanager()
    receiver = ServedReceiver(tmp_path, FakeDispatch())
    port = free_port()
    alerting.start(tmp_path, port=port, receiver=receiver.url)
    try:
        yield receiver, port
    finally:
        alerting.stop(tmp_path, port=port)
        receiver.close()


def _alertmanager(port: int, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if path.startswith("/api") and raw else raw.decode()


def test_a_group_of_200_alerts_arrives_whole(served: tuple[ServedReceiver, int]) -> None:
    receiver, port = served
    now = datetime.now(UTC).isoformat()
    group = [
        {
            "labels": {
                "alertname": "RunbookErrorRatioHigh",
                "release": "app",
                "namespace": "default",
                "pod": f"app-{i:03d}",
            },
            "annotations": {"summary": f"5xx ratio above 1% on pod app-{i:03d} " + "x" * 900},
            "startsAt": now,
            "generatorURL": "http://127.0.0.1:19090/graph",
        }
        for i in range(GROUP)
    ]
    _alertmanager(port, "/api/v2/alerts", group)
    journal = receiver.receiver.state_dir / "journal.jsonl"

    def alerts_journaled() -> list[dict[str, Any]]:
        lines = [json.loads(x) for x in journal.read_text().splitlines()]
        return [e for e in lines if e["event"] == "alert"]

    deadline = time.monotonic() + 60
    while len(alerts_journaled()) < GROUP and time.monotonic() < deadline:
        time.sleep(0.2)
    found = alerts_journaled()
    assert len(found) == GROUP
    assert sorted(e["disposition"] for e in found) == ["coalesced"] * (GROUP - 1) + ["queued"]
    assert receiver.receiver.wait_idle(10)
    assert [c["release"] for c in receiver.runs.calls] == ["app"]
    metrics = _alertmanager(port, "/metrics")
    sent = [
        x
        for x in metrics.splitlines()
        if x.startswith("alertmanager_notifications_total") and 'integration="webhook"' in x
    ]
    failed = [
        x
        for x in metrics.splitlines()
        if x.startswith("alertmanager_notifications_failed_total") and 'integration="webhook"' in x
    ]
    assert sent
    assert float(sent[0].split()[-1]) >= 1
    assert failed
    assert all(float(x.split()[-1]) == 0 for x in failed)
