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
    "WindowPlan",
    "exact_mean",
    "find_runs",
    "gap_limit_ns",
    "gaps_before",
    "gaps_from_spacings",
    "median_of_spacings",
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
    return median_of_spacings(spacings_ns(times))


def median_of_spacings(spacings: UIntArray) -> Fraction | None:
    """``median_spacing_ns`` from the spacings (``spacings_ns``) a caller already has."""
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
    return gaps_from_spacings(spacings_ns(times), step_ns)


def gaps_from_spacings(spacings: UIntArray, step_ns: Fraction | float | int | None) -> BoolArray:
    """``gaps_before`` from the spacings (``spacings_ns``) a caller already has."""
    gap = np.zeros(spacings.size + 1, dtype=bool)
    if step_ns is not None and spacings.size:
        np.greater(spacings, np.uint64(gap_limit_ns(step_ns)), out=gap[1:])
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
    # Consecutive rows (the usual case) read their times as a slice instead of a gather.
    first = int(ends[0])
    consecutive = int(ends[-1]) - first + 1 == ends.size
    ends_times = times[first : first + ends.size] if consecutive else times[ends]
    # Clamp before subtracting so that t - span cannot wrap below int64's range; a clamped
    # bound lies before every sample, as the true bound does.
    span = min(max(span_ns, 0), LAST_NS)
    bounds = np.maximum(ends_times, np.int64(FIRST_NS - 1 + span))
    bounds -= np.int64(span)
    # Regular samples: every window holds the same number of samples; check that guess for all
    # windows (two comparisons) and search only where it is wrong (near gaps and the start).
    stride = max(ends.size // 64, 1)
    probed = ends[::stride] - np.searchsorted(times, bounds[::stride], side="right")
    typical = int(np.median(probed))
    guess = ends - typical
    np.maximum(guess, 0, out=guess)
    if consecutive and first - typical >= 1:
        # Consecutive guesses too: read their times (and the ones before) as slices.
        start = first - typical
        at, before = times[start : start + ends.size], times[start - 1 : start - 1 + ends.size]
        wrong = np.flatnonzero((at <= bounds) | (before > bounds))
    else:
        # times[guess - 1] at guess 0 reads the last sample (index -1); "guess == 0" overrides.
        right = (times[guess] > bounds) & ((guess == 0) | (times[guess - 1] <= bounds))
        wrong = np.flatnonzero(~right)
    if wrong.size:
        guess[wrong] = np.searchsorted(times, bounds[wrong], side="right")
    return np.asarray(guess, dtype=np.int64)


@dataclass(frozen=True)
class _Part:
    """Windows summed from one grid of blocks of ``block`` elements, the grid starting ``shift``
    elements before the series: the suffix of the window's first block (from ``left``) plus
    the prefix of its last block (to ``right``); one of them alone when the window starts or
    ends exactly at a block's edge. Indices are already shifted."""

    rows: IntArray | None  # which windows (None: all, in order)
    block: int
    shift: int
    left: IntArray | None
    right: IntArray | None


@dataclass(frozen=True)
class WindowPlan:
    """How to sum many windows ``values[left[i] : right[i] + 1]``, adding only elements inside
    each window (no running totals across the series, so no sample reaches a window it is not
    in, not even through rounding).

    Built once per set of windows and reused for every series over the same times. First a
    grid of blocks as long as the typical window: such a window spans two adjacent blocks or
    exactly one, so regular samples need nothing else. The remaining windows go to grids of
    ``2**k`` elements: a window of at most ``2**k`` elements crosses at most one multiple of
    ``2**k``; if it crosses none it lies inside one block and, if longer than half a block,
    crosses the block's middle, so a second grid shifted by half a block covers it; shorter
    windows go down a level, and the last few are summed element by element.
    """

    size: int
    parts: tuple[_Part, ...]
    direct_rows: IntArray
    direct_left: IntArray
    direct_right: IntArray
    left: IntArray
    right: IntArray
    lengths: FloatArray  # elements per window
    consecutive: bool  # right[i] == right[0] + i: read by slices, not gathers
    # Windows of exactly ``block`` elements ending at consecutive samples (regular samples),
    # from window ``regular_from`` on: summed from two shifted slices of the block tables.
    block: int
    regular_from: int

    @classmethod
    def build(cls, left: IntArray, right: IntArray) -> WindowPlan:
        size = int(right.size)
        parts: list[_Part] = []
        rows: IntArray | None = None
        lo, hi = left, right
        widths = right - left
        # Strictly increasing integers spanning exactly ``size`` values are consecutive.
        consecutive = bool(size) and int(right[-1]) - int(right[0]) + 1 == size
        consecutive = consecutive and bool(np.all(right[1:] > right[:-1]))
        block = int(np.median(widths[:: max(size // 64, 1)])) + 1 if size else 0
        regular_from = size
        if consecutive and block >= 2:
            # Windows of exactly one block length; the first block - 1 samples cannot hold one.
            regular_from = min(max(block - 1 - int(right[0]), 0), size)
            irregular = widths != block - 1
            irregular[:regular_from] = True
            rows = np.flatnonzero(irregular)
            lo, hi = left[rows], right[rows]

        def take(mask: BoolArray, block: int, shift: int, sides: str) -> None:
            nonlocal rows, lo, hi
            if not mask.any():
                return
            if mask.all():
                picked, rest = None, np.zeros(0, dtype=np.int64)
            else:
                picked, rest = np.flatnonzero(mask), np.flatnonzero(~mask)
            chosen = picked if rows is None else (rows if picked is None else rows[picked])
            first = lo if picked is None else lo[picked]
            last = hi if picked is None else hi[picked]
            parts.append(
                _Part(
                    chosen,
                    block,
                    shift,
                    first + shift if "l" in sides else None,
                    last + shift if "r" in sides else None,
                )
            )
            rows = rest if rows is None else rows[rest]
            lo, hi = lo[rest], hi[rest]

        if lo.size:
            counts = hi - lo + 1
            if block >= 2:
                first_block, last_block = lo // block, hi // block
                fits = counts <= block
                take(fits & (last_block == first_block + 1), block, 0, "lr")
                if lo.size:
                    first_block, last_block = lo // block, hi // block
                    same = (hi - lo < block) & (last_block == first_block)
                    take(same & (lo == first_block * block), block, 0, "r")
                if lo.size:
                    last_block = hi // block
                    take(
                        (hi - lo < block) & (hi % block == block - 1) & (lo // block == last_block),
                        block,
                        0,
                        "l",
                    )
        level = int(np.max(hi - lo)).bit_length() if lo.size else 0
        while lo.size and level >= 1:
            # Few windows left: summing them element by element is cheaper than two tables.
            if lo.size * (1 << level) <= size:
                break
            for shift in (0, 1 << (level - 1)):
                if lo.size:
                    take(
                        ((lo + shift) >> level) != ((hi + shift) >> level), 1 << level, shift, "lr"
                    )
            level = int(np.max(hi - lo)).bit_length() if lo.size else 0
        if rows is None:
            rows = np.arange(size, dtype=np.int64)
        lengths = widths.astype(np.float64)
        lengths += 1
        if not consecutive or block < 2:
            block = 0
        return cls(
            size,
            tuple(parts),
            rows,
            lo,
            hi,
            left,
            right,
            lengths,
            consecutive,
            block,
            regular_from,
        )

    def sums(self, values: FloatArray) -> FloatArray:
        """The window sums of ``values`` (finite, and small enough not to overflow)."""
        sums = np.empty(self.size)
        tables: dict[tuple[int, int], tuple[FloatArray, FloatArray]] = {}
        if self.block and self.regular_from < self.size:
            block = self.block
            tables[(block, 0)] = prefix, suffix = _block_sums(values, block, 0)
            first = int(self.right[0]) + self.regular_from
            last = int(self.right[0]) + self.size
            regular = sums[self.regular_from :]
            np.add(suffix[first - block + 1 : last - block + 1], prefix[first:last], out=regular)
            # A window ending at a block's last element is that whole block: its prefix alone.
            # Such windows come every ``block`` rows, so a strided slice picks them.
            edge = (block - 1 - first) % block
            regular[edge::block] = prefix[first + edge : last : block]
        for part in self.parts:
            key = (part.block, part.shift)
            if key not in tables:
                tables[key] = _block_sums(values, part.block, part.shift)
            prefix, suffix = tables[key]
            if part.left is not None and part.right is not None:
                total = suffix[part.left] + prefix[part.right]
            elif part.right is not None:
                total = prefix[part.right]
            else:
                assert part.left is not None
                total = suffix[part.left]
            if part.rows is None:
                sums = total
            else:
                sums[part.rows] = total
        if self.direct_rows.size:
            total = values[self.direct_left].copy()
            for offset in range(1, int(np.max(self.direct_right - self.direct_left)) + 1):
                inside = self.direct_left + offset <= self.direct_right
                total[inside] += values[self.direct_left[inside] + offset]
            sums[self.direct_rows] = total
        return sums


# Up to this many elements per block, ``_block_sums`` adds column by column (measured at
# 172,800 samples: twice as fast as a cumsum per block up to 128-200 elements, slower above).
_COLUMN_LOOP_MAX = 128


def _block_sums(values: FloatArray, size: int, shift: int) -> tuple[FloatArray, FloatArray]:
    """Prefix and suffix sums within blocks of ``size`` elements, the grid starting ``shift``
    elements before ``values`` (index both with ``i + shift``)."""
    padded = np.zeros(-(-(values.size + shift) // size) * size)
    padded[shift : shift + values.size] = values
    blocks = padded.size // size
    if size > min(blocks, _COLUMN_LOOP_MAX):
        prefix = np.cumsum(padded.reshape(-1, size), axis=1).ravel()
        # The padded length is a whole number of blocks, so reversing it reverses each block.
        suffix = np.cumsum(padded[::-1].reshape(-1, size), axis=1).ravel()[::-1]
        return prefix, suffix
    # Many short blocks (regular samples): a cumsum per block costs a call per few elements,
    # so add column to column across all blocks at once instead; each element still gets the
    # same additions in the same order as a cumsum. The suffixes reuse ``padded``.
    prefix = padded.copy()
    table = prefix.reshape(-1, size)
    for column in range(1, size):
        np.add(table[:, column - 1], table[:, column], out=table[:, column])
    table = padded.reshape(-1, size)
    for column in range(size - 2, -1, -1):
        np.add(table[:, column + 1], table[:, column], out=table[:, column])
    return prefix, padded


def window_sums(values: FloatArray, left: IntArray, right: IntArray) -> FloatArray:
    """``sum(values[left[i] : right[i] + 1])`` for every i, adding only elements in the range
    (see ``WindowPlan``). ``values`` must be finite and small enough not to overflow."""
    return WindowPlan.build(left, right).sums(values)


def window_means(
    values: FloatArray, left: IntArray, right: IntArray, plan: WindowPlan | None = None
) -> FloatArray:
    """Mean of the non-missing values in ``values[left[i] : right[i] + 1]``; NaN if none.

    Values are finite or NaN. When sums could overflow (values near 1.8e308), every value is
    scaled by the same power of two, which is exact, and the means scaled back. ``plan``
    (``WindowPlan.build(left, right)``) can be shared by series over the same times.
    """
    plan = plan if plan is not None else WindowPlan.build(left, right)
    present = ~np.isnan(values)
    all_present = bool(present.all())
    clean = values if all_present else np.where(present, values, 0.0)
    largest = max(abs(float(np.min(clean))), abs(float(np.max(clean)))) if clean.size else 0.0
    widest = int(np.max(plan.lengths)) if plan.size else 1
    scale = _overflow_scale(largest, 2 * widest)
    sums = plan.sums(np.ldexp(clean, -scale) if scale else clean)
    means = sums  # a fresh array: divided in place
    if all_present:
        means /= plan.lengths
    else:
        running = np.zeros(values.size + 1, dtype=np.int64)  # counts: exact integers
        np.cumsum(present, out=running[1:])
        if plan.consecutive:
            start = int(right[0]) + 1
            through = running[start : start + right.size]
        else:
            through = running[right + 1]
        counts = running[left]
        np.subtract(through, counts, out=counts)
        with np.errstate(invalid="ignore", divide="ignore"):
            means /= counts
        means[counts == 0] = np.nan
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
