"""The PromQL of "When to Rollback" (pure): built from a naming preset, or raw per signal.

A service is judged on three kinds of series whatever its instrumentation: the 5xx ratio
(0..1), the p99 latency in seconds, and its business metrics. Each preset fills in the
building blocks of a common convention; a latency histogram in milliseconds is divided by 1000
because its unit is declared, never guessed; a raw query is run as written.
"""

from __future__ import annotations

import pytest

from runbook_lib.core.promql import PRESETS, Metrics, build_queries, selector_from_labels
from runbook_lib.errors import ParameterError


def test_default_queries_are_the_runbook_formulas() -> None:
    queries = build_queries(Metrics())
    assert queries == {
        "error_ratio": '(sum(rate(http_requests_total{code=~"5.."}[1m])) or vector(0))'
        " / sum(rate(http_requests_total[1m]))",
        "p99_latency_s": "histogram_quantile(0.99, sum by (le) "
        "(rate(http_request_duration_seconds_bucket[1m])))",
    }


def test_selector_applies_to_every_built_query_and_raw_queries_win() -> None:
    metrics = Metrics(
        prometheus_selector='job="api",env!="dev"',
        prometheus_rate_window="30s",
        business_counters={"orders": "orders_total"},
        business_queries={"signups": "sum(rate(signups_total[5m]))"},
        latency_p99_query=" max(p99_seconds) ",
    )
    queries = build_queries(metrics)
    assert list(queries) == ["error_ratio", "p99_latency_s", "business:orders", "business:signups"]
    assert queries["error_ratio"] == (
        '(sum(rate(http_requests_total{job="api",env!="dev",code=~"5.."}[30s])) or vector(0))'
        ' / sum(rate(http_requests_total{job="api",env!="dev"}[30s]))'
    )
    assert queries["p99_latency_s"] == "max(p99_seconds)"
    assert queries["business:orders"] == 'sum(rate(orders_total{job="api",env!="dev"}[30s]))'
    assert queries["business:signups"] == "sum(rate(signups_total[5m]))"


def test_label_values_are_escaped() -> None:
    assert selector_from_labels({"job": 'a"b\\c', "ns": "x"}) == 'job="a\\"b\\\\c",ns="x"'
    with pytest.raises(ParameterError, match="not a label name"):
        selector_from_labels({"bad-name": "x"})


def test_every_problem_is_listed_at_once_by_the_settings_names() -> None:
    with pytest.raises(ParameterError) as caught:
        Metrics(
            request_counter="http requests",
            prometheus_selector="job=api",
            prometheus_rate_window="1 minute",
            business_counters={"orders": "orders-total"},
            error_ratio_query="  ",
        )
    fields = sorted(p.split(":")[0] for p in caught.value.problems)
    assert fields == [
        "business_counters",
        "error_ratio_query",
        "prometheus_rate_window",
        "prometheus_selector",
        "request_counter",
    ]


# --- presets: the common conventions ---------------------------------------------------------

_SEL = 'app="shop"'


@pytest.mark.parametrize(
    ("preset", "error_ratio", "p99"),
    [
        pytest.param(
            "prometheus-client",
            '(sum(rate(http_requests_total{app="shop",code=~"5.."}[1m])) or vector(0))'
            ' / sum(rate(http_requests_total{app="shop"}[1m]))',
            "histogram_quantile(0.99, sum by (le) "
            '(rate(http_request_duration_seconds_bucket{app="shop"}[1m])))',
            id="prometheus-client",
        ),
        pytest.param(
            "otel",
            "(sum(rate(http_server_request_duration_seconds_count"
            '{app="shop",http_response_status_code=~"5.."}[1m])) or vector(0))'
            ' / sum(rate(http_server_request_duration_seconds_count{app="shop"}[1m]))',
            "histogram_quantile(0.99, sum by (le) "
            '(rate(http_server_request_duration_seconds_bucket{app="shop"}[1m])))',
            id="otel",
        ),
        pytest.param(
            "istio",
            '(sum(rate(istio_requests_total{app="shop",response_code=~"5.."}[1m])) or vector(0))'
            ' / sum(rate(istio_requests_total{app="shop"}[1m]))',
            "histogram_quantile(0.99, sum by (le) "
            '(rate(istio_request_duration_milliseconds_bucket{app="shop"}[1m]))) / 1000',
            id="istio-ms",
        ),
        pytest.param(
            "nginx-ingress",
            '(sum(rate(nginx_ingress_controller_requests{app="shop",status=~"5.."}[1m]))'
            ' or vector(0)) / sum(rate(nginx_ingress_controller_requests{app="shop"}[1m]))',
            "histogram_quantile(0.99, sum by (le) "
            '(rate(nginx_ingress_controller_request_duration_seconds_bucket{app="shop"}[1m])))',
            id="nginx-ingress",
        ),
        pytest.param(
            "linkerd",
            '(sum(rate(response_total{app="shop",classification=~"failure"}[1m])) or vector(0))'
            ' / sum(rate(response_total{app="shop"}[1m]))',
            "histogram_quantile(0.99, sum by (le) "
            '(rate(response_latency_ms_bucket{app="shop"}[1m]))) / 1000',
            id="linkerd-ms",
        ),
    ],
)
def test_each_preset_builds_its_conventions_queries(
    preset: str, error_ratio: str, p99: str
) -> None:
    queries = build_queries(Metrics(metrics_preset=preset, prometheus_selector=_SEL))
    assert queries == {"error_ratio": error_ratio, "p99_latency_s": p99}


def test_every_preset_is_tested_above() -> None:
    assert set(PRESETS) == {"prometheus-client", "otel", "istio", "nginx-ingress", "linkerd"}


def test_a_building_block_given_overrides_the_presets() -> None:
    metrics = Metrics(
        metrics_preset="istio",
        request_counter="mesh_requests_total",
        status_label="status",
        error_regex="5..|429",
    )
    queries = build_queries(metrics)
    assert queries["error_ratio"] == (
        '(sum(rate(mesh_requests_total{status=~"5..|429"}[1m])) or vector(0))'
        " / sum(rate(mesh_requests_total[1m]))"
    )
    assert queries["p99_latency_s"].endswith(
        "istio_request_duration_milliseconds_bucket[1m]))) / 1000"
    )


# --- units: declared, never guessed ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "divided"),
    [
        pytest.param({"latency_histogram": "rpc_ms", "latency_unit": "ms"}, True, id="ms"),
        pytest.param({"latency_histogram": "rpc", "latency_unit": "ms"}, True, id="ms-no-suffix"),
        pytest.param({"latency_histogram": "rpc", "latency_unit": "s"}, False, id="s"),
        pytest.param({"latency_histogram": "rpc_duration_seconds"}, False, id="s-by-default"),
        pytest.param(
            {"metrics_preset": "istio", "latency_unit": "s", "latency_histogram": "istio_rpc"},
            False,
            id="preset-unit-overridden",
        ),
    ],
)
def test_a_histogram_in_milliseconds_is_divided_to_seconds(
    fields: dict[str, str], divided: bool
) -> None:
    p99 = build_queries(Metrics(**fields))["p99_latency_s"]
    assert p99.endswith(" / 1000") is divided


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        pytest.param(
            {"latency_histogram": "rpc_latency_milliseconds"},
            "'rpc_latency_milliseconds' reads milliseconds but the unit is seconds",
            id="ms-name-read-as-seconds",
        ),
        pytest.param(
            {"latency_histogram": "rpc_latency_ms", "latency_unit": "s"},
            "'rpc_latency_ms' reads milliseconds but the unit is seconds (latency_unit)",
            id="ms-name-declared-seconds",
        ),
        pytest.param(
            {"metrics_preset": "istio", "latency_histogram": "rpc_duration_seconds"},
            "'rpc_duration_seconds' reads seconds but the unit is milliseconds (preset istio)",
            id="s-name-under-an-ms-preset",
        ),
        pytest.param(
            {"latency_p99_query": "max(p99_ms)", "latency_unit": "ms"},
            "latency_p99_query must return seconds",
            id="unit-with-a-raw-query",
        ),
        pytest.param(
            {"latency_histogram": "rpc_seconds_bucket"},
            "without _bucket",
            id="bucket-suffix",
        ),
    ],
)
def test_a_unit_that_contradicts_the_name_is_refused(fields: dict[str, str], problem: str) -> None:
    with pytest.raises(ParameterError, match="latency_") as caught:
        Metrics(**fields)
    assert problem in str(caught.value)


def test_raw_queries_of_any_shape_are_run_as_written() -> None:
    metrics = Metrics(
        error_ratio_query="sum(rate(errors_total[2m])) / sum(rate(requests_total[2m]))",
        latency_p99_query="max(p99_latency_ms) / 1000",
        business_queries={
            "orders_per_minute": 'sum(orders_per_minute{app="shop"})',  # a gauge
            "checkout_share": "sum(rate(checkouts_total[1m])) / sum(rate(visits_total[1m]))",
        },
    )
    queries = build_queries(metrics)
    assert queries == {
        "error_ratio": "sum(rate(errors_total[2m])) / sum(rate(requests_total[2m]))",
        "p99_latency_s": "max(p99_latency_ms) / 1000",
        "business:orders_per_minute": 'sum(orders_per_minute{app="shop"})',
        "business:checkout_share": "sum(rate(checkouts_total[1m])) / sum(rate(visits_total[1m]))",
    }


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        pytest.param(
            {"business_queries": {"orders": "x", "basket-size": "y"}},
            "business_queries: 'basket-size' cannot name a business metric",
            id="name-not-an-identifier",
        ),
        pytest.param(
            {"business_queries": {"orders": " "}},
            "business_queries: orders: empty",
            id="empty-query",
        ),
        pytest.param(
            {"business_counters": {"orders": "orders_total"}, "business_queries": {"orders": "x"}},
            "business_counters: 'orders' is also given in business_queries",
            id="given-twice",
        ),
    ],
)
def test_business_metrics_are_named_once(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(ParameterError) as caught:
        Metrics(**fields)  # type: ignore[arg-type]
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems
