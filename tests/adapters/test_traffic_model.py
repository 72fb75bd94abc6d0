"""The sandbox's traffic model: what Prometheus sees for each version mix, and its request log.

Real processes: traffic models with fixed pod mixes (no cluster needed) scraped by a real
Prometheus, read back through ``PrometheusSource``. Expected values come from
``sandbox/traffic/versions.yaml``; tolerances from the number of simulated requests.
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry

from runbook_lib.adapters.prometheus import PrometheusSource
from runbook_lib.core.promql import Metrics
from runbook_sandbox import metrics_stack
from runbook_sandbox.prometheus_server import (
    PrometheusServer,
    ScrapeTarget,
    free_port,
    port_is_free,
)
from runbook_sandbox.traffic_model import (
    NO_POD_VERSION,
    PodView,
    Simulator,
    image_version,
    load_config,
    pod_views,
    version_mix,
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


@pytest.fixture(scope="module")
def traffic(
    start_prometheus: PrometheusFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PrometheusServer, dict[str, Model]]]:
    """Three models (good, bad, mixed) scraped by one Prometheus for a full rate window."""
    models = {
        job: start_model(tmp_path_factory.mktemp(job), mix, rate=RATE) for job, mix in MIXES.items()
    }
    try:
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
    def pod(name: str, image: str, ready: str, *, deleting: bool = False) -> client.V1Pod:
        return client.V1Pod(
            metadata=client.V1ObjectMeta(
                name=name, deletion_timestamp=datetime.now(UTC) if deleting else None
            ),
            spec=client.V1PodSpec(containers=[client.V1Container(name="api", image=image)]),
            status=client.V1PodStatus(
                conditions=[client.V1PodCondition(type="Ready", status=ready)]
            ),
        )

    views = pod_views(
        [
            pod("app-1", "registry.local/api:v1.0.0", "True"),
            pod("app-2", "registry.local/api:v1.1.0", "False"),
            pod("app-3", "registry.local/api:v1.1.0", "True", deleting=True),
        ]
    )
    assert views == [
        PodView("app-1", GOOD, ready=True),
        PodView("app-2", BAD, ready=False),
        PodView("app-3", BAD, ready=True, terminating=True),
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
    return {
        code: registry.get_sample_value("http_requests_total", {"code": code, "version": version})
        or 0.0
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
