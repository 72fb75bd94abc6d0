"""The sandbox's tracing backend: Jaeger (v2, ``cmd/jaeger``) with in-memory storage.

``start`` writes ``<state>/tracing/jaeger.yaml`` and runs the pinned, cached ``jaeger``
binary (``runbook sandbox build``) detached, with a pid file beside it; it receives OTLP (the
traffic model's spans) and serves its query API and UI. Every listener is on 127.0.0.1, at
``RUNBOOK_SANDBOX_PORT_BASE`` + 96 (query HTTP: API and UI), +97 (OTLP/HTTP), +98 (OTLP/gRPC),
+99 (query gRPC). The collector's own telemetry is switched off, so no other port is opened
(its default metrics port 8888 would also clash between sandboxes). ``stop`` ends it and
frees the ports; traces live only as long as the process (in-memory storage).
"""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from runbook_sandbox import binaries, metrics_stack, paths
from runbook_sandbox.prometheus_server import ports_in_use

__all__ = [
    "MAX_TRACES",
    "TracingError",
    "otlp_http_url",
    "query_url",
    "render_config",
    "start",
    "status",
    "stop",
]

_NAME = "jaeger"
# About 20 minutes of the model's traffic at its default 20% sampling (40 traces/s), in a
# few hundred MiB at most: traces older than that are dropped first.
MAX_TRACES = 50_000


class TracingError(RuntimeError):
    """Jaeger is not built, a port is taken, or it did not become ready (log named)."""


def _dir(state_dir: Path) -> Path:
    return Path(state_dir) / "tracing"


def query_url() -> str:
    """Jaeger's query API and UI, e.g. ``http://127.0.0.1:19096`` (the runbook's tracing_url)."""
    return f"http://127.0.0.1:{paths.ports().jaeger_query}"


def otlp_http_url() -> str:
    """Where OTLP/HTTP goes (the exporter appends ``/v1/traces``)."""
    return f"http://127.0.0.1:{paths.ports().jaeger_otlp_http}"


def render_config(ports: paths.Ports, *, max_traces: int = MAX_TRACES) -> str:
    """Jaeger's configuration: OTLP in, memory storage, query API out, all on loopback."""
    config = {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["batch"],
                    "exporters": ["jaeger_storage_exporter"],
                }
            },
            # No self-telemetry: it would listen on 8888 (all sandboxes alike) otherwise.
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "info"}},
        },
        "extensions": {
            "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": max_traces}}}},
            "jaeger_query": {
                "storage": {"traces": "memstore"},
                "http": {"endpoint": f"127.0.0.1:{ports.jaeger_query}"},
                "grpc": {"endpoint": f"127.0.0.1:{ports.jaeger_query_grpc}"},
            },
        },
        "receivers": {
            "otlp": {
                "protocols": {
                    "http": {"endpoint": f"127.0.0.1:{ports.jaeger_otlp_http}"},
                    "grpc": {"endpoint": f"127.0.0.1:{ports.jaeger_otlp_grpc}"},
                }
            }
        },
        "processors": {"batch": {}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
    }
    # JSON is YAML; the collector reads either.
    return json.dumps(config, indent=2) + "\n"


def start(state_dir: Path, *, timeout_s: float = 30.0) -> str:
    """Start Jaeger (reusing one already running for this state dir); return its query URL.

    Raises ``TracingError`` (after cleaning up) when the binary is missing, a port is taken
    or it is not ready in time.
    """
    state_dir = Path(state_dir)
    if metrics_stack._running(state_dir, _NAME):
        return query_url()
    stop(state_dir)
    binary = binaries.binary_path("jaeger")
    if not binary.is_file():
        raise TracingError(f"{binary} is missing; run `runbook sandbox build`")
    ports = paths.ports()
    problem = ports_in_use(ports.jaeger_ports())
    if problem:
        raise TracingError(problem)
    work = _dir(state_dir)
    work.mkdir(parents=True, exist_ok=True)
    config = work / "jaeger.yaml"
    config.write_text(render_config(ports))
    log = work / "jaeger.log"
    argv = [str(binary), "--config", str(config)]
    proc = metrics_stack.spawn_recorded(state_dir, _NAME, argv, log=log, cwd=work)
    try:
        _wait_ready(proc, log, timeout_s)
    except BaseException:
        stop(state_dir)
        raise
    return query_url()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _ready() -> bool:
    """Jaeger's query API answers and its OTLP port listens."""
    try:
        with urllib.request.urlopen(f"{query_url()}/api/services", timeout=2) as resp:
            return bool(resp.status == 200) and _listening(paths.ports().jaeger_otlp_http)
    except (urllib.error.URLError, OSError):
        return False


def _wait_ready(proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    late = f"jaeger not ready on {query_url()} after {timeout_s:.0f} s (log: {log})"
    metrics_stack.wait_ready(
        proc, log, _ready, timeout_s=timeout_s, error=TracingError, what="jaeger", late=late
    )


def stop(state_dir: Path, *, timeout_s: float = 10.0) -> None:
    """Stop Jaeger if it runs (its traces go with it); safe to call any time."""
    metrics_stack.stop_recorded(Path(state_dir), _NAME, timeout_s=timeout_s)
    metrics_stack.wait_ports_free(paths.ports().jaeger_ports(), timeout_s=timeout_s)


def status(state_dir: Path) -> dict[str, Any]:
    """Jaeger's pid, whether it runs, its URLs and the services it has traces of."""
    urls = {"query_url": query_url(), "otlp_http_url": otlp_http_url()}
    result, answer = metrics_stack.process_report(
        state_dir, _NAME, urls=urls, ask=f"{query_url()}/api/services"
    )
    result["services"] = (answer.get("data") or []) if isinstance(answer, dict) else None
    return result
