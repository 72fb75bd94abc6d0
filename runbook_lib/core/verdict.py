"""The verdict of "When to Rollback", on its own so that a reader of a run's facts (the ending,
the receiver) can name it without loading the decision engine (pandas, numpy)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Verdict"]


class Verdict(StrEnum):
    """DESIGN.md "Verdict": missing data must never read as healthy."""

    ROLLBACK = "rollback"
    NO_ROLLBACK = "no_rollback"
    INCONCLUSIVE = "inconclusive"
