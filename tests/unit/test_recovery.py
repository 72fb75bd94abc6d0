"""Rollback Steps, step 4 ("Check error rate"): below 0.1% within 120 s, for 2 samples in a row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from runbook_lib.core.recovery import check_recovery
from runbook_lib.core.settings import RecoveryCheck

DONE = datetime(2026, 11, 20, 14, 10, tzinfo=UTC)


def series(values: list[float], *, start_s: float = 0, step_s: float = 15) -> pd.DataFrame:
    index = pd.DatetimeIndex(
        [DONE + timedelta(seconds=start_s + i * step_s) for i in range(len(values))]
    )
    return pd.DataFrame({"error_ratio": values}, index=index)


HIGH, LOW, NAN = 0.05, 0.0002, float("nan")

CASES = {
    # values at 0, 15, 30, ... s after the rollout: (recovered, recovered_at offset, conclusive)
    "immediately": ([LOW, LOW], (True, 15, True)),
    "falls-below-at-120s": ([HIGH] * 8 + [LOW, LOW], (True, 135, True)),
    "falls-below-at-135s-too-late": ([HIGH] * 9 + [LOW, LOW, LOW], (False, None, True)),
    "exactly-0.1pct-is-not-below": ([0.001] * 12, (False, None, True)),
    "one-sample-below-then-up": ([HIGH, LOW, HIGH, LOW, HIGH] + [HIGH] * 8, (False, None, True)),
    "nan-breaks-consecutive": ([LOW, NAN, LOW, HIGH] + [HIGH] * 8, (False, None, True)),
    "waiting-before-the-deadline": ([HIGH, HIGH], (False, None, False)),
    "in-time-run-still-too-short": ([HIGH] * 8 + [LOW], (False, None, False)),
}


@pytest.mark.parametrize(("values", "expected"), CASES.values(), ids=CASES.keys())
def test_recovery(values: list[float], expected: tuple[bool, float | None, bool]) -> None:
    result = check_recovery(series(values), rollout_done_at=DONE, check=RecoveryCheck())
    recovered, at, conclusive = expected
    assert result.recovered is recovered, result.reason
    assert result.recovered_at == (None if at is None else DONE + timedelta(seconds=at))
    assert result.conclusive is conclusive
    assert result.last_value == next(v for v in reversed(values) if not np.isnan(v))


def test_gap_breaks_consecutive_samples() -> None:
    frame = series([HIGH, LOW, LOW, HIGH] + [HIGH] * 8).drop(index=[DONE + timedelta(seconds=30)])
    frame = pd.concat([frame, series([HIGH] * 3, start_s=300)])
    # 15 s then a 30 s hole: the two low samples are not consecutive.
    assert check_recovery(frame, rollout_done_at=DONE).recovered is False


def test_samples_before_the_rollout_do_not_count() -> None:
    frame = pd.concat([series([LOW, LOW], start_s=-30), series([HIGH] * 12)])
    result = check_recovery(frame, rollout_done_at=DONE)
    assert (result.recovered, result.conclusive) == (False, True)
    assert "escalate" in result.reason


def test_three_consecutive_when_asked() -> None:
    check = RecoveryCheck(recovery_consecutive=3)
    result = check_recovery(series([HIGH, LOW, LOW, LOW]), rollout_done_at=DONE, check=check)
    assert result.recovered_at == DONE + timedelta(seconds=45)


def test_no_samples_yet_is_not_conclusive() -> None:
    result = check_recovery(series([LOW], start_s=-15), rollout_done_at=DONE)
    assert (result.recovered, result.conclusive, result.last_value) == (False, False, None)
