"""One sandbox as a whole: cluster, release ``app`` and the metrics stack.

``up``/``down``/``status`` implement ``runbook sandbox up|down|status``; ``Sandbox`` is the
handle the tests and the demo use (docs/CONTRACTS.md, "Test fixtures").
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import Any

from runbook_sandbox import (
    alerting,
    binaries,
    cluster,
    pod_delays,
    release,
    tracing,
    traffic_targets,
)
from runbook_sandbox.cluster import ClusterEnv, run

__all__ = ["Sandbox", "down", "status", "up"]

Progress = Callable[[str], None]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _metrics_stack() -> ModuleType | None:
    """The metrics half of the sandbox, when it is present in this checkout."""
    try:
        return importlib.import_module("runbook_sandbox.metrics_stack")
    except ModuleNotFoundError as err:
        if err.name == "runbook_sandbox.metrics_stack":
            return None
        raise


def _endpoints_file(ce: ClusterEnv) -> Path:
    return ce.state / "endpoints.json"


@dataclass(frozen=True)
class Sandbox(ClusterEnv):
    """Handle on a running sandbox: its cluster (kubeconfig, context, binaries, state, ports)
    and the URLs of the services beside it."""

    prometheus_url: str = ""
    traffic_url: str = ""
    tracing_url: str = ""  # Jaeger's query API (the runbook's tracing_url)

    @property
    def state_dir(self) -> Path:
        return self.state

    @property
    def run_parameters(self) -> dict[str, str]:
        """The runbook parameters that point a run at this sandbox: its cluster (the guard,
        the kubeconfig and the context) and its Prometheus."""
        return {
            "expected_cluster": self.context,
            "kubeconfig": str(self.kubeconfig),
            "context": self.context,
            "prometheus_url": self.prometheus_url,
        }

    @property
    def env(self) -> dict[str, str]:
        """Environment with the sandbox's binaries first on PATH and its KUBECONFIG."""
        return dict(self.vars)

    def kubectl(self, *args: str, timeout_s: float = 60.0) -> str:
        """``kubectl --context <sandbox> ARGS``; raises ``CommandFailed`` on a non-zero exit."""
        argv = ["kubectl", "--context", self.context, *args]
        return run(self, argv, timeout_s=timeout_s).stdout

    def helm(self, *args: str, timeout_s: float = 120.0, binary: str = "helm") -> str:
        """``helm --kube-context <sandbox> ARGS`` (``binary="helm4"`` for Helm 4)."""
        return run(self, self.helm_argv(*args, binary=binary), timeout_s=timeout_s).stdout

    def helm_argv(self, *args: str, binary: str = "helm") -> list[str]:
        """The command line of ``helm``, for a helm to start in the background (run with
        ``env``)."""
        return [str(self.bin_dir / binary), "--kube-context", self.context, *args]

    def deploy(
        self,
        version: str,
        *,
        values: Mapping[str, str] | None = None,
        wait: bool = True,
        values_file: Path | None = None,
    ) -> None:
        """Upgrade release ``app`` to ``version`` and migrate (see ``release.deploy``)."""
        release.deploy(self, version, values=values, wait=wait, values_file=values_file)

    def reset(self) -> None:
        """One good revision v1.0.0, schema at v1.0.0, all pods ready."""
        release.reset(self)

    def migrate(self, *args: str) -> str:
        """``kubectl exec migrator -- ./migrate ARGS``; returns its output."""
        return release.migrate(self, *args)


def _attach(ce: ClusterEnv) -> Sandbox:
    urls: dict[str, str] = {}
    if _endpoints_file(ce).exists():
        urls = json.loads(_endpoints_file(ce).read_text())
    return Sandbox(
        **{f.name: getattr(ce, f.name) for f in fields(ClusterEnv)},
        prometheus_url=urls.get("prometheus_url", ""),
        traffic_url=urls.get("traffic_url", ""),
        tracing_url=tracing.query_url(),
    )


def _stop(ce: ClusterEnv) -> None:
    """Stop the metrics stack, Alertmanager, Jaeger and the cluster; forget the endpoints."""
    stack = _metrics_stack()
    if stack is not None:
        stack.stop(ce.state)
    alerting.stop(ce.state)
    tracing.stop(ce.state)
    _endpoints_file(ce).unlink(missing_ok=True)
    cluster.delete(ce)


def up(*, progress: Progress = _say) -> Sandbox:
    """Bring the whole sandbox up, or attach to it if it is already running.

    ``runbook sandbox up``: builds missing binaries, starts the cluster, installs ``app``
    at v1.0.0 with its schema, then starts the metrics stack when present. Raises
    ``CommandFailed`` naming the part that failed.
    """
    started = time.monotonic()
    if binaries.missing_binaries():
        binaries.build(progress=progress)
    ce = cluster.env()
    if cluster.is_running(ce):
        progress(f"sandbox {ce.name!r} already running (context {ce.context})")
    else:
        # Whatever a crashed earlier run left behind, metrics processes included.
        _stop(ce)
        # A new cluster has none of the old one's releases: its traffic starts from the
        # default target again.
        traffic_targets.forget(ce.state)
        progress(f"starting cluster {ce.name!r} on 127.0.0.1:{ce.ports.kube_apiserver}")
        delay = pod_delays.configured_delay_s()
        cluster.create(ce, pod_ready_delay_s=delay)
        progress(f"  control plane and 2 fake nodes ready ({time.monotonic() - started:.1f}s)")
        if delay > 0:
            progress(f"  pods become Ready {delay:g}-{delay * 1.5:g} s after scheduling")
        release.deploy(ce, release.GOOD_VERSION)
        progress(
            f"  release app {release.GOOD_VERSION} deployed ({time.monotonic() - started:.1f}s)"
        )
    # Before the traffic model, so its first spans have somewhere to go.
    tracing_url = tracing.start(ce.state)
    progress(f"  tracing: {tracing_url} ({time.monotonic() - started:.1f}s)")
    stack = _metrics_stack()
    if stack is not None:
        # Returns at once when the stack already runs; restarts it when it died.
        endpoints = stack.start(ce.state, ce.kubeconfig)
        urls = {"prometheus_url": endpoints.prometheus_url, "traffic_url": endpoints.traffic_url}
        _endpoints_file(ce).write_text(json.dumps(urls) + "\n")
        progress(f"  metrics: {endpoints.prometheus_url} ({time.monotonic() - started:.1f}s)")
        alertmanager_url = alerting.start(ce.state)
        progress(f"  alertmanager: {alertmanager_url} ({time.monotonic() - started:.1f}s)")
    elapsed = time.monotonic() - started
    progress(f"sandbox up in {elapsed:.1f}s; export KUBECONFIG={ce.kubeconfig}")
    return _attach(ce)


def attach() -> Sandbox | None:
    """The running sandbox of this environment, or None if it is not up."""
    ce = cluster.env()
    if binaries.missing_binaries() or not cluster.is_running(ce):
        return None
    return _attach(ce)


def down(*, progress: Progress = _say) -> cluster.Leftovers:
    """Stop everything of this sandbox (``runbook sandbox down``); return what survived."""
    ce = cluster.env()
    _stop(ce)
    left = cluster.leftovers(ce)
    if left:
        progress(f"still alive after down: pids {list(left.pids)}, ports {list(left.ports)}")
    else:
        progress(f"sandbox {ce.name!r} stopped: no process left, ports free")
    return left


def status() -> dict[str, Any]:
    """What is running (``runbook sandbox status``), as a JSON-able dict."""
    ce = cluster.env()
    missing = binaries.missing_binaries()
    running = not missing and cluster.is_running(ce)
    info: dict[str, Any] = {
        "name": ce.name,
        "context": ce.context,
        "state_dir": str(ce.state),
        "kubeconfig": str(ce.kubeconfig),
        "bin_dir": str(ce.bin_dir),
        "binaries_missing": missing,
        "cluster_running": running,
        "ports": {
            "kube_apiserver": ce.ports.kube_apiserver,
            "etcd": ce.ports.etcd,
            "prometheus": ce.ports.prometheus,
            "traffic": ce.ports.traffic,
            "alertmanager": ce.ports.alertmanager,
            "jaeger_query": ce.ports.jaeger_query,
            "jaeger_otlp_http": ce.ports.jaeger_otlp_http,
        },
        "bound_ports": cluster.bound_ports(ce.ports.all_ports()),
        "pids": cluster.leftovers(ce).pids,
    }
    if running:
        info["history"] = [
            {k: r.get(k) for k in ("revision", "status", "app_version", "description")}
            for r in release.history(ce)
        ]
    stack = _metrics_stack()
    if stack is not None:
        info["metrics"] = stack.status(ce.state)
    info["alertmanager"] = alerting.status(ce.state)
    if running:
        try:
            info["pod_ready_delay_s"] = pod_delays.current_delay_s(cluster._cluster_dir(ce))
        except (OSError, pod_delays.PodDelayError):
            info["pod_ready_delay_s"] = None
    info["tracing"] = tracing.status(ce.state)
    return info
