"""The sandbox's Jaeger with the traffic model's spans, without a cluster.

A Jaeger of its own (own state dir and ports) and the traffic model on a fixed pod mix:
spans go in over OTLP, come back through the runbook's adapter, and the trace evidence is
written from them. Needs the pinned jaeger binary (`runbook sandbox build`): skipped
without it, failed when CI=true.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runbook_lib.adapters.traces import JaegerSource
from runbook_lib.evidence.traces import FAILING_JSON, SUMMARY, collect_traces
from runbook_sandbox import binaries, paths, tracing
from runbook_sandbox.prometheus_server import port_is_free
from runbook_sandbox.session_sandbox import spare_port_base

MODEL = Path(binaries.__file__).with_name("traffic_model.py")


@pytest.fixture
def jaeger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[paths.Ports]:
    if not binaries.binary_path("jaeger").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("jaeger is not built: run `make sandbox-build`")
        pytest.skip("run `make sandbox-build` (or `runbook sandbox build`) to enable")
    monkeypatch.setenv("RUNBOOK_SANDBOX_PORT_BASE", str(spare_port_base()))
    ports = paths.ports()
    tracing.start(tmp_path)
    yield ports
    tracing.stop(tmp_path)
    assert all(port_is_free(p) for p in ports.jaeger_ports())


def _served(ports: paths.Ports) -> int:
    """Requests the model has served so far (0 while it is still starting)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ports.traffic}/mix", timeout=2) as r:
            return int(json.load(r)["served"])
    except OSError:
        return 0


def _run_model(ports: paths.Ports, state: Path, requests: int) -> None:
    """Run the model until it has served ``requests`` (its start-up takes what the machine
    gives it), then stop it: it flushes its queued spans on SIGTERM."""
    argv = [
        sys.executable, str(MODEL), "--port", str(ports.traffic), "--state-dir", str(state),
        "--mix", "v1.0.0=2,v1.1.0=2", "--otlp-endpoint", tracing.otlp_http_url(),
        "--trace-sample", "1.0", "--rate", "100",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _served(ports) < requests:
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, f"the model did not serve {requests} requests"
            time.sleep(0.2)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-2000:]


def test_spans_reach_jaeger_and_come_back_through_the_adapter(
    jaeger: paths.Ports, tmp_path: Path
) -> None:
    started = datetime.now(UTC)
    _run_model(jaeger, tmp_path / "model", 300)
    source = JaegerSource(tracing.query_url())
    assert "app" in source.services()
    result = source.find_traces(
        "app", started - timedelta(seconds=5), datetime.now(UTC), limit=5000
    )
    assert len(result.traces) >= 300  # every request served is traced, none is lost
    assert {t.version for t in result.traces} == {"v1.0.0", "v1.1.0"}
    assert {t.pod for t in result.traces} == {
        "api-v1-0-0-0", "api-v1-0-0-1", "api-v1-1-0-0", "api-v1-1-0-1",
    }  # fmt: skip
    by_version = Counter((t.version, t.error) for t in result.traces)
    assert by_version[("v1.1.0", True)] > by_version[("v1.0.0", True)]
    for trace in result.traces:
        assert trace.error == (trace.status_code is not None and trace.status_code >= 500)
    # Each pod's own log file holds the same requests as its traces.
    for pod in ("api-v1-1-0-0", "api-v1-0-0-1"):
        lines = (tmp_path / "model" / "logs" / "pods" / f"{pod}.log").read_text().splitlines()
        assert lines
        assert all(line.endswith(f"pod={pod}") for line in lines)


def test_trace_evidence_from_a_real_jaeger(jaeger: paths.Ports, tmp_path: Path) -> None:
    started = datetime.now(UTC)
    _run_model(jaeger, tmp_path / "model", 300)
    end = datetime.now(UTC)
    result = collect_traces(
        tmp_path / "bundle",
        JaegerSource(tracing.query_url()),
        service="app",
        deployed_at=started - timedelta(seconds=5),
        rollback_at=None,
        end=end,
        redact=str,
    )
    assert result.collected, result.reason
    assert {s.version for s in result.stats} == {"v1.0.0", "v1.1.0"}
    failing = json.loads((tmp_path / "bundle" / FAILING_JSON).read_text())["data"]
    assert 0 < len(failing) <= 20
    codes = {
        tag["value"]
        for raw in failing
        for tag in raw["spans"][0]["tags"]
        if tag["key"] == "http.response.status_code"
    }
    assert codes <= {500, 503}
    assert "| since deploy | v1.1.0 |" in (tmp_path / "bundle" / SUMMARY).read_text()
