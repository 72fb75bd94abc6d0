"""``runbook profile init`` then ``runbook profile check`` on the sandbox's Prometheus, per dialect.

The sandbox's own release ``app`` speaks the Prometheus client libraries' names; two more
releases are registered with the traffic model with fixed ready pods (no chart install): one
in the OpenTelemetry dialect, one in Istio's (its latency histogram in milliseconds). For each,
``init`` must recognise the convention and the labels that select the release, and ``check``
must pass the proposal (``--strict``: no warning either) with one series per signal and values
a healthy v1.0.0 gives (sandbox/traffic/versions.yaml: 0.05% 5xx, p99 0.3 s), its business
candidates included once uncommented.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from runbook_lib.cli.main import main
from runbook_lib.core.profile import parse_profile
from runbook_sandbox import traffic_control

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox

pytestmark = pytest.mark.sandbox

SINCE = "20s"
# release, namespace, dialect -> preset, selector, the business candidate's name
CASES = {
    "prometheus": (
        "app", "default", "prometheus-client",
        'release="app",namespace="default"', "orders",
    ),
    "otel": (
        "cart", "profile-otel", "otel",
        'release="cart",namespace="profile-otel"', "shop_orders_per_minute",
    ),
    "istio": (
        "mesh", "profile-istio", "istio",
        'destination_canonical_service="mesh",destination_workload_namespace="profile-istio",'
        'reporter="destination"',
        "shop_orders",
    ),
}  # fmt: skip
# What every dialect counts: its requests, by release and namespace.
REQUESTS = {
    "prometheus": "http_requests_total",
    "otel": "http_server_request_duration_seconds_count",
    "istio": "istio_requests_total",
}


def _samples(sb: Sandbox, dialect: str) -> float:
    release, namespace, *_ = CASES[dialect]
    selector = f'release="{release}",namespace="{namespace}"'
    query = f"max(count_over_time({REQUESTS[dialect]}{{{selector}}}[40s]))"
    found = _query(sb, query)
    return float(found[0]["value"][1]) if found else 0.0


def _app_healthy_since(sb: Sandbox) -> bool:
    """The release ``app``'s error ratio and p99 over the last ``SINCE``, each a rate over a
    minute, are v1.0.0's: a bad deploy before the reset has left the rates' windows."""
    sel = 'release="app",namespace="default"'
    ratio = (
        f'sum(rate(http_requests_total{{{sel},code=~"5.."}}[1m]))'
        f" / sum(rate(http_requests_total{{{sel}}}[1m]))"
    )
    buckets = f"rate(http_request_duration_seconds_bucket{{{sel}}}[1m])"
    p99 = f"histogram_quantile(0.99, sum by (le) ({buckets}))"
    for query, healthy in ((ratio, 0.01), (p99, 0.45)):
        found = _query(sb, f"max_over_time(({query})[{SINCE}:1s])")
        if found and float(found[0]["value"][1]) >= healthy:
            return False
    return True


def _query(sb: Sandbox, promql: str) -> list[dict[str, Any]]:
    url = f"{sb.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:
        result: list[dict[str, Any]] = json.load(response)["data"]["result"]
    return result


@pytest.fixture(scope="module")
def dialects(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox, reset to v1.0.0, with the otel and istio releases served for ``SINCE``."""
    sandbox.reset()
    for dialect in ("otel", "istio"):
        release, namespace, *_ = CASES[dialect]
        traffic_control.add_target(
            sandbox.traffic_url, release=release, namespace=namespace, dialect=dialect,
            rate=100, mix={"v1.0.0": 2},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while min(_samples(sandbox, d) for d in CASES) < 25 or not _app_healthy_since(sandbox):
            if time.monotonic() > deadline:
                pytest.fail(
                    "Prometheus did not collect 25 s of every dialect's requests, or the "
                    "release app's 1m rates still hold the deploy before the reset"
                )
            time.sleep(1)
        yield sandbox
    finally:
        for dialect in ("otel", "istio"):
            release, namespace, *_ = CASES[dialect]
            traffic_control.remove_target(sandbox.traffic_url, release=release, namespace=namespace)


@pytest.mark.parametrize("dialect", list(CASES))
def test_init_recognises_the_dialect_and_check_passes_its_proposal(
    dialects: Sandbox, dialect: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb = dialects
    release, namespace, preset, selector, business = CASES[dialect]
    path = tmp_path / f"{release}.yaml"
    status = main(
        ["profile", "init", "--prometheus-url", sb.prometheus_url, "--release", release,
         "--namespace", namespace, "--since", SINCE, "-o", str(path)]
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    text = path.read_text()
    values = parse_profile(text, source=str(path)).values
    assert (values["metrics_preset"], values["prometheus_selector"]) == (preset, selector)
    # Keep every business candidate: uncomment them.
    head, _, candidates = text.partition("# business_queries:")
    kept = head + "business_queries:" + candidates.replace("\n#   ", "\n  ")
    path.write_text(kept)
    assert business in parse_profile(kept, source=str(path)).values["business_queries"]
    capsys.readouterr()

    status = main(
        ["profile", "check", str(path), "--since", SINCE, "--step", "1s", "--strict", "--json"]
    )  # the profile's prometheus_url
    document = json.loads(capsys.readouterr().out)
    assert status == 0, json.dumps(document, indent=2)
    signals = {s["signal"]: s for s in document["signals"]}
    assert {name: s["series"] for name, s in signals.items()} == dict.fromkeys(signals, 1)
    assert f"business:{business}" in signals
    assert 0 <= signals["error_ratio"]["max"] < 0.01  # v1.0.0: 0.05% of the requests
    assert 0.2 < signals["p99_latency_s"]["last"] < 0.45  # v1.0.0: 0.3 s, in seconds
    assert signals[f"business:{business}"]["last"] > 0
