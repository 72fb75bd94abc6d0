"""A second release, in its own namespace and another metric dialect, under the sandbox's load.

The sandbox chart installed again as release ``shop`` in a namespace of its own, registered
with the traffic model as an OpenTelemetry-style target: its series reach the sandbox's real
Prometheus labelled with its release, its pods have their own ``kubectl logs``, and a
behaviour override keyed by the pod-template-hash of a values-only upgrade breaks that
release alone, whatever its image says.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from sandbox_waits import wait_until

from runbook_sandbox import paths, traffic_control

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox


RELEASE, NAMESPACE = "shop", "traffic-second"
WINDOW = "10s"
SHOP = f'release="{RELEASE}",namespace="{NAMESPACE}"'
OTEL_REQUESTS = "http_server_request_duration_seconds_count"
SHOP_ERRORS = (
    f'(sum(rate({OTEL_REQUESTS}{{{SHOP},http_response_status_code=~"5.."}}[{WINDOW}]))'
    f" or vector(0)) / sum(rate({OTEL_REQUESTS}{{{SHOP}}}[{WINDOW}]))"
)
APP = 'release="app",namespace="default"'
APP_ERRORS = (
    f'(sum(rate(http_requests_total{{{APP},code=~"5.."}}[{WINDOW}])) or vector(0))'
    f" / sum(rate(http_requests_total{{{APP}}}[{WINDOW}]))"
)


def _value(sb: Sandbox, promql: str) -> float | None:
    """The query's single value now, or None while it has no sample."""
    url = f"{sb.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _wait_value(
    sb: Sandbox, promql: str, accept: Callable[[float], bool], timeout_s: float, what: str
) -> float:
    """Poll Prometheus until ``promql`` has a value that ``accept`` takes; return it."""
    seen: list[float] = []

    def check() -> bool:
        value = _value(sb, promql)
        if value is not None and accept(value):
            seen.append(value)
            return True
        return False

    wait_until(check, what, timeout_s)
    return seen[-1]


def _shop_pods(sb: Sandbox) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        sb.kubectl("get", "pods", "-n", NAMESPACE, "-l", "app=api", "-o", "json")
    )["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _one_template_hash(sb: Sandbox) -> str | None:
    """The pod-template-hash of the shop pods once they all share one and are ready."""
    pods = _shop_pods(sb)
    hashes = {p["metadata"]["labels"].get("pod-template-hash") for p in pods}
    ready = all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
        for p in pods
    )
    return hashes.pop() if len(pods) == 2 and len(hashes) == 1 and ready else None


@pytest.fixture
def shop(clean_sandbox: Sandbox) -> Iterator[Sandbox]:
    """Release ``shop`` of the sandbox chart (2 replicas, v1.0.0) as an ``otel`` target."""
    sb = clean_sandbox
    sb.helm(
        "install", RELEASE, str(paths.chart_dir()), "--namespace", NAMESPACE,
        "--create-namespace", "--set", "replicaCount=2", "--set", "migrator.enabled=false",
        "--wait", "--timeout", "120s", timeout_s=180,
    )  # fmt: skip
    try:
        traffic_control.add_target(
            sb.traffic_url, release=RELEASE, namespace=NAMESPACE, dialect="otel", rate=100
        )
        yield sb
    finally:
        traffic_control.remove_target(sb.traffic_url, release=RELEASE, namespace=NAMESPACE)
        sb.helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", timeout_s=180)
        sb.kubectl("delete", "namespace", NAMESPACE, "--wait=false")


def test_a_second_release_is_judged_by_its_own_series_and_broken_by_its_template_hash(
    shop: Sandbox,
) -> None:
    sb = shop
    # Its requests, in the OpenTelemetry dialect, under its own release label.
    rate = f"sum(rate({OTEL_REQUESTS}{{{SHOP}}}[{WINDOW}]))"
    _wait_value(sb, rate, lambda v: v > 0, 60, "the shop release's request rate")
    assert _value(sb, f'count(http_requests_total{{release="{RELEASE}"}})') is None
    healthy = _wait_value(sb, SHOP_ERRORS, lambda v: True, 60, "the shop release's 5xx ratio")
    assert healthy < 0.01
    # Each of its pods has its own log, in its own namespace.
    pod = _shop_pods(sb)[0]["metadata"]["name"]
    wait_until(
        lambda: f"pod={pod}" in sb.kubectl("logs", "-n", NAMESPACE, pod),
        f"requests in the log of {NAMESPACE}/{pod}", 30,
    )  # fmt: skip

    # A values-only upgrade: same image, new pods with a new template hash.
    before = _one_template_hash(sb)
    assert before
    sb.helm(
        "upgrade", RELEASE, str(paths.chart_dir()), "--namespace", NAMESPACE, "--reuse-values",
        "--set", "env.FEATURE_CHECKOUT_V2=on", "--wait", "--timeout", "120s", timeout_s=180,
    )  # fmt: skip
    new_hash = wait_until(
        lambda: (found := _one_template_hash(sb)) != before and found,
        "the upgraded pods to serve alone", 60,
    )  # fmt: skip
    images = {p["spec"]["containers"][0]["image"] for p in _shop_pods(sb)}
    assert images == {"registry.local/api:v1.0.0"}  # the image did not change
    # The default release is healthy before the shop breaks (the reset left it at v1.0.0).
    _wait_value(sb, APP_ERRORS, lambda v: v < 0.01, 60, "a healthy default release")

    traffic_control.set_behaviour(
        sb.traffic_url, release=RELEASE, namespace=NAMESPACE, pod_template_hash=new_hash,
        error_ratio=0.4,
    )  # fmt: skip
    target = traffic_control.mix(sb.traffic_url)["targets"][f"{NAMESPACE}/{RELEASE}"]
    assert list(target["overridden"].values()) == [{"pod_template_hash": new_hash}] * 2
    broken = _wait_value(sb, SHOP_ERRORS, lambda v: v > 0.25, 60, "the shop's 5xx ratio to rise")
    assert broken < 0.6
    app = _value(sb, APP_ERRORS)
    assert app is not None
    assert app < 0.01  # the default release is unaffected
