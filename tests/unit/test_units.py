"""People's units: durations, ratios and instants, read exactly and refused with a reason."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from runbook_lib.core.units import (
    InstantOutOfRange,
    instant_ns,
    parse_duration,
    parse_instant,
    parse_ratio,
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
