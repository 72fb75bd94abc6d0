"""Numbers as people read them: the one module every record, draft and banner writes with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from runbook_lib.core import readable


@pytest.mark.parametrize(
    ("ratio", "text"),
    [(0.0579452541770352, "5.79 %"), (0.01, "1 %"), (0.001, "0.1 %"), (0.2, "20 %"),
     (0.000412, "0.0412 %"), (0.0, "0 %"), (None, "n/a"), (float("nan"), "n/a")],
)  # fmt: skip
def test_a_ratio_is_a_percentage_to_three_significant_digits(
    ratio: float | None, text: str
) -> None:
    assert readable.percent(ratio) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1.9959000000000011, "2.0 s"), (0.4, "0.4 s"), (9.96, "10 s"), (45.4, "45 s"),
     (135, "2 min 15 s"), (120, "2 min"), (3900, "1 h 5 min"), (7199.9, "2 h"),
     (None, "n/a")],
)  # fmt: skip
def test_a_duration_has_a_unit_and_no_float_tail(seconds: float | None, text: str) -> None:
    assert readable.duration(seconds) == text


def test_a_latency_keeps_the_digits_it_was_measured_to() -> None:
    assert readable.latency(1.9959000000000011) == "2.00 s"
    assert readable.latency(1.8234) == "1.82 s"
    assert readable.latency(0.3) == "300 ms"
    assert readable.metric_value("p99_latency_s", 0.0123) == "12.3 ms"
    assert readable.metric_value("error_ratio", 0.0562879) == "5.63 %"
    assert readable.metric_value("business:orders", 12345.6) == "12,346"
    assert readable.metric_value("business:orders", 41.237) == "41.2"


def test_times_are_said_in_utc_to_the_second() -> None:
    moment = datetime(2026, 11, 27, 12, 3, 10, 500_000, tzinfo=timezone(timedelta(hours=2)))
    assert readable.clock(moment) == "10:03:10"
    assert readable.instant(moment) == "2026-11-27 10:03:10 UTC"
    assert readable.instant(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01 00:00:00 UTC"


def test_the_decisions_reasons_keep_six_digits() -> None:
    assert readable.exact_percent(0.0562879) == "5.62879%"
    assert readable.exact_seconds(120.0) == "120 s"
