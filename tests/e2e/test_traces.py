"""The sandbox's Jaeger, the traffic model's spans and the trace evidence."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sandbox_waits import model_serves_only, wait_until

from runbook_lib.adapters.traces import JaegerSource, TraceQuery
from runbook_lib.evidence.traces import FAILING_JSON, PLOT, SLOWEST_JSON, SUMMARY, collect_traces
from runbook_sandbox import Sandbox, paths, status


def _listening_sockets(pid: int) -> set[tuple[str, int]]:
    """(address, port) of the TCP sockets ``pid`` listens on (from /proc, IPv4 and IPv6)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            addr_hex, port_hex = local.split(":")
            if len(addr_hex) == 8:
                addr = ".".join(str(int(addr_hex[i : i + 2], 16)) for i in (6, 4, 2, 0))
            else:
                addr = (
                    "::1"
                    if addr_hex.endswith("01000000") and set(addr_hex[:24]) == {"0"}
                    else addr_hex
                )
            found.add((addr, int(port_hex, 16)))
    return found


def _wait_traces(query: Callable[[], TraceQuery], timeout_s: float = 30) -> TraceQuery:
    deadline = time.monotonic() + timeout_s
    while True:
        result: TraceQuery = query()
        if result.traces or time.monotonic() > deadline:
            return result
        time.sleep(1)


def test_jaeger_runs_on_loopback_only_and_status_shows_it(sandbox: Sandbox) -> None:
    deadline = time.monotonic() + 20
    tracing = status()["tracing"]
    while "app" not in (tracing["services"] or []) and time.monotonic() < deadline:
        time.sleep(1)  # the model's first spans may still be on their way
        tracing = status()["tracing"]
    assert tracing["running"]
    assert tracing["query_url"] == sandbox.tracing_url
    assert "app" in (tracing["services"] or [])
    listening = _listening_sockets(tracing["pid"])
    assert listening
    assert {addr for addr, _ in listening} == {"127.0.0.1"}
    assert {port for _, port in listening} <= set(paths.ports().jaeger_ports())


def test_each_request_is_a_trace_with_version_pod_route_and_status(clean_sandbox: Sandbox) -> None:
    source = JaegerSource(clean_sandbox.tracing_url)

    def api_pods() -> set[str]:
        listed = json.loads(clean_sandbox.kubectl("get", "pods", "-l", "app=api", "-o", "json"))
        return {p["metadata"]["name"] for p in listed["items"]}

    # Only requests served after the reset: an earlier test's pods and versions may still be
    # in the seconds before it.
    pods = api_pods()
    now = datetime.now(UTC)
    result = _wait_traces(lambda: source.find_traces("app", now, datetime.now(UTC), limit=200))
    pods |= api_pods()
    assert result.traces
    for trace in result.traces:
        assert trace.service == "app"
        assert trace.version == "v1.0.0"
        assert trace.route in ("/api/products", "/api/orders")
        assert trace.operation.endswith(trace.route)
        assert trace.status_code is not None
        assert trace.duration_s > 0
    assert {t.pod for t in result.traces} <= pods


def test_trace_evidence_of_a_bad_deploy_and_its_rollback(
    clean_sandbox: Sandbox, tmp_path: Path
) -> None:
    sb = clean_sandbox
    source = JaegerSource(sb.tracing_url)
    deployed_at = datetime.now(UTC)
    sb.deploy("v1.1.0")
    # Jaeger holds failing requests of the bad version (the model exports spans in batches).
    wait_until(
        lambda: any(
            t.version == "v1.1.0" and t.error
            for t in source.find_traces("app", deployed_at, datetime.now(UTC), limit=500).traces
        ),
        "failing v1.1.0 traces in Jaeger",
    )
    rollback_at = datetime.now(UTC)
    sb.helm("rollback", "app", "1", "--wait")
    model_serves_only(sb, "v1.0.0")
    settled = datetime.now(UTC)
    # Then requests served once only v1.0.0 pods were left: Jaeger must show no other version.
    wait_until(
        lambda: source.find_traces("app", settled, datetime.now(UTC), limit=500).traces,
        "traces served after the rollback",
    )
    end = datetime.now(UTC)
    result = collect_traces(
        tmp_path,
        source,
        service="app",
        deployed_at=deployed_at,
        rollback_at=rollback_at,
        end=end,
        redact=str,
        prometheus={"deploy window": (0.03, 1.6)},
    )
    assert result.collected, result.reason
    by_period = {(s.period, s.version): s for s in result.stats}
    bad = by_period[("deploy window", "v1.1.0")]
    assert bad.errors > 0
    # After the rollback has settled, nothing of v1.1.0 is served any more.
    late = source.find_traces("app", settled, end, limit=500)
    assert late.traces
    assert {t.version for t in late.traces} == {"v1.0.0"}
    failing_doc = json.loads((tmp_path / FAILING_JSON).read_text())
    assert failing_doc["data"]
    for raw in failing_doc["data"]:  # Jaeger's own format: spans and processes
        assert raw["spans"]
        assert raw["processes"]
    failing_versions = {
        tag["value"]
        for raw in failing_doc["data"]
        for tag in raw["spans"][0]["tags"]
        if tag["key"] == "service.version"
    }
    assert "v1.1.0" in failing_versions
    assert json.loads((tmp_path / SLOWEST_JSON).read_text())["data"]
    summary = (tmp_path / SUMMARY).read_text()
    assert "| deploy window | v1.1.0 |" in summary
    assert "| 3 % |" in summary  # Prometheus' figure beside the traces'
    assert (tmp_path / PLOT).stat().st_size > 10_000


def test_jaeger_down_means_traces_not_collected(sandbox: Sandbox, tmp_path: Path) -> None:
    from runbook_sandbox import tracing

    tracing.stop(sandbox.state_dir)
    try:
        now = datetime.now(UTC)
        result = collect_traces(
            tmp_path,
            JaegerSource(sandbox.tracing_url, timeout_s=2),
            service="app",
            deployed_at=now - timedelta(minutes=5),
            rollback_at=now - timedelta(minutes=1),
            end=now,
            redact=str,
        )
        assert not result.collected
        assert "not reachable" in result.reason
        assert "Traces were not collected" in (tmp_path / SUMMARY).read_text()
    finally:
        tracing.start(sandbox.state_dir)
