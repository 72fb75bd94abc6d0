"""``runbook profile check``'s judgement: what a person is told about each signal (pure).

Observations are built by hand here; tests/adapters/test_profile_prometheus.py makes a real
Prometheus produce them.
"""

from __future__ import annotations

import math

import pytest

from runbook_lib.core.profile_check import (
    CheckReport,
    Observed,
    Probe,
    SelectorSeen,
    Severity,
    judge,
    probes,
    render,
)
from runbook_lib.core.promql import Metrics
from runbook_lib.core.promql_selectors import Selector, promql_duration_s, selectors_in

NAN = math.nan
RATIO = Probe("error_ratio", "sum(rate(errors[1m])) / sum(rate(requests[1m]))")
LATENCY_RAW = Probe("p99_latency_s", "max(p99_ms) / 1000")
BUILT_S = Probe(
    "p99_latency_s",
    "histogram_quantile(0.99, sum by (le) (rate(h_bucket[1m])))",
    histogram="h",
    unit="s",
    rate_window="1m",
)
BUILT_MS = Probe(
    "p99_latency_s",
    "histogram_quantile(0.99, sum by (le) (rate(h_ms_bucket[1m]))) / 1000",
    histogram="h_ms",
    unit="ms",
    rate_window="1m",
)
ORDERS = Probe("business:orders", "sum(orders_per_minute)")


# --- the selectors a query reads -----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            '(sum(rate(c{job="a",code=~"5.."}[1m])) or vector(0)) / sum(rate(c{job="a"}[1m]))',
            [("c", 'job="a",code=~"5.."', 60.0), ("c", 'job="a"', 60.0)],
            id="built-error-ratio",
        ),
        pytest.param(
            'histogram_quantile(0.99, sum by (le) (rate(h_bucket{a="b"}[5m]))) / 1000',
            [("h_bucket", 'a="b"', 300.0)],
            id="aggregation-with-by-before-its-argument",
        ),
        pytest.param(
            "sum(rate(x[1h30m])) without (pod) * on(job) group_left(team) up",
            [("x", "", 5400.0), ("up", "", None)],
            id="label-lists-are-no-series",
        ),
        pytest.param(
            'avg_over_time(z{a="}"}[10m:1m]) and y offset 5m',
            [("z", 'a="}"', None), ("y", "", None)],
            id="subquery-range-and-a-brace-in-a-string",
        ),
        pytest.param(
            'label_replace(up, "dst", "$1", "src", "(.*)") > bool Inf',
            [("up", "", None)],
            id="strings-and-keywords-are-no-series",
        ),
        pytest.param(
            '{__name__="orders_total", job="shop"}',
            [("orders_total", '__name__="orders_total", job="shop"', None)],
            id="name-among-the-matchers",
        ),
    ],
)
def test_selectors_of_a_query(query: str, expected: list[tuple[str, str, float | None]]) -> None:
    assert [(s.metric, s.matchers, s.range_s) for s in selectors_in(query)] == expected


def test_a_selector_named_in_its_matchers_is_written_without_a_second_name() -> None:
    (one,) = selectors_in('{__name__="orders_total",job="shop"}')
    assert one.text == '{__name__="orders_total",job="shop"}'
    assert Selector("c", 'job="a"').text == 'c{job="a"}'


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("1d", 86400), ("5", None), ("1m5", None)],
    ids=["minutes", "compound", "millis", "day", "bare-number", "trailing-number"],
)
def test_promql_durations(text: str, seconds: float | None) -> None:
    assert promql_duration_s(text) == seconds


def test_probes_follow_the_profile_built_or_raw() -> None:
    metrics = Metrics(
        metrics_preset="istio",
        prometheus_selector='app="shop"',
        business_queries={"baskets": "sum(open_baskets)"},
        business_counters={"orders": "orders_total"},
    )
    found = {p.column: p for p in probes(metrics)}
    assert list(found) == ["error_ratio", "p99_latency_s", "business:orders", "business:baskets"]
    latency = found["p99_latency_s"]
    assert (latency.histogram, latency.unit, latency.rate_window) == (
        "istio_request_duration_milliseconds",
        "ms",
        "1m",
    )
    assert found["business:orders"].rate_window == "1m"
    assert found["business:baskets"].rate_window == ""  # raw: the query's own windows
    raw = probes(Metrics(latency_p99_query="max(p99_ms) / 1000"))
    assert raw[1].histogram == ""


# --- the judgement -------------------------------------------------------------------------


def _one(observed: Observed) -> list[tuple[Severity, str]]:
    (signal,) = judge([observed]).signals
    return [(f.severity, f.message) for f in signal.findings]


def _seen(selector: str, **fields: object) -> SelectorSeen:
    (parsed,) = selectors_in(selector)
    return SelectorSeen(parsed, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("observed", "severity", "words"),
    [
        pytest.param(
            Observed(RATIO, series=1, values=(0.001, 0.002), steps=2),
            None,
            "",
            id="healthy-ratio",
        ),
        pytest.param(
            Observed(RATIO, series=1, values=(1.5, 42.0), steps=2),
            Severity.WARNING,
            "a ratio is 0..1, but it ranges 1.5..42 (a percentage? divide by 100)",
            id="ratio-above-one",
        ),
        pytest.param(
            Observed(RATIO, rejected="bad_data: parse error", steps=2),
            Severity.PROBLEM,
            "Prometheus refused the query: bad_data: parse error",
            id="refused",
        ),
        pytest.param(
            Observed(RATIO, series=0, steps=2),
            Severity.PROBLEM,
            "returns no series",
            id="no-series",
        ),
        pytest.param(
            Observed(RATIO, series=3, values=(0.1, 0.1), steps=2),
            Severity.PROBLEM,
            "returns 3 series; the decision needs one",
            id="several-series",
        ),
        pytest.param(
            Observed(RATIO, series=1, values=(NAN, NAN), steps=2),
            Severity.WARNING,
            "has no value in the window",
            id="only-nan",
        ),
        pytest.param(
            Observed(RATIO, series=1, values=(0.1, NAN, NAN, NAN, 0.1), steps=5),
            Severity.WARNING,
            "has a value at 2 of 5 steps",
            id="gaps",
        ),
        pytest.param(
            Observed(LATENCY_RAW, series=1, values=(0.3, 0.45), steps=2),
            None,
            "",
            id="plausible-seconds",
        ),
        pytest.param(
            Observed(LATENCY_RAW, series=1, values=(300.0, 450.0), steps=2),
            Severity.WARNING,
            'reaches 450 "seconds": no HTTP service\'s p99; milliseconds read as seconds? '
            "(divide by 1000 in latency_p99_query)",
            id="raw-milliseconds-as-seconds",
        ),
        pytest.param(
            Observed(BUILT_S, series=1, values=(450.0,), steps=1),
            Severity.WARNING,
            "(set latency_unit: ms)",
            id="built-milliseconds-as-seconds",
        ),
        pytest.param(
            Observed(BUILT_S, series=1, values=(0.45,), steps=1, buckets=(5, 10, 250, 5000)),
            Severity.WARNING,
            "h's buckets reach 5000: they look like milliseconds",
            id="fast-service-with-millisecond-buckets",
        ),
        pytest.param(
            Observed(BUILT_S, series=1, values=(0.45,), steps=1, buckets=(0.005, 0.5, 10)),
            None,
            "",
            id="seconds-buckets",
        ),
        pytest.param(
            Observed(BUILT_MS, series=1, values=(0.0004,), steps=1),
            Severity.WARNING,
            "at most 0.0004 s after dividing the histogram by 1000: it may count seconds",
            id="seconds-declared-as-milliseconds",
        ),
        pytest.param(
            Observed(BUILT_MS, series=1, values=(0.005,), steps=1, buckets=(0.005, 0.5, 10)),
            Severity.WARNING,
            "h_ms's buckets end at 10: they look like seconds, but the profile reads them as "
            "milliseconds",
            id="seconds-buckets-declared-as-milliseconds",
        ),
        pytest.param(
            Observed(ORDERS, series=1, values=(0.0, 0.0), steps=2),
            Severity.WARNING,
            "is 0 throughout the window",
            id="business-always-zero",
        ),
        pytest.param(
            Observed(ORDERS, series=1, values=(3.0, -1.0), steps=2),
            Severity.WARNING,
            "goes negative (-1)",
            id="business-negative",
        ),
    ],
)
def test_values(observed: Observed, severity: Severity | None, words: str) -> None:
    found = _one(observed)
    if severity is None:
        assert found == []
    else:
        assert [s for s, _ in found] == [severity], found
        assert words in found[0][1]


def test_a_metric_that_does_not_exist_is_named_with_close_ones() -> None:
    seen = _seen("http_request_total", exists=False, series=0, similar=("http_requests_total",))
    found = _one(Observed(RATIO, series=0, steps=1, selectors=(seen,)))
    assert (
        Severity.WARNING,
        "metric http_request_total does not exist in this Prometheus; did you mean "
        "http_requests_total?",
    ) in found


def test_a_selector_that_matches_nothing_shows_the_values_the_metric_has() -> None:
    seen = _seen(
        'requests{release="shpo"}',
        series=0,
        known_values={"release": ("app", "shop")},
    )
    found = _one(Observed(RATIO, series=0, steps=1, selectors=(seen,)))
    assert (
        Severity.WARNING,
        'selector requests{release="shpo"} matches no series in the window (requests has '
        "release: app, shop)",
    ) in found


def test_no_errors_yet_is_a_note_when_the_metrics_other_selector_matches() -> None:
    errors = _seen('c{code=~"5.."}[1m]', series=0)
    every = _seen("c[1m]", series=4, scrape_interval_s=1.0)
    found = _one(Observed(RATIO, series=1, values=(0.0,), steps=1, selectors=(errors, every)))
    assert [s for s, _ in found] == [Severity.NOTE]


@pytest.mark.parametrize(
    ("probe", "window", "interval", "fix"),
    [
        pytest.param(BUILT_S, "[2s]", 1.0, "set prometheus_rate_window: 4s or more", id="built"),
        pytest.param(RATIO, "[30s]", 15.0, "use [1m] or more in the query", id="raw"),
    ],
)
def test_a_rate_window_under_four_scrapes(
    probe: Probe, window: str, interval: float, fix: str
) -> None:
    seen = _seen(f"h_bucket{window}", series=2, scrape_interval_s=interval)
    found = _one(Observed(probe, series=1, values=(0.1,), steps=1, selectors=(seen,)))
    assert len(found) == 1
    severity, message = found[0]
    assert severity is Severity.WARNING
    assert message.startswith(f"range {window} of h_bucket is under four scrape intervals")
    assert message.endswith(fix)


def test_four_scrapes_exactly_is_enough() -> None:
    seen = _seen("h_bucket[4s]", series=2, scrape_interval_s=1.0)
    assert _one(Observed(BUILT_S, series=1, values=(0.1,), steps=1, selectors=(seen,))) == []


def test_the_report_says_the_worst_and_renders_every_signal() -> None:
    report = judge(
        [
            Observed(RATIO, series=1, values=(0.001, 0.002), steps=2),
            Observed(LATENCY_RAW, series=1, values=(300.0,), steps=1),
            Observed(ORDERS, series=0, steps=2),
        ]
    )
    assert isinstance(report, CheckReport)
    assert report.worst is Severity.PROBLEM
    assert [s.worst for s in report.signals] == [None, Severity.WARNING, Severity.PROBLEM]
    ratio = report.signals[0]
    assert (ratio.series, ratio.last, ratio.low, ratio.high) == (1, 0.002, 0.001, 0.002)
    text = render(report, source="shop.yaml", url="http://p:9090", window="10m")
    assert "ok   error_ratio: 1 series, last 0.002, range 0.001..0.002 (2 of 2 steps)" in text
    assert "WARN p99_latency_s:" in text
    assert "FAIL business:orders: 0 series, no value" in text
    assert text.endswith("1 problem(s), 1 warning(s)")
