"""Clocks for tests that hand one to a timeline or a run (``clock=``): no test reads the wall
clock, so times and durations in what they check are exact."""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["ManualClock", "TickingClock"]


class ManualClock:
    """Says ``now`` until the test moves it (``advance``, or ``now = ...``)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class TickingClock(ManualClock):
    """One second later at every reading, so the order of events shows in their times."""

    def __call__(self) -> datetime:
        self.advance(1)
        return self.now
