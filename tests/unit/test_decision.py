"""DESIGN.md "Decision semantics" boundary by boundary: what fires, when, and what is warned.

Series are sampled every 15 s from 30 min before the deploy to 40 min after it, healthy unless
a case says otherwise; times in the cases are seconds relative to the deploy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from runbook_lib.core.decision import Rule, RuleStatus, evaluate
from runbook_lib.core.settings import Rules
from runbook_lib.errors import ParameterError

DEPLOY = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
OFFSETS = np.arange(-1800, 2400 + 1, 15)


def at(offset_s: float) -> datetime:
    return DEPLOY + timedelta(seconds=offset_s)


def healthy() -> pd.DataFrame:
    index = pd.DatetimeIndex([at(int(s)) for s in OFFSETS])
    return pd.DataFrame(
        {
            "error_ratio": 0.002,
            "p99_latency_s": 0.3,
            "business:orders": 100.0,
        },
        index=index,
    )


Change = Callable[[pd.DataFrame], pd.DataFrame]


def set_between(column: str, start: float, end: float, value: float) -> Change:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        seconds = (frame.index - pd.Timestamp(DEPLOY)).total_seconds()
        changed = frame.copy()
        changed.loc[(seconds >= start) & (seconds <= end), column] = value
        return changed

    return change


def drop_samples(*offsets: float) -> Change:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(index=[pd.Timestamp(at(o)) for o in offsets])

    return change


def move_sample(offset: float, to: float) -> Change:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.rename(index={pd.Timestamp(at(offset)): pd.Timestamp(at(to))})

    return change


def until(offset: float) -> Change:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame.index <= pd.Timestamp(at(offset))]

    return change


@dataclass
class Case:
    changes: list[Change]
    fired: list[tuple[Rule, str, float, float]]  # rule, metric, run start, fired (offsets)
    warnings: list[str] = field(default_factory=list)  # substrings, one warning each
    now: float = 2400
    manual_reason: str | None = None
    rules: Rules = field(default_factory=Rules)


ERR = "error_ratio"
LAT = "p99_latency_s"
ORD = "business:orders"

CASES = {
    "healthy": Case([], []),
    "exactly-1pct-for-the-whole-window": Case([set_between(ERR, 0, 1800, 0.01)], []),
    "just-above-1pct-for-135s": Case(
        [set_between(ERR, 60, 195, 0.0100001)], [(Rule.ERROR_RATE, ERR, 60, 195)]
    ),
    "exactly-120s-does-not-fire": Case([set_between(ERR, 60, 180, 0.05)], []),
    "120s-plus-one-step-fires": Case(
        [set_between(ERR, 60, 195, 0.05)], [(Rule.ERROR_RATE, ERR, 60, 195)]
    ),
    "latency-exactly-1s": Case([set_between(LAT, 0, 1800, 1.0)], []),
    "latency-above-1s": Case(
        [set_between(LAT, 300, 900, 1.2)], [(Rule.LATENCY_P99, LAT, 300, 435)]
    ),
    "gap-of-two-steps-splits-a-run": Case(
        [set_between(ERR, 60, 270, 0.05), drop_samples(150)],
        [],
        ["missing data: no samples from 2026-11-20T14:02:15+00:00 to 2026-11-20T14:02:45"],
    ),
    "same-run-without-the-gap-fires": Case(
        [set_between(ERR, 60, 270, 0.05)], [(Rule.ERROR_RATE, ERR, 60, 195)]
    ),
    "gap-of-exactly-1.5-steps-keeps-the-run": Case(
        [set_between(ERR, 60, 270, 0.05), move_sample(150, 157.5)],
        [(Rule.ERROR_RATE, ERR, 60, 195)],
    ),
    "nan-splits-a-run-and-is-warned": Case(
        [set_between(ERR, 60, 270, 0.05), set_between(ERR, 150, 150, np.nan)],
        [],
        [
            "missing data: error_ratio has 1 empty sample(s) in the window, first at "
            "2026-11-20T14:02:30+00:00"
        ],
    ),
    "pre-deploy-breach-is-a-warning-only": Case(
        [set_between(ERR, -600, -15, 0.05)],
        [],
        ["error_ratio: already above 0.01 before the deploy (40 of 120 samples"],
    ),
    "breach-across-the-deploy-counts-from-the-deploy": Case(
        [set_between(ERR, -600, 90, 0.05)], [], ["error_ratio: already above 0.01 before"]
    ),
    "breach-across-the-deploy-fires-120s-after-it": Case(
        [set_between(ERR, -600, 135, 0.05)],
        [(Rule.ERROR_RATE, ERR, 0, 135)],
        ["error_ratio: already above 0.01 before"],
    ),
    "late-breach-cut-by-the-window-end": Case([set_between(ERR, 1700, 2400, 0.05)], []),
    "breach-after-the-window": Case([set_between(LAT, 1815, 2400, 5.0)], []),
    "breach-ending-at-the-window-end-fires": Case(
        [set_between(ERR, 1665, 2400, 0.05)], [(Rule.ERROR_RATE, ERR, 1665, 1800)]
    ),
    "exact-10pct-drop-does-not-fire": Case([set_between(ORD, 0, 2400, 90.0)], []),
    "drop-just-over-10pct-fires": Case(
        [set_between(ORD, 0, 2400, 89.9)], [(Rule.BUSINESS, ORD, 285, 285)]
    ),
    "smoothing-includes-pre-deploy-samples": Case(
        [set_between(ORD, -150, 2400, 50.0)], [(Rule.BUSINESS, ORD, 0, 0)]
    ),
    "no-baseline-samples": Case(
        [set_between(ORD, -1800, -15, np.nan), set_between(ORD, 0, 2400, 1.0)],
        [],
        ["business:orders: no samples in the baseline period"],
    ),
    "manual-call": Case(
        [until(600)],
        [(Rule.MANUAL, "manual", 600, 600)],
        now=600,
        manual_reason="checkout broken",
    ),
    "samples-after-now-are-ignored": Case(
        [set_between(ERR, 300, 2400, 0.05)],
        [],
        ["134 sample(s) after now (2026-11-20T14:06:40+00:00) ignored"],
        now=400,
    ),
    "custom-thresholds": Case(
        [set_between(ERR, 60, 120, 0.03)],
        [(Rule.ERROR_RATE, ERR, 60, 105)],
        rules=Rules(error_ratio=0.02, sustain=30),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decision_boundaries(case: Case) -> None:
    frame = healthy()
    for change in case.changes:
        frame = change(frame)
    decision = evaluate(
        frame,
        deployed_at=DEPLOY,
        now=at(case.now),
        rules=case.rules,
        manual_reason=case.manual_reason,
    )

    fired = [(t.rule, t.metric, t.started_at, t.fired_at) for t in decision.triggers]
    assert fired == [(r, m, at(s), at(f)) for r, m, s, f in case.fired]
    assert decision.rollback is bool(case.fired)
    assert len(decision.warnings) == len(case.warnings), decision.warnings
    for expected, warning in zip(case.warnings, decision.warnings, strict=True):
        assert expected in warning


def test_trigger_reports_the_peak_of_its_run_and_the_threshold() -> None:
    frame = healthy()
    frame = set_between(ERR, 60, 300, 0.02)(frame)
    frame = set_between(ERR, 240, 240, 0.07)(frame)  # after it fired, still the same run
    frame = set_between(ERR, 600, 800, 0.5)(frame)  # a later run does not change the peak
    trigger = evaluate(frame, deployed_at=DEPLOY, now=at(2400)).triggers[0]
    assert (trigger.peak, trigger.threshold) == (0.07, 0.01)


def test_business_trigger_threshold_is_the_fraction_of_the_baseline() -> None:
    frame = healthy()
    frame = set_between(ORD, -1800, -15, 200.0)(frame)
    frame = set_between(ORD, 0, 2400, 100.0)(frame)
    trigger = evaluate(frame, deployed_at=DEPLOY, now=at(2400)).triggers[0]
    assert (trigger.rule, trigger.threshold, trigger.peak) == (Rule.BUSINESS, 180.0, 100.0)


def test_manual_reason_is_kept_and_json_has_exactly_the_public_keys() -> None:
    frame = until(600)(healthy())
    decision = evaluate(frame, deployed_at=DEPLOY, now=at(600), manual_reason=" IC call ")
    assert decision.triggers[0].reason == "IC call"
    document = decision.to_json_dict()
    assert list(document) == ["rollback", "triggers", "warnings", "verdict", "rules"]
    assert document["triggers"] == [
        {
            "rule": "manual",
            "metric": "manual",
            "started_at": "2026-11-20T14:10:00+00:00",
            "fired_at": "2026-11-20T14:10:00+00:00",
            "peak": 1.0,
            "threshold": 1.0,
        }
    ]


def test_checks_show_rules_that_did_not_fire() -> None:
    decision = evaluate(healthy(), deployed_at=DEPLOY, now=at(2400))
    assert [(c.rule, c.status, c.worst) for c in decision.rules] == [
        (Rule.ERROR_RATE, RuleStatus.CLEAR, 0.002),
        (Rule.LATENCY_P99, RuleStatus.CLEAR, 0.3),
        (Rule.BUSINESS, RuleStatus.CLEAR, 100.0),
    ]


def test_given_step_overrides_the_median_spacing() -> None:
    frame = healthy()
    frame = set_between(ERR, 60, 270, 0.05)(frame)
    frame = drop_samples(150)(frame)
    # With a 30 s step, one missing 15 s sample is not a gap, so the run lasts 210 s and fires.
    decision = evaluate(frame, deployed_at=DEPLOY, now=at(2400), step=30)
    assert [(t.started_at, t.fired_at) for t in decision.triggers] == [(at(60), at(195))]
    assert decision.warnings == ()


def test_data_starting_late_is_warned() -> None:
    frame = healthy()
    frame = frame[frame.index >= pd.Timestamp(at(300))]
    decision = evaluate(frame, deployed_at=DEPLOY, now=at(2400))
    assert any(
        "no samples from 2026-11-20T14:00:00+00:00 to 2026-11-20T14:05:00" in w
        for w in decision.warnings
    )


def test_no_samples_in_the_window_is_warned_not_fired() -> None:
    frame = healthy()
    frame = frame[frame.index < pd.Timestamp(DEPLOY)]
    decision = evaluate(frame, deployed_at=DEPLOY, now=at(2400))
    assert not decision.rollback
    assert decision.warnings[0].startswith("missing data: no samples between the deploy")


def test_bad_inputs_are_listed_together() -> None:
    frame = healthy().drop(columns=[LAT])
    frame.index = frame.index.tz_localize(None)
    with pytest.raises(ParameterError) as caught:
        evaluate(frame, deployed_at=DEPLOY.replace(tzinfo=None), now=at(0), manual_reason=" ")
    assert caught.value.problems == (
        "deployed_at: 2026-11-20T14:00:00 has no UTC offset (add +00:00 or Z)",
        "manual_reason: give the reason for the manual call (it is recorded)",
        "samples: the index must be a tz-aware DatetimeIndex",
        "samples: missing column 'p99_latency_s'",
    )


def test_now_before_the_deploy_is_refused() -> None:
    with pytest.raises(ParameterError, match=r"now: .* is before deployed_at"):
        evaluate(healthy(), deployed_at=DEPLOY, now=at(-60))
