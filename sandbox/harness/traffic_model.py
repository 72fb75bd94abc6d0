"""The sandbox's simulated API traffic: metrics and request logs that follow the cluster.

A steady stream of requests (seeded RNG, so two runs with the same pods and seed produce the
same outcomes) is spread over the READY pods of ``app=api``; each request behaves like the
version its pod runs (the image tag), as described in ``sandbox/traffic/versions.yaml``. So a
rollout shows a gradual change of error ratio, latency and orders, and a rollback the reverse.

It serves ``/metrics`` (prometheus_client) with ``http_requests_total{code,version}``,
``http_request_duration_seconds{version}`` and ``orders_total``, plus ``/mix`` (JSON: which pods
and versions are serving) for the harness and tests. Request log lines go to
``<state>/logs/api.log`` (every request) and to the serving pod's own log
``<state>/logs/pods/<pod>.log``, which kwok serves as that pod's ``kubectl logs``
(``pod_logs.py``). With ``--otlp-endpoint`` each request is also a trace (``spans.py``).

Run: ``python -m runbook_sandbox.traffic_model --port P --state-dir D --kubeconfig K`` or, without
a cluster, ``--mix v1.0.0=3,v1.1.0=1`` (a fixed set of ready pods).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import signal
import sys
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import yaml
from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app

from runbook_sandbox import paths
from runbook_sandbox.pod_logs import (
    CRASH_ANNOTATION,
    LogsKeeper,
    PodLogs,
    PodRef,
    parse_seconds,
)
from runbook_sandbox.spans import RequestSpans

__all__ = [
    "LATENCY_BUCKETS_S",
    "PodView",
    "Simulator",
    "TrafficConfig",
    "VersionBehaviour",
    "image_version",
    "load_config",
    "main",
    "pod_views",
    "serving_pods",
    "version_mix",
]

log = logging.getLogger("runbook_sandbox.traffic_model")

DEFAULT_CONFIG = paths.traffic_config()
# z-score of the 99th percentile of a standard normal: turns (median, p99) into a log-normal.
_Z99 = 2.326347874
# Finer around the two p99 values the versions produce (0.3 s and 1.8 s), so that
# histogram_quantile's linear interpolation inside a bucket stays within a few percent.
LATENCY_BUCKETS_S = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.275, 0.3, 0.325, 0.35, 0.4, 0.5,
    0.75, 1.0, 1.25, 1.5, 1.65, 1.8, 1.95, 2.1, 2.5, 3.0, 5.0, 10.0,
)  # fmt: skip
NO_POD_VERSION = "none"  # label of requests that found no ready pod (answered 503)
_CODES = ("200", "201", "404", "500", "503")
_TICK_S = 0.1


@dataclass(frozen=True)
class VersionBehaviour:
    """How one version answers: its 5xx share, log-normal latency and order conversion."""

    error_ratio: float
    latency_median_s: float
    latency_p99_s: float
    orders_factor: float = 1.0
    schema: int | None = None

    @property
    def latency_sigma(self) -> float:
        return math.log(self.latency_p99_s / self.latency_median_s) / _Z99


@dataclass(frozen=True)
class TrafficConfig:
    default: str
    request_rate_per_s: float
    order_share: float
    versions: Mapping[str, VersionBehaviour]

    def behaviour(self, version: str) -> VersionBehaviour:
        """The version's behaviour; an unknown version behaves like the default one."""
        return self.versions.get(version) or self.versions[self.default]


def load_config(path: Path = DEFAULT_CONFIG) -> TrafficConfig:
    """Read ``versions.yaml``; raises ``ValueError`` listing every problem found."""
    raw = yaml.safe_load(path.read_text()) or {}
    problems: list[str] = []
    versions: dict[str, VersionBehaviour] = {}
    for name, spec in (raw.get("versions") or {}).items():
        try:
            behaviour = VersionBehaviour(
                error_ratio=float(spec["error_ratio"]),
                latency_median_s=float(spec["latency_median_s"]),
                latency_p99_s=float(spec["latency_p99_s"]),
                orders_factor=float(spec.get("orders_factor", 1.0)),
                schema=int(spec["schema"]) if "schema" in spec else None,
            )
        except (KeyError, TypeError, ValueError) as err:
            problems.append(f"versions.{name}: {type(err).__name__}: {err}")
            continue
        if not 0 <= behaviour.error_ratio <= 1:
            problems.append(f"versions.{name}.error_ratio: {behaviour.error_ratio} not in 0..1")
        if not 0 < behaviour.latency_median_s < behaviour.latency_p99_s:
            problems.append(f"versions.{name}: need 0 < latency_median_s < latency_p99_s")
        versions[str(name)] = behaviour
    default = str(raw.get("default", ""))
    if default not in versions:
        problems.append(f"default: {default!r} is not one of the versions {sorted(versions)}")
    rate = float(raw.get("request_rate_per_s", 200))
    share = float(raw.get("order_share", 0.1))
    if rate <= 0:
        problems.append(f"request_rate_per_s: {rate} must be > 0")
    if not 0 <= share <= 1:
        problems.append(f"order_share: {share} not in 0..1")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return TrafficConfig(default, rate, share, versions)


# --- which pods serve --------------------------------------------------------------------


@dataclass(frozen=True)
class PodView:
    """What the load balancer needs to know about one pod."""

    name: str
    version: str
    ready: bool
    terminating: bool = False
    uid: str = ""
    crash_every_s: float = 0.0  # crash-looping pod: its container restarts this often


def image_version(image: str) -> str:
    """The tag of an image reference: ``registry.local:5000/api:v1.1.0@sha256:..`` -> ``v1.1.0``."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def serving_pods(pods: Iterable[PodView]) -> tuple[PodView, ...]:
    """Pods an endpoint controller would route to: ready and not being deleted, sorted by name."""
    return tuple(sorted((p for p in pods if p.ready and not p.terminating), key=lambda p: p.name))


def version_mix(pods: Iterable[PodView]) -> dict[str, int]:
    """Number of serving pods per version: each pod gets an equal share of the traffic."""
    return dict(sorted(Tally(p.version for p in serving_pods(pods)).items()))


def fixed_pods(mix: Mapping[str, int]) -> tuple[PodView, ...]:
    """Synthetic ready pods for a fixed mix (``{"v1.0.0": 3}`` -> three v1.0.0 pods)."""
    return tuple(
        PodView(f"api-{version.replace('.', '-')}-{i}", version, ready=True)
        for version, count in sorted(mix.items())
        for i in range(count)
    )


def parse_mix(text: str) -> dict[str, int]:
    """``"v1.0.0=3,v1.1.0=1"`` -> ``{"v1.0.0": 3, "v1.1.0": 1}``."""
    mix: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        version, _, count = part.partition("=")
        mix[version] = int(count or "1")
    return mix


# --- the simulation ----------------------------------------------------------------------


class RequestLog:
    """Appends request lines to a file, rotating to ``<file>.1`` so the pair stays bounded."""

    def __init__(self, path: Path, *, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", encoding="utf-8")

    def write(self, lines: Sequence[str]) -> None:
        if not lines:
            return
        # kwok serves this file through the kubelet's log parser, which only accepts the CRI
        # container-log format "<RFC 3339 time> stdout F <message>"; each line's own leading
        # timestamp is reused for it.
        self._fh.write("".join(f"{line.split(' ', 1)[0]} stdout F {line}" for line in lines))
        self._fh.flush()
        if self._fh.tell() >= self.max_bytes:
            self._fh.close()
            self.path.replace(self.path.with_name(self.path.name + ".1"))
            self._fh = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        self._fh.close()


class Simulator:
    """Turns "n more requests happened" into metric updates and log lines."""

    def __init__(
        self,
        config: TrafficConfig,
        *,
        registry: CollectorRegistry,
        seed: int = 1,
        request_log: RequestLog | None = None,
        pod_logs: PodLogs | None = None,
        spans: RequestSpans | None = None,
    ) -> None:
        self.config = config
        self.rng = random.Random(seed)
        self.request_log = request_log
        self.pod_logs = pod_logs
        self.spans = spans
        self.requests = Counter(
            "http_requests_total", "Requests answered, by status code and app version.",
            ["code", "version"], registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            "http_request_duration_seconds", "Request latency by app version.",
            ["version"], buckets=LATENCY_BUCKETS_S, registry=registry,
        )  # fmt: skip
        self.orders = Counter("orders", "Orders placed successfully.", registry=registry)
        self._pods: tuple[PodView, ...] | None = None  # None: no pod listing yet
        self._known: set[str] = set()
        self._warned: set[str] = set()
        self.served = 0

    @property
    def pods(self) -> tuple[PodView, ...] | None:
        return self._pods

    def set_pods(self, pods: Iterable[PodView]) -> None:
        serving = serving_pods(pods)
        for version in {p.version for p in serving} - self._known:
            self._known.add(version)
            if version not in self.config.versions and version not in self._warned:
                self._warned.add(version)
                log.warning("unknown version %s: behaves like %s", version, self.config.default)
            # Every series exists from the start, so rate() sees the first error too.
            for code in _CODES:
                self.requests.labels(code=code, version=version)
            self.duration.labels(version=version)
        self._pods = serving

    def serve(self, n: int, *, now: datetime, span_s: float = 0.0) -> None:
        """Simulate ``n`` requests spread over ``(now - span_s, now]``.

        Nothing happens before the first pod listing (``set_pods``).
        """
        pods = self._pods  # one snapshot: the pod-listing thread may replace it meanwhile
        if pods is None or n <= 0:
            return
        lines = []
        by_pod: dict[str, list[str]] = {}
        for i in range(n):
            at = now - timedelta(seconds=span_s * (n - 1 - i) / n)
            stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            pod, line = self._one(pods, stamp, at)
            lines.append(line)
            if pod != "-":
                by_pod.setdefault(pod, []).append(f"{stamp} stdout F {line}")
        self.served += n
        if self.request_log is not None:
            self.request_log.write(lines)
        if self.pod_logs is not None:
            self.pod_logs.write(by_pod)

    def _one(self, pods: tuple[PodView, ...], stamp: str, at: datetime) -> tuple[str, str]:
        rng = self.rng
        if not pods:
            # No ready pod: the load balancer answers at once, as a real one would.
            code, duration, version, pod = "503", 0.001, NO_POD_VERSION, "-"
            method, path = "GET", "/api/products"
        else:
            chosen = rng.choice(pods)
            version, pod = chosen.version, chosen.name
            b = self.config.behaviour(version)
            is_order = rng.random() < self.config.order_share * b.orders_factor
            method, path = ("POST", "/api/orders") if is_order else ("GET", "/api/products")
            duration = rng.lognormvariate(math.log(b.latency_median_s), b.latency_sigma)
            draw = rng.random()
            if draw < b.error_ratio:
                code = "500" if draw < 0.7 * b.error_ratio else "503"
            elif draw < b.error_ratio + 0.01 and not is_order:
                code = "404"
            else:
                code = "201" if is_order else "200"
            if code == "201":
                self.orders.inc()
        self.requests.labels(code=code, version=version).inc()
        self.duration.labels(version=version).observe(duration)
        if self.spans is not None and pod != "-":
            end_ns = int(at.timestamp() * 1e9)
            self.spans.record(
                version=version, pod=pod, method=method, route=path, code=code,
                start_ns=end_ns - int(duration * 1e9), end_ns=end_ns,
            )  # fmt: skip
        return pod, (
            f"{stamp} method={method} path={path} status={code} "
            f"duration_ms={duration * 1000:.1f} version={version} pod={pod}\n"
        )


# --- the cluster -------------------------------------------------------------------------


def pod_views(items: Iterable[Any]) -> list[PodView]:
    """``PodView``s of the Kubernetes client's ``V1Pod`` objects (version = first image's tag)."""
    views = []
    for pod in items:
        containers = pod.spec.containers or []
        conditions = (pod.status.conditions if pod.status else None) or []
        ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
        version = image_version(containers[0].image) if containers else "unknown"
        terminating = pod.metadata.deletion_timestamp is not None
        crash = parse_seconds((pod.metadata.annotations or {}).get(CRASH_ANNOTATION, ""))
        views.append(
            PodView(pod.metadata.name, version, ready, terminating, pod.metadata.uid or "", crash)
        )
    return views


def watch_pods(
    kubeconfig: Path,
    namespace: str,
    selector: str,
    *,
    interval_s: float,
    stop: threading.Event,
) -> Iterator[list[PodView]]:
    """Poll the pods every ``interval_s``; while the API is unreachable, yield nothing.

    Polling (not a watch) keeps this simple and robust to API-server restarts; at one list a
    second on a handful of pods the cost is negligible.
    """
    from kubernetes import client, config  # imported here: --mix runs need no cluster client

    api = None
    failing = False
    while not stop.is_set():
        try:
            # The kubeconfig may not exist yet when the sandbox starts the model early.
            api = api or client.CoreV1Api(
                config.new_client_from_config(config_file=str(kubeconfig))
            )
            listed = api.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=5)
        except Exception as err:  # any API or network failure: keep the last known pods
            if not failing:
                log.warning("cannot list pods (keeping the last known ones): %s", err)
            failing = True
        else:
            if failing:
                log.info("pod listing works again")
            failing = False
            yield pod_views(listed.items)
        stop.wait(interval_s)


# --- the process -------------------------------------------------------------------------


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes every second: no noise
        pass


def _app(
    registry: CollectorRegistry, sim: Simulator
) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/mix":
            pods = sim.pods
            body = {
                "listed": pods is not None,
                "pods": {p.name: p.version for p in pods or ()},
                "mix": version_mix(pods or ()),
                "served": sim.served,
            }
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"see /metrics or /mix\n"]

    return app


def run(args: argparse.Namespace) -> None:
    config = load_config(Path(args.config))
    rate = args.rate or config.request_rate_per_s
    registry = CollectorRegistry()
    request_log = RequestLog(
        Path(args.state_dir) / "logs" / "api.log", max_bytes=args.log_max_bytes
    )
    pod_logs = PodLogs(Path(args.state_dir), max_bytes=args.log_max_bytes)
    spans = None
    if args.otlp_endpoint:
        spans = RequestSpans(endpoint=args.otlp_endpoint, sample_ratio=args.trace_sample)
    sim = Simulator(
        config,
        registry=registry,
        seed=args.seed,
        request_log=request_log,
        pod_logs=pod_logs,
        spans=spans,
    )
    server = make_server(
        "127.0.0.1", args.port, _app(registry, sim), _ThreadingServer, handler_class=_QuietHandler
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()

    if args.mix:
        sim.set_pods(fixed_pods(parse_mix(args.mix)))
    else:

        def follow() -> None:
            kubeconfig = Path(args.kubeconfig)
            keeper = LogsKeeper(kubeconfig, args.namespace, pod_logs)
            for pods in watch_pods(
                kubeconfig, args.namespace, args.selector, interval_s=args.poll_s, stop=stop
            ):
                sim.set_pods(pods)
                refs = [PodRef(p.name, p.uid, p.crash_every_s) for p in pods if not p.terminating]
                try:
                    keeper.sync(refs)
                except Exception as err:  # the API went away mid-sync: next listing retries
                    log.warning("pod logs: %s", err)

        threading.Thread(target=follow, name="pods", daemon=True).start()

    log.info("traffic model on 127.0.0.1:%d, %.0f req/s", args.port, rate)
    started = time.monotonic()
    due_before = 0
    # Requests due are computed from elapsed time, not per tick, so the rate does not drift.
    while not stop.wait(_TICK_S):
        due = int((time.monotonic() - started) * rate)
        if sim.pods is None:
            due_before = due  # nothing is served (or owed) before the first pod listing
            continue
        pod_logs.pull_injected()
        sim.serve(due - due_before, now=datetime.now(UTC), span_s=_TICK_S)
        due_before = due
    server.shutdown()
    server.server_close()
    request_log.close()
    if spans is not None:
        spans.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="traffic_model", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", required=True, help="request log goes to <dir>/logs")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--kubeconfig", help="follow the ready pods of this cluster")
    source.add_argument("--mix", help="fixed ready pods instead, e.g. v1.0.0=3,v1.1.0=1")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--selector", default="app=api")
    parser.add_argument("--poll-s", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=0.0, help="req/s (default: config)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-max-bytes", type=int, default=8_000_000)
    parser.add_argument(
        "--otlp-endpoint", default="", help="send a trace per request, e.g. http://127.0.0.1:4318"
    )
    parser.add_argument(
        "--trace-sample", type=float, default=0.2, help="share of requests traced (0..1)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
