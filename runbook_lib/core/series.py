"""Vectorised building blocks over sampled series: step, gaps, runs, windowed sums and means.

Times are int64 nanoseconds since the Unix epoch (UTC) so that durations compare exactly:
"exactly 120 s does not fire" must not depend on float rounding. Differences of two times are
taken as uint64, which holds every difference of two int64 times (pandas' range spans more than
292 years, so a signed difference could overflow). All functions work on whole numpy arrays;
none loops over samples.

Windowed sums add only the elements inside each window (no running totals whose rounding error
a huge sample elsewhere would inflate), and means are scaled by an exact power of two when sums
could overflow, so a sample influences only the windows that contain it (DESIGN.md "Numbers").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "FIRST_NS",
    "LAST_NS",
    "NS_PER_S",
    "Runs",
    "exact_mean",
    "find_runs",
    "gap_limit_ns",
    "gaps_before",
    "median_spacing_ns",
    "median_step_ns",
    "seconds_to_ns",
    "spacings_ns",
    "times_ns",
    "trailing_mean",
    "window_means",
    "window_starts",
    "window_sums",
]

NS_PER_S = 1_000_000_000
# The instants a pandas Timestamp can hold: int64 nanoseconds, the smallest value being NaT.
FIRST_NS = -(2**63) + 1
LAST_NS = 2**63 - 1
_UINT64_MAX = 2**64 - 1

IntArray = npt.NDArray[np.int64]
UIntArray = npt.NDArray[np.uint64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def seconds_to_ns(seconds: float) -> int:
    """A duration given in float seconds as whole nanoseconds (the nearest; exact arithmetic)."""
    return round(Fraction(seconds) * NS_PER_S)


def times_ns(index: pd.DatetimeIndex) -> IntArray:
    """Nanoseconds since the epoch (UTC) of a tz-aware index, whatever its stored resolution."""
    converted = index.tz_convert("UTC").as_unit("ns")
    return np.asarray(converted.asi8, dtype=np.int64)


def spacings_ns(times: IntArray) -> UIntArray:
    """Spacing between consecutive (increasing) times, exact for any two int64 times."""
    # int64 subtraction wraps modulo 2**64; the true difference lies in (0, 2**64), so the
    # wrapped bits read as uint64 are exactly that difference.
    return np.asarray(np.diff(times), dtype=np.int64).view(np.uint64)


def median_spacing_ns(times: IntArray) -> Fraction | None:
    """The median spacing of ``times`` (DESIGN.md's default step), exact; None with fewer than 2.

    The median of an even count is the mean of the two middle spacings, hence a ``Fraction``.
    """
    spacings = spacings_ns(times)
    if spacings.size == 0:
        return None
    low, high = (spacings.size - 1) // 2, spacings.size // 2
    # Regular samples: the spacing in the middle of the array is usually the median itself.
    # Checking that costs two comparisons; sorting 170,000 spacings costs ten times more.
    guess = spacings[high]
    below = int(np.count_nonzero(spacings < guess))
    at_most = below + int(np.count_nonzero(spacings == guess))
    if below <= low and high < at_most:
        return Fraction(int(guess))
    ordered = np.sort(spacings)
    return Fraction(int(ordered[low]) + int(ordered[high]), 2)


def median_step_ns(times: IntArray) -> float | None:
    """``median_spacing_ns`` as a float (for callers that need no exactness)."""
    median = median_spacing_ns(times)
    return None if median is None else float(median)


def gap_limit_ns(step_ns: Fraction | float | int) -> int:
    """The largest spacing that is not a gap: spacings above 1.5 steps are (DESIGN.md)."""
    # Spacings are whole nanoseconds, so "d > 1.5 step" is "d > floor(1.5 step)".
    return min(math.floor(Fraction(3, 2) * Fraction(step_ns)), _UINT64_MAX)


def gaps_before(times: IntArray, step_ns: Fraction | float | int | None) -> BoolArray:
    """``True`` at each sample that follows a gap longer than 1.5 steps (such a gap ends a run)."""
    gap = np.zeros(times.size, dtype=bool)
    if step_ns is not None and times.size > 1:
        gap[1:] = spacings_ns(times) > np.uint64(gap_limit_ns(step_ns))
    return gap


@dataclass(frozen=True)
class Runs:
    """Maximal runs of consecutive ``True`` samples, broken by ``False`` samples and gaps.

    Run ``k`` covers the sample indices ``starts[k] .. ends[k]`` (inclusive, contiguous).
    Keeping only the boundaries makes every question about runs cost O(number of runs).
    """

    starts: IntArray
    ends: IntArray

    def durations_ns(self, times: IntArray) -> UIntArray:
        """``t_last - t_first`` of every run, exact."""
        return np.asarray(times[self.ends] - times[self.starts], dtype=np.int64).view(np.uint64)

    def first_longer_than(self, times: IntArray, limit_ns: int) -> tuple[int, int] | None:
        """``(run, sample)``: the first run lasting strictly longer than the limit, and the
        sample at which its duration ``t - t_first`` first exceeds it; None if no run does."""
        longer = np.flatnonzero(self.durations_ns(times) > np.uint64(limit_ns))
        if longer.size == 0:
            return None
        run = int(longer[0])
        start, end = int(self.starts[run]), int(self.ends[run])
        # The first sample strictly later than t_first + limit; it lies inside the run, and
        # t_first + limit < t_last keeps the sum within int64.
        bound = int(times[start]) + limit_ns
        sample = start + int(np.searchsorted(times[start : end + 1], bound, side="right"))
        return run, sample


def find_runs(member: BoolArray, gap_before: BoolArray) -> Runs:
    """Group consecutive member samples into runs; a non-member sample or a gap ends a run."""
    joined = member[1:] & member[:-1] & ~gap_before[1:]  # sample i + 1 continues sample i's run
    starts = np.flatnonzero(member & ~np.concatenate(([False], joined)))
    ends = np.flatnonzero(member & ~np.concatenate((joined, [False])))
    return Runs(starts=starts.astype(np.int64), ends=ends.astype(np.int64))


def window_starts(times: IntArray, span_ns: int, rows: IntArray | None = None) -> IntArray:
    """For each sample ``t`` (or each of ``rows``), the index of the first sample in
    ``(t - span, t]``."""
    ends = np.arange(times.size, dtype=np.int64) if rows is None else rows
    if ends.size == 0:
        return np.zeros(0, dtype=np.int64)
    # Clamp before subtracting so that t - span cannot wrap below int64's range; a clamped
    # bound lies before every sample, as the true bound does.
    span = min(max(span_ns, 0), LAST_NS)
    floor = np.int64(FIRST_NS - 1 + span)
    bounds = np.maximum(times[ends], floor) - np.int64(span)
    # Regular samples: every window holds the same number of samples; check that guess for all
    # windows (two comparisons) and search only where it is wrong (near gaps and the start).
    stride = max(ends.size // 64, 1)
    probed = ends[::stride] - np.searchsorted(times, bounds[::stride], side="right")
    typical = int(np.median(probed))
    guess = np.maximum(ends - typical, 0)
    inside = times[guess] > bounds
    previous = times[np.maximum(guess - 1, 0)]
    right = inside & ((guess == 0) | (previous <= bounds))
    wrong = np.flatnonzero(~right)
    if wrong.size:
        guess[wrong] = np.searchsorted(times, bounds[wrong], side="right")
    return np.asarray(guess, dtype=np.int64)


def _bit_length(values: IntArray) -> IntArray:
    """``int.bit_length`` of non-negative values below 2**53, vectorised (frexp is exact)."""
    return np.asarray(np.frexp(values.astype(np.float64))[1], dtype=np.int64)


def _block_prefix(values: FloatArray, level: int) -> tuple[FloatArray, FloatArray]:
    """Prefix and suffix sums within aligned blocks of ``2**level`` elements."""
    size = 1 << level
    if size == 1:
        return values, values
    padded = np.zeros(-(-values.size // size) * size)
    padded[: values.size] = values
    blocks = padded.reshape(-1, size)
    prefix = np.cumsum(blocks, axis=1).ravel()[: values.size]
    suffix = np.cumsum(blocks[:, ::-1], axis=1)[:, ::-1].ravel()[: values.size]
    return prefix, suffix


def window_sums(values: FloatArray, left: IntArray, right: IntArray) -> FloatArray:
    """``sum(values[left[i] : right[i] + 1])`` for every i, adding only elements in the range.

    A disjoint sparse table: a range whose ends lie in adjacent aligned blocks of ``2**k``
    elements is the suffix of the left block plus the prefix of the right one, both summed
    only from elements inside the range. Each range can use any level in an interval; a greedy
    choice covers all ranges with as few levels as possible (two for regular samples), and
    only those levels' tables are built. ``values`` must be finite and small enough not to
    overflow when summed (``window_means`` scales them).
    """
    sums = np.zeros(right.size)
    width = right - left
    single = width == 0
    sums[single] = values[right[single]]
    several = np.flatnonzero(~single)
    if several.size == 0:
        return sums
    lo, hi = left[several], right[several]
    length = _bit_length(width[several])  # 2**(length-1) <= hi - lo < 2**length
    adjacent_below = ((hi >> (length - 1)) - (lo >> (length - 1))) == 1
    lowest = np.where(adjacent_below, length - 1, length)
    highest = _bit_length(lo ^ hi) - 1  # the level where lo and hi first differ
    # Greedy stabbing of the intervals [lowest, highest]: by right end, take it if uncovered.
    pairs = np.flatnonzero(np.bincount(lowest * 64 + highest, minlength=64 * 64))
    chosen: list[int] = []
    lookup = np.zeros(64 * 64, dtype=np.int64)
    for pair in sorted(pairs.tolist(), key=lambda p: (p % 64, p // 64)):
        low, high = divmod(pair, 64)
        covering = [level for level in chosen if low <= level <= high]
        if not covering:
            chosen.append(high)
            covering = [high]
        lookup[pair] = covering[0]
    level_of = lookup[lowest * 64 + highest]
    for level in chosen:
        prefix, suffix = _block_prefix(values, level)
        picked = np.flatnonzero(level_of == level) if len(chosen) > 1 else np.arange(several.size)
        sums[several[picked]] = suffix[lo[picked]] + prefix[hi[picked]]
    return sums


def window_means(values: FloatArray, left: IntArray, right: IntArray) -> FloatArray:
    """Mean of the non-missing values in ``values[left[i] : right[i] + 1]``; NaN if none.

    Values are finite or NaN. When sums could overflow (values near 1.8e308), every value is
    scaled by the same power of two, which is exact, and the means scaled back.
    """
    present = ~np.isnan(values)
    all_present = bool(present.all())
    clean = values if all_present else np.where(present, values, 0.0)
    largest = float(np.max(np.abs(clean))) if clean.size else 0.0
    widest = int(np.max(right - left)) + 1 if right.size else 1
    scale = _overflow_scale(largest, 2 * widest)
    scaled = np.ldexp(clean, -scale) if scale else clean
    sums = window_sums(scaled, left, right)
    if all_present:
        counts = (right - left + 1).astype(np.float64)
    else:
        running = np.concatenate(([0], np.cumsum(present, dtype=np.int64)))  # exact integers
        counts = (running[right + 1] - running[left]).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1.0), np.nan)
    if scale:
        # A mean never exceeds the largest value; clamping undoes a last-bit rounding overshoot.
        means = np.minimum(np.ldexp(means, scale), largest)
    return np.asarray(means, dtype=np.float64)


def exact_mean(values: FloatArray) -> float:
    """The correctly rounded mean of finite ``values`` (NaN if empty), without overflow."""
    if values.size == 0:
        return math.nan
    largest = float(np.max(np.abs(values)))
    scale = _overflow_scale(largest, values.size)
    total = math.fsum(np.ldexp(values, -scale).tolist() if scale else values.tolist())
    mean = total / values.size
    return min(math.ldexp(mean, scale), largest) if scale else mean


def _overflow_scale(largest: float, count: int) -> int:
    """The power of two to divide by so that ``count`` values up to ``largest`` sum finitely."""
    if largest == 0 or not math.isfinite(largest):
        return 0
    exponent = math.frexp(largest)[1]  # largest < 2**exponent
    return max(0, exponent + count.bit_length() + 1 - 1023)


def trailing_mean(times: IntArray, values: FloatArray, left: IntArray) -> FloatArray:
    """Mean of the non-missing values in ``(t - span, t]`` for every sample ``t``; NaN if none.

    ``left`` comes from ``window_starts(times, span)``.
    """
    return window_means(values, left, np.arange(times.size, dtype=np.int64))
