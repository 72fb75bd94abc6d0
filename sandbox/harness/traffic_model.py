"""The sandbox's simulated API traffic: metrics and request logs that follow the cluster.

For each *target* (a release's pods: namespace + label selector; ``traffic_targets.py``) a
steady stream of requests (seeded RNG, so two runs with the same pods and seed produce the same
outcomes) is spread over the target's READY pods; each request behaves like the version its
pod runs (the image tag, ``sandbox/traffic/versions.yaml``) unless an override of that target
matches the pod (its ``pod-template-hash`` or image). So a rollout shows a gradual change of
error ratio, latency and orders, and a rollback the reverse. The default target is the
sandbox's release ``app`` (namespace ``default``, pods ``app=api``); more are added at run time
through the control API (``traffic_api.py``; client: ``traffic_control.py``).

It serves ``/metrics`` with each target's series in its dialect (``traffic_metrics.py``), all
labelled ``release`` and ``namespace``, plus ``/mix`` (JSON: which pods and versions serve, per
target). Request log lines go to ``<state>/logs/api.log`` (the default target;
``<state>/logs/requests/<namespace>/<release>.log`` for others) and to the serving pod's own
log, which kwok serves as that pod's ``kubectl logs`` (``pod_logs.py``). With
``--otlp-endpoint`` each request of a traced target is also a trace (``spans.py``).

Run: ``python -m runbook_sandbox.traffic_model --port P --state-dir D --kubeconfig K`` or, without
a cluster, ``--mix v1.0.0=3,v1.1.0=1`` (a fixed set of ready pods for the default target).
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry

from runbook_sandbox.pod_logs import (
    CRASH_ANNOTATION,
    LogsKeeper,
    PodLogs,
    PodRef,
    parse_seconds,
)
from runbook_sandbox.spans import RequestSpans
from runbook_sandbox.traffic_config import (
    DEFAULT_CONFIG,
    PodView,
    TrafficConfig,
    VersionBehaviour,
    fixed_pods,
    image_version,
    load_config,
    parse_mix,
    serving_pods,
    version_mix,
)
from runbook_sandbox.traffic_metrics import (
    LATENCY_BUCKETS_S,
    NO_POD_VERSION,
    ROUTES,
    Tally,
    TrafficCollector,
)
from runbook_sandbox.traffic_targets import (
    DEFAULT_TARGET,
    DefaultTargetError,
    Override,
    Target,
    TargetStore,
    behaviour_of,
)

__all__ = [
    "LATENCY_BUCKETS_S",
    "NO_POD_VERSION",
    "PodView",
    "Simulator",
    "TrafficConfig",
    "TrafficModel",
    "VersionBehaviour",
    "fixed_pods",
    "image_version",
    "load_config",
    "main",
    "parse_mix",
    "pod_views",
    "serving_pods",
    "version_mix",
]

log = logging.getLogger("runbook_sandbox.traffic_model")

_TICK_S = 0.1


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


@dataclass(frozen=True)
class _Serving:
    """A serving pod with its behaviour resolved once (not per request)."""

    pod: PodView
    behaviour: VersionBehaviour
    override: Override | None
    log_median: float
    sigma: float


class Simulator:
    """One target's traffic: turns "n more requests happened" into tallies and log lines.

    With ``registry`` it exposes its own series there (tests); the model process instead
    renders every target's tally through one ``TrafficCollector``.
    """

    def __init__(
        self,
        config: TrafficConfig,
        *,
        registry: CollectorRegistry | None = None,
        target: Target = DEFAULT_TARGET,
        seed: int | str = 1,
        request_log: RequestLog | None = None,
        pod_logs: PodLogs | None = None,
        spans: RequestSpans | None = None,
        overrides: Sequence[Override] = (),
    ) -> None:
        self.config = config
        self.target = target
        self.rng = random.Random(seed)
        self.request_log = request_log
        self.pod_logs = pod_logs
        self.spans = spans
        self.tally = Tally()
        self._overrides = tuple(overrides)
        self._pods: tuple[PodView, ...] | None = None  # None: no pod listing yet
        self._table: tuple[_Serving, ...] = ()
        self._resolve = threading.Lock()  # pods (listing thread) and overrides (API) both change
        self._known: set[str] = set()
        self._warned: set[str] = set()
        self.served = 0
        if registry is not None:
            registry.register(TrafficCollector(lambda: [(self.target, self.tally)]))

    @property
    def pods(self) -> tuple[PodView, ...] | None:
        return self._pods

    @property
    def overrides(self) -> tuple[Override, ...]:
        return self._overrides

    def set_pods(self, pods: Iterable[PodView]) -> None:
        serving = serving_pods(pods)
        with self.tally.lock:
            for version in {p.version for p in serving} - self._known:
                self._known.add(version)
                self.tally.ensure(version)
        self._resolve_pods(serving, self._overrides)

    def set_overrides(self, overrides: Sequence[Override]) -> None:
        self._resolve_pods(self._pods, tuple(overrides))

    def _resolve_pods(
        self, pods: tuple[PodView, ...] | None, overrides: tuple[Override, ...]
    ) -> None:
        with self._resolve:
            table = []
            for pod in pods or ():
                behaviour, override = behaviour_of(pod, self.config, overrides)
                unknown = override is None and pod.version not in self.config.versions
                if unknown and pod.version not in self._warned:
                    self._warned.add(pod.version)
                    log.warning(
                        "unknown version %s: behaves like %s", pod.version, self.config.default
                    )
                table.append(
                    _Serving(
                        pod,
                        behaviour,
                        override,
                        math.log(behaviour.latency_median_s),
                        behaviour.latency_sigma,
                    )
                )
            self._overrides = overrides
            # The table first: serve() checks _pods, then reads the table.
            self._table = tuple(table)
            self._pods = pods

    def overridden(self) -> dict[str, dict[str, str]]:
        """Serving pods an override matches: pod name -> the override's match."""
        return {
            s.pod.name: {str(s.override.kind): s.override.value}
            for s in self._table
            if s.override is not None
        }

    def serve(self, n: int, *, now: datetime, span_s: float = 0.0) -> None:
        """Simulate ``n`` requests spread over ``(now - span_s, now]``.

        Nothing happens before the first pod listing (``set_pods``).
        """
        if self._pods is None or n <= 0:
            return
        table = self._table  # one snapshot: the listing thread may replace it meanwhile
        lines = []
        by_pod: dict[str, list[str]] = {}
        orders = 0
        with self.tally.lock:
            for i in range(n):
                at = now - timedelta(seconds=span_s * (n - 1 - i) / n)
                stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                pod, code, line = self._one(table, stamp, at)
                orders += code == "201"
                lines.append(line)
                if pod != "-":
                    by_pod.setdefault(pod, []).append(f"{stamp} stdout F {line}")
            end = now.timestamp()
            self.tally.add_orders(orders, start=end - span_s, end=end)
        self.served += n
        if self.request_log is not None:
            self.request_log.write(lines)
        if self.pod_logs is not None:
            self.pod_logs.write(by_pod)

    def _one(self, table: tuple[_Serving, ...], stamp: str, at: datetime) -> tuple[str, str, str]:
        rng = self.rng
        if not table:
            # No ready pod: the load balancer answers at once, as a real one would.
            code, duration, version, pod, method = "503", 0.001, NO_POD_VERSION, "-", "GET"
        else:
            chosen = rng.choice(table)
            version, pod, b = chosen.pod.version, chosen.pod.name, chosen.behaviour
            is_order = rng.random() < self.config.order_share * b.orders_factor
            method = "POST" if is_order else "GET"
            duration = rng.lognormvariate(chosen.log_median, chosen.sigma)
            draw = rng.random()
            if draw < b.error_ratio:
                code = "500" if draw < 0.7 * b.error_ratio else "503"
            elif draw < b.error_ratio + 0.01 and not is_order:
                code = "404"
            else:
                code = "201" if is_order else "200"
        path = ROUTES[method]
        self.tally.observe(version, code, method, duration)
        if self.spans is not None and pod != "-":
            end_ns = int(at.timestamp() * 1e9)
            self.spans.record(
                version=version, pod=pod, method=method, route=path, code=code,
                start_ns=end_ns - int(duration * 1e9), end_ns=end_ns,
            )  # fmt: skip
        return (
            pod,
            code,
            (
                f"{stamp} method={method} path={path} status={code} "
                f"duration_ms={duration * 1000:.1f} version={version} pod={pod}\n"
            ),
        )


# --- the cluster -------------------------------------------------------------------------


def pod_views(items: Iterable[Any]) -> list[PodView]:
    """``PodView``s of the Kubernetes client's ``V1Pod`` objects (version = first image's tag)."""
    views = []
    for pod in items:
        containers = pod.spec.containers or []
        conditions = (pod.status.conditions if pod.status else None) or []
        ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
        image = containers[0].image if containers else ""
        version = image_version(image) if containers else "unknown"
        meta = pod.metadata
        crash = parse_seconds((meta.annotations or {}).get(CRASH_ANNOTATION, ""))
        views.append(
            PodView(
                meta.name,
                version,
                ready,
                terminating=meta.deletion_timestamp is not None,
                uid=meta.uid or "",
                crash_every_s=crash,
                template_hash=(meta.labels or {}).get("pod-template-hash", ""),
                image=image or "",
                container=containers[0].name if containers else "api",
            )
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
                log.warning("cannot list pods in %s (keeping the last known): %s", namespace, err)
            failing = True
        else:
            if failing:
                log.info("pod listing of %s works again", namespace)
            failing = False
            yield pod_views(listed.items)
        stop.wait(interval_s)


# --- many targets in one process ---------------------------------------------------------


@dataclass
class _Runtime:
    target: Target
    sim: Simulator
    pod_logs: PodLogs
    request_log: RequestLog
    spans: RequestSpans | None
    stop: threading.Event
    started: float  # monotonic
    due_before: int = 0
    # Held while serving: a target being stopped closes its log only between two ticks.
    serving: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class ModelOptions:
    state_dir: Path
    rate: float  # req/s of a target that sets none
    seed: int = 1
    kubeconfig: Path | None = None  # None: only fixed pods (``fixed_mix``, targets' ``mix``)
    fixed_mix: Mapping[str, int] | None = None  # the default target's pods without a cluster
    poll_s: float = 1.0
    log_max_bytes: int = 8_000_000
    otlp_endpoint: str = ""
    trace_sample: float = 0.2
    default_target: Target = DEFAULT_TARGET  # the sandbox's own release; never removed


class TrafficModel:
    """Every target's simulator, pod follower and logs; kept in the state dir across restarts.

    Thread-safe: the control API's threads change targets while the main loop ticks.
    """

    def __init__(self, config: TrafficConfig, options: ModelOptions) -> None:
        self.config = config
        self.options = options
        self.registry = CollectorRegistry()
        self.registry.register(TrafficCollector(self._tallies))
        self.store = TargetStore(options.state_dir, config)
        self._lock = threading.RLock()
        self._runtimes: dict[str, _Runtime] = {}
        self._overrides: dict[str, list[Override]] = {}
        self._pod_logs: dict[str, PodLogs] = {}

    def start(self) -> None:
        targets, overrides = self.store.load(self.options.default_target)
        with self._lock:
            self._overrides = overrides
            for target in targets:
                self._runtimes[target.key] = self._start(target)

    def close(self) -> None:
        with self._lock:
            runtimes = list(self._runtimes.values())
            self._runtimes.clear()
        for rt in runtimes:
            self._stop(rt, wait=True)

    # --- what the control API calls ---

    def targets(self) -> list[Target]:
        with self._lock:
            return [rt.target for rt in self._runtimes.values()]

    def put_target(self, target: Target) -> bool:
        """Add ``target`` or replace the one with its key; True when it is new.

        A replaced target starts afresh (its counters from zero, which rate() reads as a
        counter reset), keeping its overrides and, when it selects the same pods, its pods.
        """
        with self._lock:
            old = self._runtimes.get(target.key)
            if old is not None and old.target == target:
                return False
            carried = None
            if old is not None and (old.target.namespace, old.target.selector, old.target.mix) == (
                target.namespace, target.selector, target.mix,
            ):  # fmt: skip
                carried = old.sim.pods
            if old is not None:
                self._stop(old, wait=False)
            self._runtimes[target.key] = self._start(target, pods=carried)
            self._save()
            return old is None

    def remove_target(self, key: str) -> bool:
        if key == self.options.default_target.key:
            raise DefaultTargetError(
                f"{key} is the sandbox's own release: change it with PUT, it cannot be removed"
            )
        with self._lock:
            rt = self._runtimes.pop(key, None)
            self._overrides.pop(key, None)
            if rt is None:
                return False
            self._save()
        self._stop(rt, wait=False)
        return True

    def overrides(self) -> dict[str, list[Override]]:
        with self._lock:
            return {k: list(v) for k, v in self._overrides.items() if v}

    def put_override(self, key: str, override: Override) -> None:
        """Add ``override`` to target ``key``, replacing one with the same match.

        Raises ``KeyError`` when there is no such target.
        """
        with self._lock:
            rt = self._runtimes[key]
            kept = [
                o
                for o in self._overrides.get(key, [])
                if (o.kind, o.value) != (override.kind, override.value)
            ]
            self._overrides[key] = [*kept, override]
            rt.sim.set_overrides(self._overrides[key])
            self._save()

    def clear_overrides(self, key: str, match: Mapping[str, str] | None = None) -> int:
        """Remove target ``key``'s overrides (only the one with ``match`` when given).

        Returns how many were removed; raises ``KeyError`` when there is no such target.
        """
        with self._lock:
            rt = self._runtimes[key]
            current = self._overrides.get(key, [])
            kept = [
                o for o in current if match is not None and match.get(str(o.kind), None) != o.value
            ]
            self._overrides[key] = kept
            rt.sim.set_overrides(kept)
            self._save()
            return len(current) - len(kept)

    def mix(self) -> dict[str, Any]:
        """Which pods serve, per target; the default target's also at the top level."""
        with self._lock:
            runtimes = list(self._runtimes.values())
        per_target = {rt.target.key: _target_mix(rt) for rt in runtimes}
        default = per_target.get(self.options.default_target.key, {})
        return {
            "listed": default.get("listed", False),
            "pods": default.get("pods", {}),
            "mix": default.get("mix", {}),
            "served": default.get("served", 0),
            "targets": per_target,
        }

    # --- the request loop ---

    def tick(self) -> None:
        """Serve every target's requests that are due by now."""
        now_mono = time.monotonic()
        now = datetime.now(UTC)
        with self._lock:
            runtimes = list(self._runtimes.values())
            pod_logs = list(self._pod_logs.values())
        for logs in pod_logs:
            logs.pull_injected()
        for rt in runtimes:
            # Requests due are computed from elapsed time, not per tick, so the rate does
            # not drift; nothing is served (or owed) before the first pod listing.
            due = int((now_mono - rt.started) * (rt.target.rate or self.options.rate))
            with rt.serving:
                if rt.sim.pods is not None and not rt.stop.is_set():
                    rt.sim.serve(due - rt.due_before, now=now, span_s=_TICK_S)
            rt.due_before = due

    # --- internals ---

    def _tallies(self) -> list[tuple[Target, Tally]]:
        with self._lock:
            return [(rt.target, rt.sim.tally) for rt in self._runtimes.values()]

    def _save(self) -> None:
        self.store.save(self.targets(), self._overrides)

    def _namespace_logs(self, namespace: str) -> PodLogs:
        logs = self._pod_logs.get(namespace)
        if logs is None:
            logs = PodLogs(
                self.options.state_dir, max_bytes=self.options.log_max_bytes, namespace=namespace
            )
            self._pod_logs[namespace] = logs
        return logs

    def _start(self, target: Target, *, pods: Sequence[PodView] | None = None) -> _Runtime:
        opts = self.options
        is_default = target.key == opts.default_target.key
        logs_dir = opts.state_dir / "logs"
        log_path = (
            logs_dir / "api.log"
            if is_default
            else logs_dir / "requests" / target.namespace / f"{target.release}.log"
        )
        request_log = RequestLog(log_path, max_bytes=opts.log_max_bytes)
        spans = None
        if opts.otlp_endpoint and target.traced:
            spans = RequestSpans(
                endpoint=opts.otlp_endpoint,
                sample_ratio=opts.trace_sample,
                service=target.release,
                namespace=target.namespace,
            )
        pod_logs = self._namespace_logs(target.namespace)
        sim = Simulator(
            self.config,
            target=target,
            # The default target keeps the plain seed, so its traffic is what it always was.
            seed=opts.seed if is_default else f"{opts.seed}/{target.key}",
            request_log=request_log,
            pod_logs=pod_logs,
            spans=spans,
            overrides=self._overrides.get(target.key, ()),
        )
        rt = _Runtime(
            target, sim, pod_logs, request_log, spans, threading.Event(), time.monotonic()
        )
        fixed = target.mix or (opts.fixed_mix if is_default else None)
        if fixed:
            sim.set_pods(fixed_pods(fixed, prefix="api" if is_default else target.release))
        elif pods is not None:
            sim.set_pods(pods)
        if not fixed and opts.kubeconfig is not None:
            threading.Thread(
                target=self._follow, args=(rt, opts.kubeconfig), name=f"pods {target.key}",
                daemon=True,
            ).start()  # fmt: skip
        return rt

    def _follow(self, rt: _Runtime, kubeconfig: Path) -> None:
        target = rt.target
        keeper = LogsKeeper(kubeconfig, target.namespace, rt.pod_logs)
        for pods in watch_pods(
            kubeconfig, target.namespace, target.selector, interval_s=self.options.poll_s,
            stop=rt.stop,
        ):  # fmt: skip
            rt.sim.set_pods(pods)
            refs = [
                PodRef(p.name, p.uid, p.crash_every_s, p.container)
                for p in pods
                if not p.terminating
            ]
            try:
                keeper.sync(refs)
            except Exception as err:  # the API went away mid-sync: next listing retries
                log.warning("pod logs of %s: %s", target.key, err)

    def _stop(self, rt: _Runtime, *, wait: bool) -> None:
        rt.stop.set()

        def finish() -> None:
            with rt.serving:
                rt.request_log.close()
            if rt.spans is not None:
                rt.spans.shutdown()  # bounded by the exporter's timeout

        if wait:
            finish()
        else:  # an API request should not wait for queued spans to be flushed
            threading.Thread(target=finish, name="stop target", daemon=True).start()


def _target_mix(rt: _Runtime) -> dict[str, Any]:
    pods = rt.sim.pods
    return {
        "target": rt.target.to_json(),
        "listed": pods is not None,
        "pods": {p.name: p.version for p in pods or ()},
        "mix": version_mix(pods or ()),
        "overridden": rt.sim.overridden(),
        "served": rt.sim.served,
    }


# --- the process -------------------------------------------------------------------------


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes every second: no noise
        pass


def run(args: argparse.Namespace) -> None:
    from runbook_sandbox.traffic_api import make_app

    config = load_config(Path(args.config))
    options = ModelOptions(
        state_dir=Path(args.state_dir),
        rate=args.rate or config.request_rate_per_s,
        seed=args.seed,
        kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
        fixed_mix=parse_mix(args.mix) if args.mix else None,
        poll_s=args.poll_s,
        log_max_bytes=args.log_max_bytes,
        otlp_endpoint=args.otlp_endpoint,
        trace_sample=args.trace_sample,
        default_target=replace(DEFAULT_TARGET, namespace=args.namespace, selector=args.selector),
    )
    model = TrafficModel(config, options)
    model.start()
    server = make_server(
        "127.0.0.1", args.port, make_app(model), _ThreadingServer, handler_class=_QuietHandler
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    log.info(
        "traffic model on 127.0.0.1:%d, %.0f req/s, targets %s",
        args.port, options.rate, [t.key for t in model.targets()],
    )  # fmt: skip
    while not stop.wait(_TICK_S):
        model.tick()
    server.shutdown()
    server.server_close()
    model.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="traffic_model", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", required=True, help="request log goes to <dir>/logs")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--kubeconfig", help="follow the ready pods of this cluster")
    source.add_argument("--mix", help="fixed ready pods instead, e.g. v1.0.0=3,v1.1.0=1")
    parser.add_argument("--namespace", default="default", help="the default target's namespace")
    parser.add_argument("--selector", default="app=api", help="the default target's pods")
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
