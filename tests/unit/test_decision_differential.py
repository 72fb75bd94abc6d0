"""Differential test: the vectorised engine against the per-sample reference in benchmarks/.

Random but seeded series that hover around every threshold (values exactly at the threshold
included), with missing values, dropped samples (gaps) and deploys at random moments. Any
disagreement on what fires, when, its peak or its threshold fails with the seed to replay it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from reference_engine import reference

from runbook_lib.core import decision
from runbook_lib.core.decision import evaluate
from runbook_lib.core.recovery import check_recovery
from runbook_lib.core.settings import Rules

START = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)


def _random_frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    step = int(rng.choice([1, 5, 15, 30]))
    index = pd.date_range(START, periods=n, freq=f"{step}s", tz="UTC")
    keep = rng.random(n) > rng.choice([0.0, 0.02, 0.1])  # dropped samples make gaps
    keep[:2] = True

    def hovering(limit: float) -> np.ndarray:
        # Long stretches above or below the limit, with some samples exactly on it.
        level = np.repeat(rng.choice([0.5, 1.0, 3.0], size=n // 8 + 1), 8)[:n] * limit
        values = level * rng.uniform(0.7, 1.3, n)
        values[rng.random(n) < 0.05] = limit
        values[rng.random(n) < rng.choice([0.0, 0.03])] = np.nan
        return values

    orders = np.repeat(rng.uniform(80, 120, n // 20 + 1), 20)[:n]
    orders[rng.random(n) < 0.02] = np.nan
    frame = pd.DataFrame(
        {
            "error_ratio": hovering(0.01),
            "p99_latency_s": hovering(1.0),
            "business:orders": orders,
            "business:logins": np.where(np.arange(n) > n // 2, 60.0, 100.0),
        },
        index=index,
    )
    return frame[keep]


def _as_tuples(triggers: list) -> list[tuple]:  # type: ignore[type-arg]
    return [(t.rule, t.metric, t.started_at, t.fired_at) for t in triggers]


@pytest.mark.parametrize("seed", range(60), ids=lambda s: f"seed{s}")
def test_vectorised_engine_agrees_with_the_per_sample_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = _random_frame(rng, int(rng.integers(50, 900)))
    span = frame.index[-1] - frame.index[0]
    deployed_at = frame.index[0] + span * float(rng.uniform(0.1, 0.7))
    now = frame.index[0] + span * float(rng.uniform(0.75, 1.1))
    settings = {
        "window": float(rng.choice([300.0, 900.0, 1800.0])),
        "sustain": float(rng.choice([0.0, 30.0, 120.0])),
        "step": None if rng.random() < 0.7 else float(rng.choice([5.0, 15.0])),
    }

    rules = Rules(window=settings["window"], sustain=settings["sustain"])
    got = evaluate(frame, deployed_at=deployed_at, now=now, rules=rules, step=settings["step"])
    expected = reference.reference_evaluate(frame, deployed_at=deployed_at, now=now, **settings)

    assert got.verdict.value == expected.verdict, f"seed {seed}"
    assert {(r.rule.value, r.metric): r.status.value for r in got.rules} == expected.statuses
    assert [
        (t.rule.value, t.metric, t.started_at.value, t.fired_at.value) for t in got.triggers
    ] == _as_tuples(expected.triggers), f"seed {seed}"
    for mine, theirs in zip(got.triggers, expected.triggers, strict=True):
        assert mine.peak == pytest.approx(theirs.peak, rel=1e-12), f"seed {seed}"
        assert mine.threshold == pytest.approx(theirs.threshold, rel=1e-12), f"seed {seed}"


@pytest.mark.parametrize("seed", range(40), ids=lambda s: f"seed{s}")
def test_recovery_agrees_with_the_per_sample_reference(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(5, 60))
    index = pd.date_range(START, periods=n, freq="15s", tz="UTC")
    values = np.where(rng.random(n) < 0.5, 0.0005, 0.002)
    values[rng.random(n) < 0.1] = 0.001  # exactly the limit is not "below"
    values[rng.random(n) < 0.05] = np.nan
    keep = rng.random(n) > 0.1
    frame = pd.DataFrame({"error_ratio": values}, index=index)[keep]
    if frame.empty:
        return
    done = (index[0] + timedelta(seconds=float(rng.uniform(0, 120)))).to_pydatetime()

    got = check_recovery(frame, rollout_done_at=done)
    expected = reference.reference_recovery(frame, rollout_done_at=done)

    assert (got.recovered, got.recovered_at) == (expected.recovered, expected.recovered_at)


def test_reference_uses_the_same_tolerance_as_the_engine() -> None:
    assert reference.BUSINESS_TOLERANCE == decision.BUSINESS_TOLERANCE
