"""``runbook profile init``'s proposal: which convention, which labels, what a person reviews.

Surveys are written by hand here (what a Prometheus would hold); the proposal must load with
the profile reader as it stands, and with its business candidates uncommented.
"""

from __future__ import annotations

import pytest

from runbook_lib.core.profile import parse_profile
from runbook_lib.core.profile_init import (
    MetricInfo,
    PresetSeen,
    Proposal,
    Survey,
    candidate_presets,
    interesting_labels,
    propose,
    render,
)

URL = "http://prometheus.monitoring:9090"
PROM_NAMES = {
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "orders_total",
    "process_cpu_seconds_total",
    "runbook:error_ratio",
}
ISTIO = PresetSeen(
    name="istio",
    labels={
        "destination_workload": ("shop", "cart"),
        "destination_canonical_service": ("shop", "cart"),
        "destination_workload_namespace": ("prod",),
        "namespace": ("istio-system",),
        "reporter": ("source", "destination"),
    },
    buckets=(0.5, 1, 5, 10, 25, 100, 250, 1000, 10000),
    release_metrics={
        ("destination_canonical_service", "destination_workload_namespace"): (
            "istio_requests_total",
            "istio_request_duration_milliseconds_bucket",
        ),
        ("destination_workload", ""): ("istio_requests_total",),
    },
    scrape_interval_s=30.0,
)
CLIENT = PresetSeen(
    name="prometheus-client",
    labels={"release": ("app", "shop"), "namespace": ("default", "prod"), "code": ("200",)},
    buckets=(0.005, 0.1, 1, 10),
    release_metrics={
        ("release", "namespace"): (
            "http_requests_total",
            "http_request_duration_seconds_bucket",
            "orders_total",
            "open_baskets",
            "checkout_seconds_bucket",
            "process_cpu_seconds_total",
            "runbook:error_ratio",
            "ALERTS",  # Prometheus's own series for a firing rule about the release
            "ALERTS_FOR_STATE",
        ),
    },
    scrape_interval_s=1.0,
)
METADATA = {
    "orders": MetricInfo("counter", "Orders placed.\nSuccessfully."),
    "open_baskets": MetricInfo("gauge", "Baskets open now."),
    "checkout_seconds": MetricInfo("histogram", "Checkout time."),
}


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        pytest.param(PROM_NAMES, ("prometheus-client",), id="client-library"),
        pytest.param(
            {
                "http_server_request_duration_seconds_count",
                "http_server_request_duration_seconds_bucket",
            },
            ("otel",),
            id="otel-counts-with-the-histogram",
        ),
        pytest.param({"istio_requests_total"}, (), id="no-histogram-no-preset"),
        pytest.param(
            {
                "response_total",
                "response_latency_ms_bucket",
                "http_requests_total",
                "http_request_duration_seconds_bucket",
            },
            ("prometheus-client", "linkerd"),
            id="two-conventions",
        ),
    ],
)
def test_candidate_presets(names: set[str], expected: tuple[str, ...]) -> None:
    assert candidate_presets(names) == expected


def test_interesting_labels_skip_buckets_and_keep_what_the_convention_needs() -> None:
    assert interesting_labels(["__name__", "le", "app"], preset_name="linkerd") == (
        "app",
        "direction",
    )


def test_istio_is_selected_by_its_destination_labels_and_reporter() -> None:
    proposal = propose(Survey(URL, presets=(ISTIO,)), release="shop", namespace="prod")
    assert proposal.preset == "istio"
    assert dict(proposal.selector) == {
        "destination_canonical_service": "shop",
        "destination_workload_namespace": "prod",
        "reporter": "destination",
    }
    assert proposal.rate_window == "2m"  # four scrapes of 30 s, in whole minutes
    assert "the release: destination_canonical_service=shop (also in destination_workload)" in (
        proposal.found
    )
    assert proposal.business == ()
    assert proposal.review == ()


def test_the_preset_that_carries_the_release_wins_and_business_candidates_are_listed() -> None:
    survey = Survey(URL, metadata=METADATA, presets=(ISTIO, CLIENT))
    proposal = propose(survey, release="app", namespace="default")
    assert proposal.preset == "prometheus-client"  # istio's series do not carry "app"
    assert dict(proposal.selector) == {"release": "app", "namespace": "default"}
    assert proposal.rate_window == "1m"
    assert [(c.name, c.type, c.query) for c in proposal.business] == [
        ("orders", "counter", 'sum(rate(orders_total{release="app",namespace="default"}[1m]))'),
        ("open_baskets", "gauge", 'sum(open_baskets{release="app",namespace="default"})'),
    ]
    assert proposal.business[0].help == "Orders placed. Successfully."


def test_a_namespace_no_label_carries_is_for_review() -> None:
    proposal = propose(Survey(URL, presets=(CLIENT,)), release="shop", namespace="staging")
    assert dict(proposal.selector) == {"release": "shop"}
    assert proposal.review == (
        "no label of http_requests_total carries the namespace 'staging': the selector "
        "matches the release in every namespace",
    )


def test_buckets_that_contradict_the_convention_are_for_review() -> None:
    odd = PresetSeen(name="prometheus-client", labels={"release": ("shop",)}, buckets=(5, 5000))
    proposal = propose(Survey(URL, presets=(odd,)), release="shop", namespace="")
    assert proposal.review[0].startswith(
        "http_request_duration_seconds's buckets reach 5000: they look like milliseconds"
    )


@pytest.mark.parametrize(
    ("survey", "why"),
    [
        pytest.param(Survey(URL), "none of the conventions' metrics exist", id="nothing-known"),
        pytest.param(
            Survey(URL, presets=(CLIENT,)),
            "the metrics of prometheus-client exist, but no series of their request counters "
            "carries 'ghost'",
            id="release-not-found",
        ),
    ],
)
def test_unrecognised_release_gives_a_skeleton_to_fill(survey: Survey, why: str) -> None:
    proposal = propose(survey, release="ghost", namespace="")
    assert not proposal.complete
    assert proposal.found[0].startswith(f"no convention recognised: {why}")
    loaded = parse_profile(_render(proposal), source="ghost.yaml")
    assert loaded.problems == ()
    assert dict(loaded.values) == {"release": "ghost", "prometheus_url": URL}


def _render(proposal: Proposal) -> str:
    return render(proposal, command="runbook profile init", at="2026-12-06T10:00:00+00:00")


def test_the_written_profile_loads_as_proposed_and_with_its_candidates_uncommented() -> None:
    survey = Survey(URL, metadata=METADATA, presets=(CLIENT,))
    text = _render(propose(survey, release="app", namespace="default"))
    loaded = parse_profile(text, source="app.yaml")
    assert loaded.problems == ()
    assert dict(loaded.values) == {
        "release": "app",
        "namespace": "default",
        "prometheus_url": URL,
        "metrics_preset": "prometheus-client",
        "prometheus_selector": 'release="app",namespace="default"',
        "prometheus_rate_window": "1m",
    }
    assert "# REVIEW: the Deployment the release runs" in text
    kept = text.replace("# business_queries:", "business_queries:").replace(
        "#   orders:", "  orders:"
    )
    assert parse_profile(kept, source="app.yaml").values["business_queries"] == {
        "orders": 'sum(rate(orders_total{release="app",namespace="default"}[1m]))'
    }
