"""The sandbox's traffic model: what Prometheus sees for each version mix, and its request log.

Real processes: traffic models with fixed pod mixes (no cluster needed) scraped by a real
Prometheus, read back through ``PrometheusSource``, in each metric dialect (the runbook's
queries built from another dialect's names). Expected values come from
``sandbox/traffic/versions.yaml``; tolerances from the number of simulated requests. Then the
pure parts: exposition text per dialect, behaviour overrides, targets kept across restarts.
(Following the cluster's pods is proven end to end by the sandbox tests in ``tests/e2e``.)
"""

from __future__ import annotations

import logging
import math
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from runbook_lib.adapters.prometheus import PrometheusSource
from runbook_lib.core.promql import Metrics
from runbook_sandbox import metrics_stack, traffic_control
from runbook_sandbox.prometheus_server import (
    PrometheusServer,
    ScrapeTarget,
    free_port,
    port_is_free,
)
from runbook_sandbox.traffic_metrics import LATENCY_BUCKETS_MS, LATENCY_BUCKETS_S
from runbook_sandbox.traffic_model import (
    NO_POD_VERSION,
    PodView,
    RequestLog,
    Simulator,
    fixed_pods,
    image_version,
    load_config,
    pod_views,
    version_mix,
)
from runbook_sandbox.traffic_targets import (
    DEFAULT_TARGET,
    Dialect,
    Target,
    TargetStore,
    behaviour_of,
    parse_override,
    parse_target,
)

CONFIG = load_config()
GOOD, BAD = "v1.0.0", "v1.1.0"
RATE = 1000.0  # req/s per model: enough requests in a 20 s window for tight tolerances
WINDOW_S = 20
MIXES: dict[str, dict[str, int]] = {
    "good": {GOOD: 3},
    "bad": {BAD: 3},
    "mixed": {GOOD: 3, BAD: 1},
}
# A second target beside the default one in two of the models, in another dialect:
# dialect -> (job, release, version of its fixed pods).
DIALECT_TARGETS = {"otel": ("bad", "shop", BAD), "istio": ("good", "mesh", GOOD)}
DIALECT_RATE = 500.0
PrometheusFactory = Callable[[Sequence[ScrapeTarget]], PrometheusServer]  # conftest fixture
# CRI container-log format (what kwok's ClusterLogs parses): "<time> stdout F <message>".
LOG_LINE = re.compile(
    r"^(?P<cri_ts>\S+) stdout F "
    r"(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) method=(?P<method>GET|POST) "
    r"path=(?P<path>/\S+) status=(?P<status>\d{3}) duration_ms=(?P<ms>\d+\.\d) "
    r"version=(?P<version>\S+) pod=(?P<pod>\S+)$"
)


def expected_error_ratio(mix: Mapping[str, int]) -> float:
    pods = sum(mix.values())
    return sum(n * CONFIG.behaviour(v).error_ratio for v, n in mix.items()) / pods


def orders_per_request(version: str) -> float:
    """An order is counted when it succeeds: order share x version factor x (1 - 5xx ratio)."""
    b = CONFIG.behaviour(version)
    return CONFIG.order_share * b.orders_factor * (1 - b.error_ratio)


def tolerance(p: float, n: float, sigmas: float = 5.0) -> float:
    """Half-width for a proportion ``p`` estimated from ``n`` independent requests."""
    return sigmas * math.sqrt(p * (1 - p) / n)


@dataclass(frozen=True)
class Model:
    port: int
    state_dir: Path
    process: subprocess.Popen[bytes]


def start_model(
    state_dir: Path, mix: Mapping[str, int], *, rate: float, extra: Sequence[str] = ()
) -> Model:
    port = free_port()
    argv = [
        sys.executable, "-m", "runbook_sandbox.traffic_model", "--port", str(port),
        "--state-dir", str(state_dir), "--rate", str(rate),
        "--mix", ",".join(f"{v}={n}" for v, n in mix.items()), *extra,
    ]  # fmt: skip
    stderr = (state_dir / "model.log").open("wb")
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr)
    stderr.close()
    return Model(port, state_dir, process)


def stop_model(model: Model) -> None:
    model.process.terminate()
    model.process.wait(10)


def wait_for_api(model: Model, timeout_s: float = 30.0) -> str:
    """The model's URL, once its control API answers."""
    url = f"http://127.0.0.1:{model.port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            traffic_control.targets(url)
            return url
        except traffic_control.TrafficControlError:
            if model.process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="module")
def traffic(
    start_prometheus: PrometheusFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PrometheusServer, dict[str, Model]]]:
    """Three models (good, bad, mixed) scraped by one Prometheus for a full rate window."""
    models = {
        job: start_model(tmp_path_factory.mktemp(job), mix, rate=RATE) for job, mix in MIXES.items()
    }
    try:
        for dialect, (job, release, version) in DIALECT_TARGETS.items():
            url = wait_for_api(models[job])
            traffic_control.add_target(
                url, release=release, namespace="team", dialect=dialect, rate=DIALECT_RATE,
                mix={version: 3},
            )  # fmt: skip
        prom = start_prometheus(
            [ScrapeTarget(job, f"127.0.0.1:{m.port}") for job, m in models.items()]
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            counts = prom.query("count_over_time(up[1m])")
            if (
                len(counts) == len(MIXES)
                and min(float(c["value"][1]) for c in counts) > WINDOW_S + 2
            ):
                break
            time.sleep(1)
        else:
            pytest.fail(f"Prometheus did not collect {WINDOW_S + 2} s of all three models")
        yield prom, models
    finally:
        for model in models.values():
            stop_model(model)


def latest(prom: PrometheusServer, job: str) -> Mapping[str, float]:
    metrics = Metrics(
        prometheus_selector=f'job="{job}"',
        prometheus_rate_window=f"{WINDOW_S}s",
        business_queries={
            "orders_per_request": f'sum(rate(orders_total{{job="{job}"}}[{WINDOW_S}s])) / '
            f'sum(rate(http_requests_total{{job="{job}"}}[{WINDOW_S}s]))'
        },
    )
    source = PrometheusSource(prom.url, metrics=metrics)
    end = datetime.now(UTC) - timedelta(seconds=1)
    frame = source.query_range(end - timedelta(seconds=2), end, step_s=1)
    return {column: float(frame[column].iloc[-1]) for column in frame.columns}


def latest_in_dialect(prom: PrometheusServer, dialect: str) -> Mapping[str, float]:
    """The runbook's three signals for the dialect target, queried as the runbook would."""
    job, release, _ = DIALECT_TARGETS[dialect]
    selector = f'job="{job}",release="{release}",namespace="team"'
    w = f"{WINDOW_S}s"
    # Each dialect is one of the settings' naming presets: OpenTelemetry has no request
    # counter (the histogram's _count counts requests); Istio's histogram counts milliseconds,
    # which the preset declares, so the p99 is judged in seconds.
    if dialect == "otel":
        business = {"orders_per_minute": f"sum(shop_orders_per_minute{{{selector}}})"}
    else:
        business = {
            "orders_per_request": f"sum(rate(shop_orders_total{{{selector}}}[{w}])) / "
            f"sum(rate(istio_requests_total{{{selector}}}[{w}]))"
        }
    metrics = Metrics(
        metrics_preset=dialect,
        prometheus_selector=selector,
        prometheus_rate_window=w,
        business_queries=business,
    )
    source = PrometheusSource(prom.url, metrics=metrics)
    end = datetime.now(UTC) - timedelta(seconds=1)
    frame = source.query_range(end - timedelta(seconds=2), end, step_s=1)
    return {column: float(frame[column].iloc[-1]) for column in frame.columns}


# --- served to a real Prometheus -----------------------------------------------------------


@pytest.mark.prometheus
@pytest.mark.slow
@pytest.mark.parametrize("job", list(MIXES))
def test_error_ratio_follows_the_pods_versions(
    traffic: tuple[PrometheusServer, dict[str, Model]], job: str
) -> None:
    prom, _ = traffic
    expected = expected_error_ratio(MIXES[job])
    measured = latest(prom, job)["error_ratio"]
    assert measured == pytest.approx(expected, abs=tolerance(expected, RATE * WINDOW_S))


@pytest.mark.prometheus
@pytest.mark.slow
@pytest.mark.parametrize(("job", "version"), [("good", GOOD), ("bad", BAD)])
def test_p99_latency_of_each_version(
    traffic: tuple[PrometheusServer, dict[str, Model]], job: str, version: str
) -> None:
    prom, _ = traffic
    measured = latest(prom, job)["p99_latency_s"]
    # Sampling (about 2%) plus interpolation inside a histogram bucket (under 5%).
    assert measured == pytest.approx(CONFIG.behaviour(version).latency_p99_s, rel=0.1)


@pytest.mark.prometheus
@pytest.mark.slow
def test_bad_version_loses_orders(traffic: tuple[PrometheusServer, dict[str, Model]]) -> None:
    prom, _ = traffic
    good = latest(prom, "good")["business:orders_per_request"]
    bad = latest(prom, "bad")["business:orders_per_request"]
    n = RATE * WINDOW_S
    assert good == pytest.approx(
        orders_per_request(GOOD), abs=tolerance(orders_per_request(GOOD), n)
    )
    assert bad == pytest.approx(orders_per_request(BAD), abs=tolerance(orders_per_request(BAD), n))
    assert bad / good < 0.75  # "orders down about 30%"


@pytest.mark.prometheus
@pytest.mark.slow
def test_request_log_names_the_pods_and_versions_serving(
    traffic: tuple[PrometheusServer, dict[str, Model]],
) -> None:
    _, models = traffic
    lines = (models["mixed"].state_dir / "logs" / "api.log").read_text().splitlines()[-5000:]
    parsed = [LOG_LINE.match(line) for line in lines]
    assert all(parsed), next(line for line, m in zip(lines, parsed, strict=True) if not m)
    matches = [m for m in parsed if m]
    pods_by_version: dict[str, set[str]] = {}
    for m in matches:
        pods_by_version.setdefault(m["version"], set()).add(m["pod"])
    assert {v: len(p) for v, p in pods_by_version.items()} == MIXES["mixed"]
    assert {m["status"] for m in matches} >= {"200", "201"}
    assert all(m["path"] == "/api/orders" for m in matches if m["method"] == "POST")
    stamps = [datetime.fromisoformat(m["ts"]) for m in matches]
    assert stamps == sorted(stamps)
    assert all(m["cri_ts"] == m["ts"] for m in matches)


@pytest.mark.prometheus
@pytest.mark.slow
@pytest.mark.parametrize("dialect", list(DIALECT_TARGETS))
def test_each_dialect_gives_the_runbook_its_signals(
    traffic: tuple[PrometheusServer, dict[str, Model]], dialect: str
) -> None:
    prom, _ = traffic
    _, _, version = DIALECT_TARGETS[dialect]
    behaviour = CONFIG.behaviour(version)
    measured = latest_in_dialect(prom, dialect)
    n = DIALECT_RATE * WINDOW_S
    assert measured["error_ratio"] == pytest.approx(
        behaviour.error_ratio, abs=tolerance(behaviour.error_ratio, n)
    )
    assert measured["p99_latency_s"] == pytest.approx(behaviour.latency_p99_s, rel=0.1)
    per_request = orders_per_request(version)
    if dialect == "otel":  # a gauge: orders in the last minute (or since the target started)
        # Counted over at least WINDOW_S seconds: 5 sigma of that many orders, per minute.
        orders = per_request * DIALECT_RATE * WINDOW_S
        expected, spread = orders * 60 / WINDOW_S, 5 * math.sqrt(orders) * 60 / WINDOW_S
        assert measured["business:orders_per_minute"] == pytest.approx(expected, abs=spread)
    else:
        assert measured["business:orders_per_request"] == pytest.approx(
            per_request, abs=tolerance(per_request, n)
        )


@pytest.mark.prometheus
@pytest.mark.slow
def test_another_dialects_target_leaves_the_default_series_alone(
    traffic: tuple[PrometheusServer, dict[str, Model]],
) -> None:
    prom, _ = traffic
    # The default target's series are its own (release="app"), and no other target's
    # requests are counted in them: the good model's default series stay "good".
    releases = {s["metric"]["release"] for s in prom.query('http_requests_total{job="good"}')}
    assert releases == {"app"}
    assert {s["metric"]["namespace"] for s in prom.query("istio_requests_total")} == {"team"}
    assert prom.query('http_requests_total{release="mesh"}') == []


def test_request_log_stays_bounded(tmp_path: Path) -> None:
    limit = 40_000
    model = start_model(tmp_path, {GOOD: 1}, rate=3000, extra=["--log-max-bytes", str(limit)])
    log = tmp_path / "logs" / "api.log"
    try:
        # Each rotation renames api.log to api.log.1, so api.log.1 gets a new inode. Counting
        # inode changes does not depend on polling faster than the model writes.
        rotated = log.with_name("api.log.1")
        deadline = time.monotonic() + 60
        rotations = 0
        last_inode = 0
        while time.monotonic() < deadline and rotations < 3:
            inode = rotated.stat().st_ino if rotated.exists() else 0
            rotations += inode != last_inode
            last_inode = inode
            time.sleep(0.05)
        assert rotations >= 3, (tmp_path / "model.log").read_text()
    finally:
        stop_model(model)
    # At most one tick's lines (3000 req/s x 0.1 s x ~110 bytes) beyond the limit, per file.
    for path in (log, log.with_name("api.log.1")):
        assert path.stat().st_size < limit + 300 * 150
    assert not log.with_name("api.log.2").exists()


# --- the pure parts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("registry.local/api:v1.1.0", "v1.1.0"),
        ("registry.local:5000/team/api:v1.0.0", "v1.0.0"),
        ("registry.local/api:v1.1.0@sha256:" + "a" * 64, "v1.1.0"),
        ("registry.local:5000/api", "latest"),
    ],
    ids=["tag", "registry-port", "digest", "no-tag"],
)
def test_version_is_the_image_tag(image: str, version: str) -> None:
    assert image_version(image) == version


def test_only_ready_pods_that_are_not_terminating_get_traffic() -> None:
    pods = [
        PodView("app-a", GOOD, ready=True),
        PodView("app-b", GOOD, ready=True, terminating=True),
        PodView("app-c", BAD, ready=False),
        PodView("app-d", BAD, ready=True),
        PodView("app-e", BAD, ready=True),
    ]
    assert version_mix(pods) == {GOOD: 1, BAD: 2}


def test_pod_views_read_the_kubernetes_client_objects() -> None:
    def pod(name: str, version: str, ready: str, *, deleting: bool = False) -> client.V1Pod:
        return client.V1Pod(
            metadata=client.V1ObjectMeta(
                name=name,
                deletion_timestamp=datetime.now(UTC) if deleting else None,
                labels={"app": "api", "pod-template-hash": f"hash-{version}"},
            ),
            spec=client.V1PodSpec(
                containers=[
                    client.V1Container(name="web", image=f"registry.local/api:{version}"),
                    client.V1Container(name="sidecar", image="registry.local/proxy:v9"),
                ]
            ),
            status=client.V1PodStatus(
                conditions=[client.V1PodCondition(type="Ready", status=ready)]
            ),
        )

    views = pod_views(
        [
            pod("app-1", GOOD, "True"),
            pod("app-2", BAD, "False"),
            pod("app-3", BAD, "True", deleting=True),
        ]
    )

    # The first container decides the version and names the log; its image and the
    # Deployment revision's template hash are what a behaviour override can match.
    def view(name: str, version: str, ready: bool, **more: bool) -> PodView:
        image = f"registry.local/api:{version}"
        return PodView(
            name, version, ready, template_hash=f"hash-{version}", image=image, container="web",
            **more,
        )  # fmt: skip

    assert views == [
        view("app-1", GOOD, True),
        view("app-2", BAD, False),
        view("app-3", BAD, True, terminating=True),
    ]


def test_configured_latency_distribution_has_the_configured_p99() -> None:
    for behaviour in CONFIG.versions.values():
        p99 = math.exp(math.log(behaviour.latency_median_s) + 2.326347874 * behaviour.latency_sigma)
        assert p99 == pytest.approx(behaviour.latency_p99_s)


def test_bad_config_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "versions.yaml"
    path.write_text(
        "default: v3\nrequest_rate_per_s: 0\nversions:\n"
        "  v1: {error_ratio: 2, latency_median_s: 0.5, latency_p99_s: 0.1}\n"
    )
    with pytest.raises(ValueError, match="error_ratio") as caught:
        load_config(path)
    for problem in ("latency_median_s < latency_p99_s", "default: 'v3'", "request_rate_per_s"):
        assert problem in str(caught.value)


def _counts(registry: CollectorRegistry, version: str) -> dict[str, float]:
    labels = {"version": version, "release": "app", "namespace": "default"}
    return {
        code: registry.get_sample_value("http_requests_total", {"code": code, **labels}) or 0.0
        for code in ("200", "201", "404", "500", "503")
    }


def test_same_seed_and_pods_give_the_same_traffic() -> None:
    runs = []
    for _ in range(2):
        registry = CollectorRegistry()
        sim = Simulator(CONFIG, registry=registry, seed=7)
        sim.set_pods([PodView("app-1", BAD, ready=True)])
        sim.serve(5000, now=datetime.now(UTC))
        runs.append(_counts(registry, BAD))
    assert runs[0] == runs[1]
    assert sum(runs[0].values()) == 5000


def test_no_ready_pod_means_503_and_unknown_versions_behave_like_the_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    sim = Simulator(CONFIG, registry=registry)
    sim.serve(10, now=datetime.now(UTC))  # before the first pod listing: nothing happens
    assert sim.served == 0
    sim.set_pods([PodView("app-1", GOOD, ready=False)])
    sim.serve(10, now=datetime.now(UTC))
    assert _counts(registry, NO_POD_VERSION)["503"] == 10

    with caplog.at_level(logging.WARNING):
        sim.set_pods([PodView("app-9", "v9.9.9", ready=True)])
    assert "unknown version v9.9.9: behaves like v1.0.0" in caplog.text
    n = 200_000
    sim.serve(n, now=datetime.now(UTC))
    counts = _counts(registry, "v9.9.9")
    ratio = (counts["500"] + counts["503"]) / n
    expected = CONFIG.behaviour(CONFIG.default).error_ratio
    assert ratio == pytest.approx(expected, abs=tolerance(expected, n))


# --- the sandbox's metrics stack (without a cluster: the model serves nothing yet) ----------


def _free_port_base() -> int:
    for _ in range(50):
        base = free_port() - 90
        if 1024 <= base <= 65435 and port_is_free(base + 90) and port_is_free(base + 91):
            return base
    raise AssertionError("no free pair of ports found")


@pytest.mark.prometheus
@pytest.mark.slow
@pytest.mark.usefixtures("prometheus_binary")
def test_metrics_stack_starts_once_and_stops_from_another_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = _free_port_base()
    monkeypatch.setenv("RUNBOOK_SANDBOX_PORT_BASE", str(base))
    state = tmp_path / "state"
    try:
        endpoints = metrics_stack.start(state, tmp_path / "no-cluster-yet.kubeconfig")
        assert endpoints.prometheus_url == f"http://127.0.0.1:{base + 90}"
        assert endpoints.traffic_url == f"http://127.0.0.1:{base + 91}"
        first = metrics_stack.status(state)
        assert first["traffic"]["running"]
        assert first["prometheus"]["running"]
        assert first["mix"]["listed"] is False  # no cluster: no pods listed, nothing served
        assert metrics_stack.start(state, tmp_path / "x") == endpoints  # reused, not restarted
        assert metrics_stack.status(state)["prometheus"]["pid"] == first["prometheus"]["pid"]
    finally:
        # As `runbook sandbox down` does it: another process, knowing only the state dir.
        code = (
            "import sys; from runbook_sandbox import metrics_stack; metrics_stack.stop(sys.argv[1])"
        )
        subprocess.run([sys.executable, "-c", code, str(state)], check=True, timeout=60)
    after = metrics_stack.status(state)
    assert not after["traffic"]["running"]
    assert not after["prometheus"]["running"]
    assert port_is_free(base + 90)
    assert port_is_free(base + 91)
    assert not (state / "metrics" / "prometheus-data").exists()
    for pid in (first["traffic"]["pid"], first["prometheus"]["pid"]):
        stat = Path(f"/proc/{pid}/stat")
        # Gone, or a zombie waiting for this test process (its parent) to reap it.
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    metrics_stack.stop(state)  # idempotent


# --- dialects: the same requests under each convention's names -----------------------------

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
SHOP = Target(release="shop", namespace="team-a")
FAMILIES = {
    Dialect.PROMETHEUS: {
        "http_requests": "counter", "http_request_duration_seconds": "histogram",
        "orders": "counter",
    },
    Dialect.OTEL: {
        "http_server_request_duration_seconds": "histogram", "shop_orders_per_minute": "gauge",
    },
    Dialect.ISTIO: {
        "istio_requests": "counter", "istio_request_duration_milliseconds": "histogram",
        "shop_orders": "counter",
    },
}  # fmt: skip
# Labels each dialect's request series carry besides release and namespace (and le).
REQUEST_LABELS = {
    Dialect.PROMETHEUS: {"code", "version"},
    Dialect.OTEL: {"http_request_method", "http_response_status_code", "http_route", "url_scheme"},
    Dialect.ISTIO: {
        "reporter", "destination_workload", "destination_workload_namespace",
        "destination_service_name", "destination_canonical_service",
        "destination_canonical_revision", "request_protocol", "response_code", "response_flags",
    },
}  # fmt: skip


def exposed(dialect: Dialect, *, n: int = 20_000, span_s: float = 30.0) -> dict[str, Metric]:
    """The exposition text of ``n`` requests to a good/bad mix, parsed back by family name."""
    registry = CollectorRegistry()
    sim = Simulator(CONFIG, registry=registry, target=replace(SHOP, dialect=dialect), seed=5)
    sim.set_pods(fixed_pods({GOOD: 2, BAD: 2}))
    sim.serve(n, now=NOW, span_s=span_s)
    text = generate_latest(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def total(family: Metric, suffix: str = "", **labels: str) -> float:
    return sum(
        s.value
        for s in family.samples
        if s.name == family.name + suffix and labels.items() <= s.labels.items()
    )


@pytest.mark.parametrize("dialect", list(Dialect), ids=str)
def test_each_dialect_names_its_series_and_labels_every_one_with_release_and_namespace(
    dialect: Dialect,
) -> None:
    families = exposed(dialect)
    assert {name: f.type for name, f in families.items()} == FAMILIES[dialect]
    for family in families.values():
        for sample in family.samples:
            assert sample.labels["release"] == "shop"
            assert sample.labels["namespace"] == "team-a"
    requests = families[next(iter(FAMILIES[dialect]))]  # the first: the request series
    extra = set(requests.samples[0].labels) - {"release", "namespace", "le"}
    assert extra == REQUEST_LABELS[dialect]


def test_every_dialect_counts_the_same_requests_in_its_own_units() -> None:
    prom, otel, istio = (exposed(d) for d in (Dialect.PROMETHEUS, Dialect.OTEL, Dialect.ISTIO))
    seconds = prom["http_request_duration_seconds"]
    millis = istio["istio_request_duration_milliseconds"]
    otel_hist = otel["http_server_request_duration_seconds"]
    # OpenTelemetry has no request counter: its histogram's _count is the count.
    assert total(otel_hist, "_count") == total(prom["http_requests"], "_total") == 20_000
    assert total(istio["istio_requests"], "_total") == 20_000
    errors = sum(total(prom["http_requests"], "_total", code=c) for c in ("500", "503"))
    assert errors > 0
    assert errors == sum(
        total(otel_hist, "_count", http_response_status_code=c) for c in ("500", "503")
    )
    assert errors == sum(
        total(istio["istio_requests"], "_total", response_code=c) for c in ("500", "503")
    )
    # Milliseconds are seconds x 1000, bucket for bucket: the same latencies.
    for le_s, le_ms in zip(LATENCY_BUCKETS_S, LATENCY_BUCKETS_MS, strict=True):
        assert le_ms == pytest.approx(le_s * 1000)
        assert total(seconds, "_bucket", le=floatToGoString(le_s)) == total(
            millis, "_bucket", le=floatToGoString(le_ms)
        )
    assert total(millis, "_sum") == pytest.approx(total(seconds, "_sum") * 1000)
    # Business: a counter of successful orders, or a gauge of them per minute (30 s served).
    orders = total(otel_hist, "_count", http_response_status_code="201")
    assert orders > 0
    assert total(prom["orders"], "_total") == total(istio["shop_orders"], "_total") == orders
    assert total(otel["shop_orders_per_minute"]) == pytest.approx(orders * 60 / 30)


def histogram_quantile(bounds: Sequence[float], cdf: Callable[[float], float], q: float) -> float:
    """What Prometheus computes from exact bucket counts: linear inside the bucket."""
    below, lower = 0.0, 0.0
    for bound in bounds:
        at = cdf(bound)
        if at >= q:
            return lower + (bound - lower) * (q - below) / (at - below)
        below, lower = at, bound
    return math.inf


def lognormal_cdf(median: float, p99: float) -> Callable[[float], float]:
    sigma = math.log(p99 / median) / 2.326347874
    return lambda x: 0.5 * (1 + math.erf(math.log(x / median) / (sigma * math.sqrt(2))))


@pytest.mark.parametrize(
    ("unit", "bounds"), [(1.0, LATENCY_BUCKETS_S), (1000.0, LATENCY_BUCKETS_MS)], ids=["s", "ms"]
)
def test_p99_from_the_buckets_is_accurate_in_either_unit(
    unit: float, bounds: Sequence[float]
) -> None:
    for version in CONFIG.versions.values():  # the versions' own p99s: within 1%
        p99 = version.latency_p99_s * unit
        cdf = lognormal_cdf(version.latency_median_s * unit, p99)
        assert histogram_quantile(bounds, cdf, 0.99) == pytest.approx(p99, rel=0.01)
    # Any p99 an override may set from 0.1 s to 5 s, with the versions' median/p99 shape.
    worst = 0.0
    for step in range(200):
        p99 = 0.1 * 50 ** (step / 199) * unit
        estimate = histogram_quantile(bounds, lognormal_cdf(p99 / 4, p99), 0.99)
        worst = max(worst, abs(estimate - p99) / p99)
    assert worst < 0.03


# --- behaviour keyed by what a deploy changed ------------------------------------------------


def pod(name: str, *, hash_: str, image: str, version: str = GOOD) -> PodView:
    return PodView(name, version, ready=True, template_hash=hash_, image=image)


def test_an_override_matches_the_template_hash_first_then_the_exact_image() -> None:
    by_image = parse_override({"match": {"image": "r/api:v1.0.0"}, "error_ratio": 0.2}, CONFIG)
    by_hash = parse_override({"match": {"pod_template_hash": "h1"}, "error_ratio": 0.3}, CONFIG)
    overrides = [by_image, by_hash]  # the hash wins although listed second
    assert behaviour_of(pod("a", hash_="h1", image="r/api:v1.0.0"), CONFIG, overrides) == (
        by_hash.behaviour, by_hash,
    )  # fmt: skip
    assert behaviour_of(pod("b", hash_="h2", image="r/api:v1.0.0"), CONFIG, overrides) == (
        by_image.behaviour, by_image,
    )  # fmt: skip
    # A digest or another registry is another image: the match is exact.
    assert (
        behaviour_of(pod("c", hash_="h2", image="r/api:v1.0.0@sha256:ab"), CONFIG, overrides)[1]
        is None
    )
    # Matched by nothing: its version's behaviour; an unknown version, the default one's.
    assert behaviour_of(pod("d", hash_="h3", image="x", version=BAD), CONFIG, overrides) == (
        CONFIG.behaviour(BAD), None,
    )  # fmt: skip
    assert behaviour_of(pod("e", hash_="", image="y", version="v9"), CONFIG, overrides) == (
        CONFIG.behaviour(CONFIG.default), None,
    )  # fmt: skip


def test_fields_an_override_leaves_out_are_the_default_versions() -> None:
    override = parse_override({"match": {"pod_template_hash": "h"}, "latency_p99_s": 2.5}, CONFIG)
    healthy = CONFIG.behaviour(CONFIG.default)
    assert override.behaviour == replace(healthy, latency_p99_s=2.5, schema=None)


def test_bad_targets_and_overrides_are_refused_with_every_problem() -> None:
    with pytest.raises(ValueError, match="namespace") as target:
        parse_target("Team_A", "x" * 60, {"dialect": "zipkin", "rate": 0, "colour": "red"})
    assert len(target.value.args) == 5, target.value.args
    with pytest.raises(ValueError, match="match") as override:
        parse_override(
            {"match": {"label": "x"}, "error_ratio": 1.5, "latency_median_s": 2.0,
             "latency_p99_s": 1.0},
            CONFIG,
        )  # fmt: skip
    text = "; ".join(override.value.args)
    for problem in ("match: 'label'", "error_ratio: 1.5", "latency_median_s < latency_p99_s"):
        assert problem in text


def status_by_pod(log: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for m in filter(None, map(LOG_LINE.match, log.read_text().splitlines())):
        found.setdefault(m["pod"], []).append(m["status"])
    return found


def error_ratio(statuses: Sequence[str]) -> float:
    return sum(s.startswith("5") for s in statuses) / len(statuses)


def test_an_override_changes_only_the_pods_it_matches_until_cleared(tmp_path: Path) -> None:
    # A values-only upgrade: same image, new template hash on the new pods.
    image = f"registry.local/api:{GOOD}"
    pods = [pod("old-1", hash_="old", image=image), pod("new-1", hash_="new", image=image)]
    log = RequestLog(tmp_path / "requests.log", max_bytes=10**9)
    sim = Simulator(CONFIG, request_log=log)
    sim.set_pods(pods)
    bad = parse_override({"match": {"pod_template_hash": "new"}, "error_ratio": 0.5}, CONFIG)
    sim.set_overrides([bad])
    assert sim.overridden() == {"new-1": {"pod_template_hash": "new"}}
    sim.serve(20_000, now=NOW, span_s=10)
    during = status_by_pod(log.path)
    n = len(during["new-1"])
    assert error_ratio(during["new-1"]) == pytest.approx(0.5, abs=tolerance(0.5, n))
    healthy = CONFIG.behaviour(GOOD).error_ratio
    old = during["old-1"]
    assert error_ratio(old) == pytest.approx(healthy, abs=tolerance(healthy, len(old)))
    sim.set_overrides([])
    assert sim.overridden() == {}
    log.path.write_text("")
    sim.serve(20_000, now=NOW + timedelta(seconds=10), span_s=10)
    after = status_by_pod(log.path)["new-1"]
    assert error_ratio(after) == pytest.approx(healthy, abs=tolerance(healthy, len(after)))


# --- targets and overrides kept across restarts ---------------------------------------------


def test_a_damaged_store_leaves_only_the_default_target(tmp_path: Path) -> None:
    store = TargetStore(tmp_path, CONFIG)
    shop = replace(SHOP, dialect=Dialect.ISTIO, rate=20.0, mix={GOOD: 1})
    hashed = parse_override({"match": {"pod_template_hash": "h"}, "error_ratio": 0.1}, CONFIG)
    store.save([DEFAULT_TARGET, shop], {shop.key: [hashed]})
    assert store.load() == ([DEFAULT_TARGET, shop], {shop.key: [hashed]})
    store.path.write_text('{"targets": [{"release": "BAD NAME", "namespace": "x"}]}')
    assert store.load() == ([DEFAULT_TARGET], {})


def test_targets_and_overrides_survive_a_restart_of_the_model(tmp_path: Path) -> None:
    first = start_model(tmp_path, {GOOD: 2}, rate=50)
    try:
        url = wait_for_api(first)
        added = traffic_control.add_target(
            url, release="shop", namespace="team-a", dialect="otel", rate=40, mix={GOOD: 2}
        )
        assert added["dialect"] == "otel"
        traffic_control.set_behaviour(
            url, release="shop", namespace="team-a", pod_template_hash="v1-0-0",
            error_ratio=0.4, latency_p99_s=1.5,
        )  # fmt: skip
        with pytest.raises(traffic_control.TrafficControlError) as refused:
            traffic_control.remove_target(url, release="app", namespace="default")
        assert refused.value.status == 409
        # The default target changes dialect and keeps its other settings (traced, pods).
        changed = traffic_control.add_target(
            url, release="app", namespace="default", dialect="istio"
        )
        assert changed == {**DEFAULT_TARGET.to_json(), "dialect": "istio"}
        assert traffic_control.mix(url)["mix"] == {GOOD: 2}
        with pytest.raises(traffic_control.TrafficControlError) as unknown:
            traffic_control.set_behaviour(
                url, release="nope", namespace="team-a", image="x", error_ratio=0.1
            )
        assert unknown.value.status == 404
        with pytest.raises(traffic_control.TrafficControlError) as invalid:
            traffic_control.add_target(
                url, release="shop", namespace="team-a", dialect="x", rate=-1
            )
        assert invalid.value.status == 400
        assert len(invalid.value.problems) == 2
    finally:
        stop_model(first)
    second = start_model(tmp_path, {GOOD: 2}, rate=50)
    try:
        url = wait_for_api(second)
        kept = {t["release"]: t for t in traffic_control.targets(url)}
        assert kept == {"app": changed, "shop": added}
        shop = traffic_control.mix(url)["targets"]["team-a/shop"]
        assert shop["overridden"] == {
            "shop-v1-0-0-0": {"pod_template_hash": "v1-0-0"},
            "shop-v1-0-0-1": {"pod_template_hash": "v1-0-0"},
        }
        assert traffic_control.clear_behaviour(url, release="shop", namespace="team-a") == 1
        assert traffic_control.remove_target(url, release="shop", namespace="team-a") is True
        assert traffic_control.remove_target(url, release="shop", namespace="team-a") is False
        assert [t["release"] for t in traffic_control.targets(url)] == ["app"]
    finally:
        stop_model(second)
