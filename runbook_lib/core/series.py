"""Vectorised building blocks over regularly sampled series: step, gaps, runs, trailing means.

Times are int64 nanoseconds since the Unix epoch (UTC) so that durations compare exactly:
"exactly 120 s does not fire" must not depend on float rounding. All functions work on whole
numpy arrays; none loops over samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "NS_PER_S",
    "Runs",
    "find_runs",
    "gaps_before",
    "median_step_ns",
    "times_ns",
    "trailing_mean",
]

NS_PER_S = 1_000_000_000

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def times_ns(index: pd.DatetimeIndex) -> IntArray:
    """Nanoseconds since the epoch (UTC) of a tz-aware index, whatever its stored resolution."""
    converted = index.tz_convert("UTC").as_unit("ns")
    return np.asarray(converted.asi8, dtype=np.int64)


def median_step_ns(times: IntArray) -> float | None:
    """The median spacing of ``times`` (DESIGN.md's default step); None with fewer than 2."""
    if times.size < 2:
        return None
    return float(np.median(np.diff(times)))


def gaps_before(times: IntArray, step_ns: float | None) -> BoolArray:
    """``True`` at each sample that follows a gap longer than 1.5 steps (such a gap ends a run)."""
    gap = np.zeros(times.size, dtype=bool)
    if step_ns is not None and times.size > 1:
        gap[1:] = np.diff(times) > 1.5 * step_ns
    return gap


@dataclass(frozen=True)
class Runs:
    """Maximal runs of consecutive ``True`` samples, broken by ``False`` samples and gaps.

    ``start_index[i]`` is the index of the first sample of the run containing sample ``i``
    (meaningful only where ``member[i]``); ``duration_ns[i]`` is ``t[i] - t[start]``, the run's
    duration so far at sample ``i``.
    """

    member: BoolArray
    start_index: IntArray
    duration_ns: IntArray

    def first_longer_than(self, limit_ns: int) -> int | None:
        """Index of the first sample at which its run has lasted strictly longer than the limit."""
        over = self.member & (self.duration_ns > limit_ns)
        return int(np.argmax(over)) if over.any() else None

    def members_of_run_at(self, index: int) -> BoolArray:
        """Mask of the samples of the run that contains sample ``index``."""
        return np.asarray(self.member & (self.start_index == self.start_index[index]), dtype=bool)


def find_runs(times: IntArray, member: BoolArray, gap_before: BoolArray) -> Runs:
    """Group consecutive member samples into runs; a non-member sample or a gap ends a run."""
    previous = np.zeros(member.size, dtype=bool)
    previous[1:] = member[:-1]
    starts = member & (~previous | gap_before)
    positions = np.arange(member.size, dtype=np.int64)
    # Each member sample belongs to the latest run start at or before it.
    start_index = np.maximum.accumulate(np.where(starts, positions, 0))
    duration = np.asarray(np.where(member, times - times[start_index], 0), dtype=np.int64)
    return Runs(member=member, start_index=start_index, duration_ns=duration)


def trailing_mean(times: IntArray, values: FloatArray, span_ns: int) -> FloatArray:
    """Mean of the non-missing values in ``(t - span, t]`` for every sample ``t``; NaN if none.

    Uses prefix sums and a binary search, so it is linear in the number of samples whatever
    the spacing (gaps included).
    """
    present = ~np.isnan(values)
    sums = np.concatenate(([0.0], np.cumsum(np.where(present, values, 0.0))))
    counts = np.concatenate(([0], np.cumsum(present, dtype=np.int64)))
    left = np.searchsorted(times, times - span_ns, side="right")
    right = np.arange(1, times.size + 1)
    count = counts[right] - counts[left]
    total = sums[right] - sums[left]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return np.asarray(mean, dtype=np.float64)
