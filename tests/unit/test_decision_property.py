"""Property test: the engine against the per-sample, exact reference in benchmarks/ (Hypothesis).

Random series with values from 1e-300 to 1e300 (business ones up to the largest float) and
the thresholds' own values, NaN runs, gaps (exactly 1.5 steps included), absurd outliers,
irregular and sub-second spacing, business columns, deploys on and between samples, ``now``
anywhere after the deploy and random thresholds. Engine and reference must agree on the
verdict, every rule's status, and what fired when (rule, metric, run start, fire time), with
the same peak and threshold up to rounding. Derandomized, so CI sees the same examples every
time.
"""

from __future__ import annotations

import math
from datetime import UTC
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_engine import reference

from runbook_lib.core.decision import evaluate
from runbook_lib.core.settings import Rules

START_NS = 1_795_183_200 * 10**9  # 2026-11-20T14:00:00Z
S = 10**9
NAN = math.nan

RATIOS = st.one_of(
    st.sampled_from([0.0, 0.005, 0.01, 0.0100001, 0.02, 0.5, 1.0, NAN]),
    st.floats(min_value=0.0, max_value=1.0),
)
LATENCIES = st.one_of(
    st.sampled_from([0.0, 0.3, 1.0, 1.0000001, 2.0, 1e300, NAN]),
    st.floats(min_value=1e-300, max_value=1e300),
)
BUSINESS = st.one_of(
    st.sampled_from(
        [
            100.0,
            90.0,
            89.99999999,
            50.0,
            0.0,
            1.8446744073709552e19,
            1e300,
            1.7976931348623157e308,
            NAN,
        ]
    ),
    st.floats(min_value=1e-300, max_value=1e300),
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    step = draw(st.sampled_from([15 * S, 1 * S, 250_000_000, 60 * S]))
    n = draw(st.integers(min_value=0, max_value=48))
    spacing = st.one_of(
        st.just(step),
        st.just(step),
        st.just(step * 3 // 2),  # exactly 1.5 steps: not a gap
        st.just(step * 3 // 2 + 1),  # just over: a gap
        st.just(step * 4),
        st.integers(min_value=1, max_value=3 * step),  # irregular, down to a nanosecond
    )
    gaps = draw(st.lists(spacing, min_size=n, max_size=n))
    offset = draw(st.integers(min_value=0, max_value=10**9 - 1))
    times = (START_NS + offset + np.cumsum(np.array(gaps, dtype=np.int64))).astype(np.int64)
    business = draw(st.sampled_from([(), ("business:orders",), ("business:a", "business:b")]))
    columns: dict[str, list[float]] = {}
    for name, values, levels in (
        ("error_ratio", RATIOS, [0.002, 0.02]),
        ("p99_latency_s", LATENCIES, [0.3, 1e-300]),
        *((name, BUSINESS, [100.0, 1e-300, 1e300, 1.7e308]) for name in business),
    ):
        drawn = draw(st.lists(values, min_size=n, max_size=n))
        if draw(st.booleans()):  # mostly steady, so that rules both fire and stay clear
            level = draw(st.sampled_from(levels))
            drawn = [level if draw(st.integers(0, 7)) else v for v in drawn]
        columns[name] = drawn
    for name, values in columns.items():  # runs of missing samples
        if n and not draw(st.integers(0, 3)):
            start = draw(st.integers(0, n - 1))
            length = draw(st.integers(1, n))
            columns[name] = [
                NAN if start <= i < start + length else v for i, v in enumerate(values)
            ]
    index = pd.DatetimeIndex(times.astype("datetime64[ns]")).tz_localize("UTC")
    frame = pd.DataFrame(
        {k: np.array(v, dtype=np.float64) for k, v in columns.items()}, index=index
    )

    span = int(times[-1] - times[0]) if n else 0
    if n and draw(st.booleans()):
        deploy = int(times[draw(st.integers(n // 3, n - 1))])  # a sample exactly at the deploy
    else:
        deploy = START_NS + draw(st.integers(min_value=span // 4 - step, max_value=span + step))
    if n and draw(st.integers(0, 3)):
        now = max(int(times[-1]), deploy)
    else:
        now = deploy + draw(st.integers(min_value=0, max_value=span + 2 * step))

    window = draw(st.sampled_from([3, 12, 40, 1000])) * step
    choices = [0, 2, 4, 4, 8, 8] if window > 8 * step else [0, 1, 2, 2]
    sustain = draw(st.sampled_from(choices)) * step
    thresholds = {
        "window": window / S,
        "sustain": sustain / S,
        "business_baseline": draw(st.sampled_from([1, 5, 30])) * step / S,
        "business_smoothing": draw(st.sampled_from([1, 3, 10])) * step / S,
        "business_drop": draw(st.sampled_from([0.1, 0.5, 0.0])),
        "step": draw(st.sampled_from([None, None, step / S, 2 * step / S])),
    }
    manual = draw(st.sampled_from([None, None, None, "on-call call"]))
    return {"frame": frame, "deploy": deploy, "now": now, "th": thresholds, "manual": manual}


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_engine_agrees_with_the_exact_reference(case: dict[str, Any]) -> None:
    deployed_at = pd.Timestamp(case["deploy"], tz=UTC)
    now = pd.Timestamp(case["now"], tz=UTC)
    got = evaluate(
        case["frame"],
        deployed_at=deployed_at,
        now=now,
        rules=Rules(**{k: v for k, v in case["th"].items() if k != "step"}),
        step=case["th"]["step"],
        manual_reason=case["manual"],
    )
    expected = reference.reference_evaluate(
        case["frame"], deployed_at=deployed_at, now=now, manual_reason=case["manual"], **case["th"]
    )

    assert got.verdict.value == expected.verdict
    assert {(r.rule.value, r.metric): r.status.value for r in got.rules} == expected.statuses
    assert [
        (t.rule.value, t.metric, t.started_at.value, t.fired_at.value)  # type: ignore[attr-defined]
        for t in got.triggers
    ] == [(t.rule, t.metric, t.started_at, t.fired_at) for t in expected.triggers]
    for mine, theirs in zip(got.triggers, expected.triggers, strict=True):
        assert mine.peak == pytest.approx(theirs.peak, rel=1e-12)
        assert mine.threshold == pytest.approx(theirs.threshold, rel=1e-12)
