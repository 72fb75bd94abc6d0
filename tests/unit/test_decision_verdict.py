"""DESIGN.md "Verdict" and "Numbers": missing data never reads as healthy, absurd samples outside
the windows change nothing, exact times and thresholds, and bad input named, not a traceback.

Series are sampled every 15 s from 30 min before the deploy to 30 min after it, healthy unless a
test says otherwise; offsets are seconds relative to the deploy.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runbook_lib.adapters.replay import read_replay_csv
from runbook_lib.core.decision import Rule, Verdict, evaluate
from runbook_lib.core.settings import Rules
from runbook_lib.errors import ParameterError

DEPLOY = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
DEPLOY_UNIX = 1_795_183_200
ERR, LAT, ORD = "error_ratio", "p99_latency_s", "business:orders"


def at(offset_s: float) -> pd.Timestamp:
    return pd.Timestamp(DEPLOY) + pd.Timedelta(seconds=offset_s)


def healthy(until: float = 1800) -> pd.DataFrame:
    index = pd.DatetimeIndex([at(s) for s in range(-1800, int(until) + 1, 15)])
    return pd.DataFrame({ERR: 0.002, LAT: 0.3, ORD: 100.0}, index=index)


def between(frame: pd.DataFrame, column: str, start: float, end: float, value: float) -> None:
    seconds = (frame.index - at(0)).total_seconds()
    frame.loc[(seconds >= start) & (seconds <= end), column] = value


def statuses(decision: object) -> dict[str, str]:
    return {r.metric: r.status.value for r in decision.rules}  # type: ignore[attr-defined]


def reason(decision: object, metric: str) -> str:
    return next(r.reason for r in decision.rules if r.metric == metric)  # type: ignore[attr-defined]


# --- missing data ---------------------------------------------------------------------------


def test_all_missing_is_inconclusive_not_healthy() -> None:
    frame = healthy()
    frame[[ERR, LAT]] = np.nan
    decision = evaluate(frame, deployed_at=DEPLOY, now=at(1800))
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert not decision.rollback
    assert statuses(decision) == {ERR: "not_evaluated", LAT: "not_evaluated", ORD: "clear"}
    assert reason(decision, ERR) == (
        "not judged: no valid error_ratio sample in the elapsed window from "
        "2026-11-20T14:00:00+00:00 to 2026-11-20T14:30:00+00:00"
    )
    document = decision.to_json_dict()
    assert (document["rollback"], document["verdict"]) == (False, "inconclusive")
    assert document["rules"][0] == {
        "rule": "error_rate",
        "metric": ERR,
        "status": "not_evaluated",
        "reason": reason(decision, ERR),
    }


@pytest.mark.parametrize(
    ("start", "end", "where"),
    [
        (0, 135, "from 2026-11-20T14:00:00+00:00 to 2026-11-20T14:02:30+00:00 (150 s"),
        (600, 735, "from 2026-11-20T14:09:45+00:00 to 2026-11-20T14:12:30+00:00 (165 s"),
        (1665, 1800, "from 2026-11-20T14:27:30+00:00 to 2026-11-20T14:30:00+00:00 (150 s"),
    ],
    ids=["at-the-start", "in-the-middle", "at-the-end"],
)
def test_a_hole_longer_than_the_sustain_is_inconclusive(start: int, end: int, where: str) -> None:
    frame = healthy()
    between(frame, LAT, start, end, np.nan)
    decision = evaluate(frame, deployed_at=DEPLOY, now=at(1800))
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert statuses(decision)[LAT] == "not_evaluated"
    assert statuses(decision)[ERR] == "clear"
    assert reason(decision, LAT) == (
        f"not judged: no valid p99_latency_s sample {where}, longer than the 120 s sustain)"
    )


def test_a_hole_of_exactly_the_sustain_can_be_judged() -> None:
    frame = healthy()
    between(frame, LAT, 615, 720, np.nan)  # valid at 600 and 735: 135 s apart
    assert evaluate(frame, deployed_at=DEPLOY, now=at(1800)).verdict is Verdict.INCONCLUSIVE
    frame = healthy()
    between(frame, LAT, 615, 705, np.nan)  # valid at 600 and 720: exactly 120 s
    decision = evaluate(frame, deployed_at=DEPLOY, now=at(1800))
    assert decision.verdict is Verdict.NO_ROLLBACK
    assert reason(decision, LAT) == "clear: never above 1 s"


def test_missing_samples_and_late_data_count_as_holes_too() -> None:
    frame = healthy()
    frame = frame[(frame.index < at(300)) | (frame.index > at(450))]  # rows dropped, not NaN
    decision = evaluate(frame, deployed_at=DEPLOY, now=at(1800))
    assert decision.verdict is Verdict.INCONCLUSIVE
    # The elapsed window runs to now: data that stops early leaves a hole at its end.
    decision = evaluate(healthy(until=1500), deployed_at=DEPLOY, now=at(1800))
    assert "to 2026-11-20T14:30:00+00:00 (300 s" in reason(decision, ERR)


def test_a_rule_that_fires_wins_over_a_hole_elsewhere() -> None:
    frame = healthy()
    between(frame, LAT, 0, 1800, np.nan)
    between(frame, ERR, 300, 600, 0.05)
    decision = evaluate(frame, deployed_at=DEPLOY, now=at(1800))
    assert decision.verdict is Verdict.ROLLBACK
    assert statuses(decision) == {ERR: "fired", LAT: "not_evaluated", ORD: "clear"}
    assert reason(decision, ERR) == (
        "fired: above 1% from 2026-11-20T14:05:00+00:00 for longer than 120 s, at "
        "2026-11-20T14:07:15+00:00; peak 5%"
    )


def test_a_business_metric_without_data_or_baseline_is_not_judged() -> None:
    frame = healthy()
    between(frame, ORD, 0, 1800, np.nan)
    decision = evaluate(frame, deployed_at=DEPLOY, now=at(1800))
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert statuses(decision)[ORD] == "not_evaluated"
    frame = healthy()
    between(frame, ORD, -1800, -15, np.nan)
    decision = evaluate(frame, deployed_at=DEPLOY, now=at(1800))
    assert reason(decision, ORD) == (
        "not judged: no business:orders sample in the baseline period "
        "[2026-11-20T13:30:00+00:00, 2026-11-20T14:00:00+00:00)"
    )
    assert decision.verdict is Verdict.INCONCLUSIVE


def test_every_sample_before_the_deploy_is_inconclusive_not_an_error() -> None:
    frame = healthy(until=-15)
    decision = evaluate(frame, deployed_at=DEPLOY)  # now: the last sample, here the deploy
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert set(statuses(decision).values()) == {"not_evaluated"}
    with pytest.raises(ParameterError, match=r"now: .* is before deployed_at"):
        evaluate(frame, deployed_at=DEPLOY, now=at(-15))


def test_healthy_data_reads_clear_with_reasons() -> None:
    frame = healthy()
    between(frame, ERR, 300, 345, 0.05)  # 45 s above: not longer than 120 s
    decision = evaluate(frame, deployed_at=DEPLOY, now=at(1800))
    assert decision.verdict is Verdict.NO_ROLLBACK
    assert [r.reason for r in decision.rules] == [
        "clear: above 1% for 45 s at most, not longer than 120 s",
        "clear: never above 1 s",
        "clear: 5-min mean never below 90 (90% of the baseline 100); lowest 100",
    ]


# --- exact thresholds and times -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fires"), [(90.0, False), (89.99999999, True), (89.0, True)], ids=str
)
def test_business_drop_tolerates_rounding_only(value: float, fires: bool) -> None:
    frame = healthy()
    between(frame, ORD, 0, 1800, value)
    decision = evaluate(frame, deployed_at=DEPLOY, now=at(1800))
    assert decision.rollback is fires
    if fires:
        (trigger,) = decision.triggers
        # The 5-min mean falls below 90 once enough post-deploy samples are in it.
        assert trigger.peak == pytest.approx(value, rel=1e-15)
        assert trigger.threshold == 90.0


def test_exactly_one_percent_for_exactly_the_sustain_does_not_fire() -> None:
    frame = healthy()
    between(frame, ERR, 0, 1800, 0.01)
    assert evaluate(frame, deployed_at=DEPLOY, now=at(1800)).verdict is Verdict.NO_ROLLBACK
    frame = healthy()
    between(frame, ERR, 300, 420, 0.02)  # 120 s exactly
    assert evaluate(frame, deployed_at=DEPLOY, now=at(1800)).verdict is Verdict.NO_ROLLBACK
    between(frame, ERR, 435, 435, 0.02)
    assert evaluate(frame, deployed_at=DEPLOY, now=at(1800)).triggers[0].fired_at == at(435)


def test_a_sample_at_the_deploy_instant_counts() -> None:
    frame = healthy()
    between(frame, ERR, -600, 120, 0.05)  # from the deploy: 120 s, not longer
    assert evaluate(frame, deployed_at=DEPLOY, now=at(1800)).verdict is Verdict.NO_ROLLBACK
    between(frame, ERR, 135, 135, 0.05)
    trigger = evaluate(frame, deployed_at=DEPLOY, now=at(1800)).triggers[0]
    assert (trigger.started_at, trigger.fired_at) == (at(0), at(135))


def _write(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "replay.csv"
    path.write_text("timestamp,error_ratio,p99_latency_s\n" + "\n".join(rows) + "\n")
    return path


def test_fractional_unix_times_keep_exact_gaps_and_the_deploy_instant(tmp_path: Path) -> None:
    # 15 s steps from .1 s past the deploy; one gap of exactly 1.5 steps (22.5 s) inside a
    # breach keeps the run, and the sample at the deploy instant itself counts.
    offsets = [0, 15, 30, 45, 60, 82.5, 97.5, 112.5, 127.5, 142.5, 157.5]
    rows = [f"{DEPLOY_UNIX + int(o)}.{'1' if o == int(o) else '6'},0.05,0.3" for o in offsets]
    frame = read_replay_csv(_write(tmp_path, rows))
    deploy = pd.Timestamp(f"{DEPLOY.isoformat()[:19]}.1Z")
    decision = evaluate(frame, deployed_at=deploy, step=15)
    trigger = decision.triggers[0]
    assert trigger.started_at == deploy  # the sample at the deploy instant counts
    assert trigger.fired_at == frame.index[8]  # 127.5 s after the first sample
    assert frame.index[5] - frame.index[4] == pd.Timedelta(seconds=22.5)


def test_default_now_keeps_a_last_sample_stamped_in_nanoseconds(tmp_path: Path) -> None:
    rows = [f"2026-11-20T14:{m:02d}:{s:02d}Z,0.05,0.3" for m in range(3) for s in (0, 15, 30, 45)]
    rows.append("2026-11-20T14:03:00.000000001Z,0.05,0.3")
    frame = read_replay_csv(_write(tmp_path, rows))
    decision = evaluate(frame, deployed_at=DEPLOY, step=15)
    (trigger,) = decision.triggers
    assert trigger.fired_at.isoformat() == "2026-11-20T14:02:15+00:00"
    assert trigger.peak == 0.05
    # The last sample is 1 ns later than 14:03:00 and still counts: no hole at the end.
    assert decision.warnings == ()
    frame.iloc[-1, 0] = 0.5
    assert evaluate(frame, deployed_at=DEPLOY, step=15).triggers[0].peak == 0.5


# --- absurd values ------------------------------------------------------------------------------


def test_a_wrapped_counter_outside_every_window_changes_nothing() -> None:
    frame = healthy()
    index = frame.index.append(pd.DatetimeIndex([at(-1815)]))
    frame = frame.reindex(index.sort_values())
    frame.loc[at(-1815)] = [0.002, 0.3, 1.8446744073709552e19]  # 15 s before the baseline
    decision = evaluate(frame, deployed_at=DEPLOY, now=at(1800))
    assert decision.verdict is Verdict.NO_ROLLBACK
    business = next(r for r in decision.rules if r.rule is Rule.BUSINESS)
    assert (business.worst, business.threshold) == (100.0, 90.0)


def test_values_near_the_largest_float_neither_overflow_nor_fire() -> None:
    frame = healthy()
    frame[ORD] = 1.7976931348623157e308
    decision = evaluate(frame, deployed_at=DEPLOY, now=at(1800))
    assert decision.verdict is Verdict.NO_ROLLBACK
    between(frame, ORD, 0, 1800, 1e308)
    decision = evaluate(frame, deployed_at=DEPLOY, now=at(1800))
    (trigger,) = decision.triggers
    assert trigger.threshold == pytest.approx(0.9 * 1.7976931348623157e308, rel=1e-15)
    assert trigger.peak == 1e308
    frame[LAT] = 1e308
    assert statuses(evaluate(frame, deployed_at=DEPLOY, now=at(1800)))[LAT] == "fired"


def test_tiny_values_are_compared_like_any_others() -> None:
    frame = healthy()
    frame[ORD] = 1e-300
    between(frame, ORD, 0, 1800, 0.899999e-300)
    assert evaluate(frame, deployed_at=DEPLOY, now=at(1800)).rollback


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (ORD, -1.0, "business:orders row 3 (2026-11-20T13:30:30+00:00): -1.0 is out of range"),
        (ERR, 1.5, "error_ratio row 3 (2026-11-20T13:30:30+00:00): 1.5 is out of range"),
        (LAT, -0.1, "p99_latency_s row 3 (2026-11-20T13:30:30+00:00): -0.1 is out of range"),
        (ORD, np.inf, "business:orders row 3 (2026-11-20T13:30:30+00:00): inf is out of range"),
    ],
)
def test_values_outside_their_range_are_bad_input(column: str, value: float, message: str) -> None:
    frame = healthy()
    frame.iloc[2, frame.columns.get_loc(column)] = value
    with pytest.raises(ParameterError) as caught:
        evaluate(frame, deployed_at=DEPLOY, now=at(1800))
    assert caught.value.problems[0].startswith(f"samples: {message}")


@pytest.mark.parametrize(
    ("deployed_at", "now", "problem"),
    [
        (datetime(9999, 1, 1, tzinfo=UTC), None, "deployed_at: 9999-01-01T00:00:00+00:00 is out"),
        (DEPLOY, datetime(9999, 1, 1, tzinfo=UTC), "now: 9999-01-01T00:00:00+00:00 is out of"),
        (datetime(1, 1, 1, tzinfo=UTC), None, "deployed_at: 0001-01-01T00:00:00+00:00 is out"),
    ],
)
def test_unrepresentable_times_are_parameter_errors(
    deployed_at: datetime, now: datetime | None, problem: str
) -> None:
    with pytest.raises(ParameterError) as caught:
        evaluate(healthy(), deployed_at=deployed_at, now=now)
    assert caught.value.problems[0].startswith(problem)


def test_extreme_but_representable_durations_and_times_work() -> None:
    frame = healthy()
    huge = Rules(window=9e9, business_baseline=9e9, business_smoothing=9e9, sustain=120)
    assert evaluate(frame, deployed_at=DEPLOY, rules=huge).verdict is Verdict.NO_ROLLBACK
    early = pd.Timestamp("1677-09-21T00:12:43.145224193Z")
    frame.index = pd.DatetimeIndex([early + timedelta(seconds=15 * i) for i in range(len(frame))])
    decision = evaluate(frame, deployed_at=early + timedelta(minutes=30), rules=huge)
    assert decision.verdict is Verdict.NO_ROLLBACK
    with pytest.raises(ParameterError, match=r"window: 1e\+20 s is longer than the tool can"):
        Rules(window=1e20)


def _evaluate_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runbook_lib.cli.main", "evaluate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--deployed-at", "9999-01-01T00:00:00Z"), "9999-01-01T00:00:00Z"),
        (("--deployed-at", "-1000000000000"), "-1000000000000"),
        (("--deployed-at", "2026-11-20T14:00:00Z", "--now", "1e400"), "1e400"),
        (("--deployed-at", "2026-11-20T14:00:00Z", "--window", "1000000000000d"), "window"),
        (("--deployed-at", "2026-11-20T14:00:00Z", "--business-baseline", "1e12s"), "baseline"),
    ],
)
def test_cli_names_out_of_range_times_and_durations(
    tmp_path: Path, args: tuple[str, ...], named: str
) -> None:
    path = _write(tmp_path, ["2026-11-20T14:00:00Z,0.002,0.3", "2026-11-20T14:00:15Z,0.002,0.3"])
    result = _evaluate_cli("--metrics", str(path), *args)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("cell", ["-1000000000000", "9999-01-01T00:00:00Z"])
def test_cli_names_an_out_of_range_timestamp_in_the_file(tmp_path: Path, cell: str) -> None:
    path = _write(tmp_path, ["2026-11-20T14:00:00Z,0.002,0.3", f"{cell},0.002,0.3"])
    result = _evaluate_cli("--metrics", str(path), "--deployed-at", "2026-11-20T14:00:00Z")
    assert result.returncode == 2
    assert f"row 2, column 'timestamp': timestamp '{cell}' is out of range" in result.stderr
    assert "Traceback" not in result.stderr
