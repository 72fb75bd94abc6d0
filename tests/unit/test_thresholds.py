"""Thresholds: the runbook's defaults, people's units, and every problem listed at once."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from runbook_lib.core.thresholds import Thresholds
from runbook_lib.core.units import (
    InstantOutOfRange,
    instant_ns,
    parse_duration,
    parse_instant,
    parse_ratio,
)
from runbook_lib.errors import ParameterError


def test_defaults_are_the_runbooks_numbers() -> None:
    th = Thresholds()
    assert (th.error_ratio, th.latency_p99, th.sustain, th.window) == (
        0.01,
        1.0,
        120.0,
        1800.0,
    )
    assert (th.business_drop, th.business_baseline, th.business_smoothing) == (
        0.1,
        1800.0,
        300.0,
    )
    assert (th.recovery_error_ratio, th.recovery_within, th.recovery_consecutive) == (
        0.001,
        120.0,
        2,
    )
    assert th.step is None


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(ParameterError) as caught:
        Thresholds(
            error_ratio=1.5,
            latency_p99=-1.0,
            sustain=3600.0,
            business_drop=-0.1,
            business_smoothing=0.0,
            recovery_consecutive=0,
            step=float("nan"),
        )
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "error_ratio",
        "business_drop",
        "latency_p99",
        "business_smoothing",
        "sustain",
        "recovery_consecutive",
        "step",
    ]
    assert "could never fire" in caught.value.problems[4]
    assert str(caught.value).startswith("7 invalid parameter(s):")


@pytest.mark.parametrize(
    ("sustain", "window", "valid"),
    [(1799.0, 1800.0, True), (1800.0, 1800.0, False), (0.0, 1.0, True)],
    ids=["just-shorter", "equal-to-window", "zero-sustain"],
)
def test_sustain_must_be_shorter_than_the_window(
    sustain: float, window: float, valid: bool
) -> None:
    if valid:
        assert Thresholds(sustain=sustain, window=window).sustain == sustain
    else:
        with pytest.raises(ParameterError, match="not shorter than window"):
            Thresholds(sustain=sustain, window=window)


def test_from_params_reads_units_and_percentages() -> None:
    th = Thresholds.from_params(
        {
            "error_ratio": "2%",
            "latency_p99": "800ms",
            "sustain": "3m",
            "window": "1h",
            "step": "",
            "recovery_consecutive": "3",
        }
    )
    assert (th.error_ratio, th.latency_p99, th.sustain, th.window) == (
        0.02,
        0.8,
        180.0,
        3600.0,
    )
    assert (th.step, th.recovery_consecutive) == (None, 3)


def test_from_params_lists_unknown_names_units_and_ranges_together() -> None:
    with pytest.raises(ParameterError) as caught:
        Thresholds.from_params(
            {
                "eror_ratio": 0.02,
                "sustain": "2 fortnights",
                "window": "-5m",
                "business_drop": "150%",
            }
        )
    assert caught.value.problems == (
        "eror_ratio: unknown threshold",
        "sustain: unknown unit 'fortnights' in '2 fortnights' (known: ms, s, sec, m, min, h, d)",
        "window: must not be negative, got '-5m'",
        "business_drop: a ratio must be between 0 and 1, got 1.5",
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        (90, 90.0),
        ("90s", 90.0),
        ("2m", 120.0),
        ("2min", 120.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("1d", 86400.0),
    ],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["2 weeks", "abc", "", "1e999"], ids=["unit", "word", "empty", "inf"]
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"unknown unit|not a duration|finite"):
        parse_duration(text)


def test_parse_ratio_accepts_percentages() -> None:
    assert (parse_ratio("1%"), parse_ratio("0.5"), parse_ratio(0.25)) == (0.01, 0.5, 0.25)
    with pytest.raises(ValueError, match="not a ratio"):
        parse_ratio("one percent")


def test_parse_instant_needs_an_offset() -> None:
    assert parse_instant("2026-11-20T15:00:00+01:00").isoformat() == "2026-11-20T14:00:00+00:00"
    assert parse_instant("2026-11-20T14:00:00Z") == parse_instant(1795183200)
    assert parse_instant("1795183200").isoformat() == "2026-11-20T14:00:00+00:00"
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_instant("2026-11-20T14:00:00")
    with pytest.raises(ValueError, match="not a time"):
        parse_instant("yesterday")


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("1795183200.1", 1_795_183_200_100_000_000),  # a float would land ~100 ns off
        ("1795183200.123456789", 1_795_183_200_123_456_789),
        ("-0.5", -500_000_000),
        ("1.7951832e9", 1_795_183_200_000_000_000),
        ("2026-11-20T14:00:00.123456789Z", 1_795_183_200_123_456_789),
        ("2026-11-20 15:30:00,5+01:30", 1_795_183_200_500_000_000),
        ("20261120T140000Z", 1_795_183_200_000_000_000),
        ("2262-04-11T23:47:16.854775807Z", 2**63 - 1),
    ],
)
def test_parse_instant_reads_every_digit(text: str, nanoseconds: int) -> None:
    assert instant_ns(text) == nanoseconds
    moment = parse_instant(text)
    assert isinstance(moment, datetime)
    assert moment.value == nanoseconds  # type: ignore[attr-defined]  # a pandas Timestamp


@pytest.mark.parametrize(
    "text",
    ["-1000000000000", "9999-01-01T00:00:00Z", "1e400", "2262-04-11T23:47:16.854775808Z"],
)
def test_parse_instant_names_times_out_of_range(text: str) -> None:
    with pytest.raises(InstantOutOfRange, match=f"{re.escape(repr(text))} is out of range"):
        parse_instant(text)
    with pytest.raises(InstantOutOfRange, match="is out of range"):
        parse_instant(datetime(1, 1, 1, tzinfo=UTC))
