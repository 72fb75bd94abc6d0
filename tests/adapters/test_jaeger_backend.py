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
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runbook_lib.adapters.traces import JaegerSource
from runbook_lib.evidence.traces import FAILING_JSON, SUMMARY, collect_traces
from runbook_sandbox import binaries, paths, tracing
from runbook_sandbox.prometheus_server import port_is_free

pytestmark = pytest.mark.sandbox

MODEL = Path(binaries.__file__).with_name("traffic_model.py")


def _free_base() -> int:
    for base in range(30000, 60000, 100):
        if all(port_is_free(base + offset) for offset in (91, 96, 97, 98, 99)):
            return base
    raise RuntimeError("no free port range")


@pytest.fixture
def jaeger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[paths.Ports]:
    if not binaries.binary_path("jaeger").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("jaeger is not built: run `make sandbox-build`")
        pytest.skip("run `make sandbox-build` (or `runbook sandbox build`) to enable")
    monkeypatch.setenv("RUNBOOK_SANDBOX_PORT_BASE", str(_free_base()))
    ports = paths.ports()
    tracing.start(tmp_path)
    yield ports
    tracing.stop(tmp_path)
    assert all(port_is_free(p) for p in ports.jaeger_ports())


def _run_model(ports: paths.Ports, state: Path, seconds: float) -> None:
    argv = [
        sys.executable, str(MODEL), "--port", str(ports.traffic), "--state-dir", str(state),
        "--mix", "v1.0.0=2,v1.1.0=2", "--otlp-endpoint", tracing.otlp_http_url(),
        "--trace-sample", "1.0", "--rate", "100",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(seconds)
    proc.terminate()  # the model flushes its queued spans on SIGTERM
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-2000:]


def test_spans_reach_jaeger_and_come_back_through_the_adapter(
    jaeger: paths.Ports, tmp_path: Path
) -> None:
    started = datetime.now(UTC)
    _run_model(jaeger, tmp_path / "model", 4)
    source = JaegerSource(tracing.query_url())
    assert "app" in source.services()
    result = source.find_traces(
        "app", started - timedelta(seconds=5), datetime.now(UTC), limit=5000
    )
    assert 200 <= len(result.traces) <= 500  # 100 req/s for ~4 s, every request traced
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
    _run_model(jaeger, tmp_path / "model", 3)
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
