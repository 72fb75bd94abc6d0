"""``runbook rules``: the generated rule file, its boundaries, and the CLI's bad input.

``test_alert_rules_promtool.py`` runs the same rules through Prometheus' own ``promtool``;
here the pure parts and the agreement with the decision engine on the same samples.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from runbook_lib.cli.main import main
from runbook_lib.core.alert_rules import (
    hold_duration,
    promql_duration,
    render_rule_file,
    rule_groups,
)
from runbook_lib.core.decision import evaluate
from runbook_lib.core.promql import build_queries
from runbook_lib.core.settings import Entry, Settings, from_flat


@pytest.mark.parametrize(
    ("sustain", "step", "hold"),
    [
        (120, 15, 135),  # a run of exactly 120 s must not fire: for is one interval more
        (120, 1, 121),
        (120, 50, 150),  # 150 s is the first run on a 50 s grid longer than 120 s
        (0, 15, 15),  # "longer than 0 s" needs two breaching samples
        (0.3, 0.1, 0.4),  # whole milliseconds, no float drift
    ],
)
def test_hold_duration_is_the_first_multiple_of_the_step_beyond_the_sustain(
    sustain: float, step: float, hold: float
) -> None:
    assert hold_duration(sustain, step) == hold


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (135, "2m15s"),
        (120, "2m"),
        (1800, "30m"),
        (0.5, "500ms"),
        (3661.5, "1h1m1s500ms"),
        (0, "0s"),
    ],
)
def test_promql_durations_read_like_people_write_them(seconds: float, text: str) -> None:
    assert promql_duration(seconds) == text


def _samples(breaching: int, *, ratio: float = 0.1) -> pd.DataFrame:
    """15 s samples: healthy, then ``breaching`` samples at ``ratio`` from 60 s, then healthy."""
    values = np.zeros(30)
    values[4 : 4 + breaching] = ratio
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    index = pd.DatetimeIndex(
        [start + timedelta(seconds=15 * i) for i in range(30)], name="timestamp"
    )
    return pd.DataFrame({"error_ratio": values, "p99_latency_s": np.full(30, 0.1)}, index=index)


@pytest.mark.parametrize(("breaching", "fires_at_s"), [(9, None), (10, 195)])
def test_the_engine_fires_at_the_sample_where_the_promtool_cases_expect_the_alert(
    breaching: int, fires_at_s: int | None
) -> None:
    # The same series as boundaries.test.yml's "exactly the sustain" and "one scrape more":
    # the engine and the generated rule agree on when (and whether) it fires.
    samples = _samples(breaching)
    start = samples.index[0].to_pydatetime()
    decision = evaluate(samples, deployed_at=start, now=samples.index[-1].to_pydatetime())
    fired = [t.fired_at for t in decision.triggers]
    expected = [] if fires_at_s is None else [start + timedelta(seconds=fires_at_s)]
    assert fired == expected


def test_recording_rules_use_the_queries_of_evaluate_prometheus() -> None:
    settings = from_flat(
        {
            "release": "shop",
            "namespace": "prod",
            "prometheus_selector": 'job="api"',
            "business_counters": "orders=orders_total",
        },
        used_by=Entry.RULES,
    )
    (group,) = rule_groups(settings)["groups"]
    recorded = {r["record"]: r["expr"] for r in group["rules"] if "record" in r}
    assert list(recorded.values()) == list(build_queries(settings.metrics).values())
    assert set(recorded) == {
        "runbook:error_ratio",
        "runbook:p99_latency_seconds",
        "runbook:business:orders",
    }
    for rule in group["rules"]:
        assert rule["labels"]["release"] == "shop"
        assert rule["labels"]["namespace"] == "prod"
    assert group["interval"] == "15s"


def test_alerting_rules_carry_the_thresholds_and_the_sustain() -> None:
    settings = from_flat(
        {
            "business_counters": "orders=orders_total",
            "error_ratio": "2%",
            "latency_p99": "800ms",
            "sustain": "1m",
            "business_drop": "25%",
            "step": "10s",
        },
        used_by=Entry.RULES,
    )
    alerts = {r["alert"]: r for r in rule_groups(settings)["groups"][0]["rules"] if "alert" in r}
    error = alerts["RunbookErrorRatioHigh"]
    assert error["expr"] == 'runbook:error_ratio{release="app",namespace="default"} > 0.02'
    assert error["for"] == "1m10s"
    assert alerts["RunbookLatencyP99High"]["expr"].endswith(" > 0.8")
    business = alerts["RunbookBusinessDrop"]
    assert "for" not in business  # the engine's business rule has no sustain
    assert "[5m]) < 0.74999999999925 * avg_over_time(" in business["expr"]
    assert business["expr"].endswith("[30m] offset 5m)")
    assert {a["labels"]["runbook_rule"] for a in alerts.values()} == {
        "error_rate",
        "latency_p99",
        "business",
    }


def test_the_file_is_yaml_with_a_header_saying_how_to_check_it() -> None:
    text = render_rule_file(Settings())
    assert text.startswith("# Prometheus rules for release app (namespace default)")
    assert "promtool check rules" in text
    assert yaml.safe_load(text) == rule_groups(Settings())


def test_the_cli_takes_the_vocabulary_names_and_writes_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rules.yml"
    status = main(
        [
            "rules",
            "--release", "shop",
            "--namespace", "prod",
            "--prometheus-selector", 'job="api"',
            "--prometheus-rate-window", "30s",
            "--business-counters", "orders=orders_total, logins=logins_total",
            "--error-ratio", "2%",
            "--latency-p99", "800ms",
            "--sustain", "90s",
            "--step", "5s",
            "--output", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    assert "promtool check rules" in capsys.readouterr().out
    (group,) = yaml.safe_load(out.read_text())["groups"]
    assert group["interval"] == "5s"
    exprs = {r.get("alert") or r["record"]: r["expr"] for r in group["rules"]}
    assert exprs["RunbookErrorRatioHigh"].endswith(" > 0.02")
    assert exprs["RunbookLatencyP99High"].endswith(" > 0.8")
    assert 'logins_total{job="api"}[30s]' in exprs["runbook:business:logins"]
    assert {r.get("for") for r in group["rules"] if "alert" in r} == {"1m35s", None}


def test_bad_options_are_all_named_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["rules", "--sustain", "90", "--error-ratio", "150%", "--business-counters", "orders"]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "--sustain: '90' has no unit" in err
    assert "--error-ratio:" in err
    assert "--business-counters: expected NAME=COUNTER, got 'orders'" in err


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"release": "Shop_1"}, "--release: not a Helm release name"),
        ({"namespace": "-x"}, "--namespace: not a namespace name"),
        ({"prometheus_selector": "job=api"}, "--prometheus-selector: expected label matchers"),
        ({"prometheus_rate_window": "1 minute"}, "--prometheus-rate-window: not a PromQL"),
        ({"business_counters": "or-ders=orders_total"}, "--business-counters: 'or-ders' cannot"),
        ({"step": "0.5ms"}, "--step: at least 1ms, in whole milliseconds"),
        ({"request_counter": "http requests"}, "--request-counter: not a Prometheus metric"),
    ],
)
def test_each_bad_value_names_its_option(
    given: dict[str, str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    options = [f"--{name}={value}" for name, value in given.items()]
    assert main(["rules", *options]) == 2
    assert named in capsys.readouterr().err
