"""The replay CSV of DESIGN.md ("Replay CSV"): recorded samples as a ``MetricsSource``.

Format: a header row with ``timestamp`` (ISO 8601 with a UTC offset, or Unix seconds; both read
exactly, to the nanosecond), ``error_ratio`` (0..1), ``p99_latency_s`` (>= 0) and any number of
``business:<name>`` columns (>= 0); one row per sample, timestamps strictly increasing; an empty
cell (or ``NaN``) is a missing sample.

Every problem is reported as ``InputFileError`` naming the file, the data row (1-based, the
header not counted; the file line is data row + 1) and the column, so a person can fix the file.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from runbook_lib.adapters.metrics import BUSINESS_PREFIX, ERROR_RATIO, P99_LATENCY
from runbook_lib.core.units import INSTANT_RANGE, InstantOutOfRange, NaiveInstant, instant_ns
from runbook_lib.errors import InputFileError

__all__ = ["ReplaySource", "read_replay_csv"]

TIMESTAMP = "timestamp"
_REQUIRED = (TIMESTAMP, ERROR_RATIO, P99_LATENCY)
_MISSING_TEXT = ("", "nan", "NaN", "NAN")


def read_replay_csv(path: str | Path) -> pd.DataFrame:
    """Read a replay file into a metric frame (tz-aware UTC index, float columns).

    Used by the "When to Rollback" assessment when replaying a recorded incident. Raises
    ``InputFileError`` for an unreadable file, a missing or unknown column, a bad or naive
    timestamp, a non-numeric or out-of-range value, and unsorted or duplicate timestamps.
    """
    name = str(path)
    header, text = _read_header(Path(path), name)
    try:
        # Blank lines are kept as rows so that reported row numbers match the file's lines.
        raw = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=False
        ).fillna("")
    except pd.errors.ParserError as err:
        raise InputFileError(f"cannot parse as CSV: {err}", path=name) from err
    raw.columns = header
    if raw.empty:
        raise InputFileError("no data rows after the header", path=name, row=None)
    index = _timestamps(raw[TIMESTAMP], name)
    frame = pd.DataFrame(
        {column: _numbers(raw[column], name, column) for column in header if column != TIMESTAMP},
        index=index,
    )
    frame.index.name = TIMESTAMP
    return frame


class ReplaySource:
    """``MetricsSource`` over a replay CSV; the file is read once, on first use."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._frame: pd.DataFrame | None = None

    def frame(self) -> pd.DataFrame:
        """The whole file as a metric frame. Raises ``InputFileError`` for a malformed file."""
        if self._frame is None:
            self._frame = read_replay_csv(self.path)
        return self._frame

    def query_range(self, start: datetime, end: datetime, step_s: float) -> pd.DataFrame:
        """Samples with ``start <= t <= end``. The file's own spacing is kept: ``step_s`` is
        only a hint for live sources, and resampling would invent or hide missing data.
        """
        del step_s
        frame = self.frame()
        times = frame.index.asi8
        # Bounds far outside pandas' range (a long history before an early deploy) select
        # everything on that side instead of failing.
        return frame[(times >= _clamped_ns(start)) & (times <= _clamped_ns(end))]


def _digits_only(text: npt.NDArray[np.str_]) -> npt.NDArray[np.bool_]:
    """ASCII digits only (or empty): what ``astype(int64)`` reads without surprises."""
    return np.asarray(np.strings.strip(text, "0123456789") == "", dtype=bool)


def _clamped_ns(moment: datetime) -> int:
    if isinstance(moment, pd.Timestamp):
        return int(moment.value)
    offset = moment.utcoffset() or timedelta(0)
    ns = (moment.replace(tzinfo=None) - offset - datetime(1970, 1, 1)) // timedelta(microseconds=1)
    return min(max(ns * 1000, -(2**63)), 2**63 - 1)


def _read_header(path: Path, name: str) -> tuple[list[str], str]:
    try:
        # utf-8-sig: spreadsheets often save a byte-order mark that would stick to "timestamp".
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise InputFileError("file not found", path=name) from err
    except (OSError, UnicodeDecodeError) as err:
        raise InputFileError(f"cannot read: {err}", path=name) from err
    text = text.rstrip("\r\n") + "\n"  # blank lines at the end are not rows
    first_line = text.splitlines()[0] if text.strip() else ""
    header = [cell.strip() for cell in next(csv.reader([first_line]), [])]
    if not any(header):
        raise InputFileError("empty file: expected a header row", path=name, row=None)
    seen: set[str] = set()
    for column in header:
        if column in seen:
            raise InputFileError("column appears twice in the header", path=name, column=column)
        seen.add(column)
        known = column in _REQUIRED or (
            column.startswith(BUSINESS_PREFIX) and len(column) > len(BUSINESS_PREFIX)
        )
        if not known:
            raise InputFileError(
                f"unexpected column in the header; expected {', '.join(_REQUIRED)} "
                f"and business:<name> columns",
                path=name,
                column=column,
            )
    for column in _REQUIRED:
        if column not in seen:
            raise InputFileError("missing column in the header", path=name, column=column)
    return header, text


def _row(position: int) -> int:
    return position + 1  # data rows are 1-based; the header is file line 1


def _where(position: int) -> str:
    return f"(data row {_row(position)}, file line {_row(position) + 1})"


def _timestamps(cells: pd.Series, name: str) -> pd.DatetimeIndex:
    # Read through integers, never a binary float: "1795183200.1" and
    # "2026-11-20T14:00:00.123456789Z" keep every digit, as DESIGN.md requires. The common
    # shapes are read for the whole column at once; any other cell (and every bad one, for
    # its message) goes through core.units.instant_ns one at a time.
    text = np.strings.strip(cells.to_numpy(dtype=str))
    ns = np.zeros(text.size, dtype=np.int64)
    done = np.zeros(text.size, dtype=bool)
    # Unix seconds: [+-]digits[.up to 9 digits].
    head, _, tail = np.strings.partition(text, ".")
    negative = np.strings.startswith(head, "-")
    whole = np.where(negative | np.strings.startswith(head, "+"), np.strings.slice(head, 1), head)
    unix = (
        _digits_only(whole)
        & (np.strings.str_len(whole) >= 1)
        & (np.strings.str_len(whole) <= 10)
        & _digits_only(tail)
        & (np.strings.str_len(tail) <= 9)
    )
    if unix.any():
        seconds = np.zeros(text.size, dtype=np.int64)
        seconds[unix] = whole[unix].astype(np.int64)
        unix &= seconds <= 9_223_372_035  # the rest is out of range, reported below
        fraction = np.strings.ljust(tail[unix], 9, "0").astype(np.int64)
        value = seconds[unix] * 1_000_000_000 + fraction
        ns[unix] = np.where(negative[unix], -value, value)
        done[unix] = True
    # ISO 8601 with an offset (Z or +hh:mm) and at most 9 decimals: pandas reads these
    # exactly; the shape is checked first so that both paths accept the same text.
    length = np.strings.str_len(text)
    zulu = np.strings.endswith(text, "Z")
    offset = (np.strings.slice(text, -6, -5) == "+") | (np.strings.slice(text, -6, -5) == "-")
    offset &= np.strings.slice(text, -3, -2) == ":"
    decimals = length - 19 - np.where(zulu, 1, 6)
    iso = ~done & (zulu | offset) & ((decimals == 0) | ((decimals >= 2) & (decimals <= 10)))
    year = np.strings.slice(text, 0, 4)
    iso &= _digits_only(year) & (year > "1677") & (year < "2262")  # surely inside the range
    if iso.any():
        try:
            parsed = pd.to_datetime(
                pd.Series(text[iso]), format="ISO8601", utc=True, errors="coerce"
            )
        except (ValueError, OverflowError):  # left to the one-cell-at-a-time reading below
            parsed = pd.Series(pd.NaT, index=range(int(iso.sum())), dtype="datetime64[ns, UTC]")
        good = parsed.notna().to_numpy()
        rows = np.flatnonzero(iso)[good]
        ns[rows] = pd.DatetimeIndex(parsed[good]).as_unit("ns").asi8
        done[rows] = True
    for position in np.flatnonzero(~done).tolist():
        cell = cells.iloc[position]
        try:
            ns[position] = instant_ns(cell)
        except NaiveInstant:
            problem = f"timestamp {cell!r} has no UTC offset (add +00:00 or Z)"
        except InstantOutOfRange:
            problem = f"timestamp {cell!r} is out of range: {INSTANT_RANGE}"
        except ValueError:
            problem = f"not a timestamp: {cell!r}; expected ISO 8601 with an offset or Unix seconds"
        else:
            continue
        raise InputFileError(
            f"{problem} {_where(position)}", path=name, row=_row(position), column=TIMESTAMP
        )
    # Compared, not subtracted: a difference of two far-apart times would overflow int64.
    not_increasing = ns[1:] <= ns[:-1]
    if not_increasing.any():
        first = int(np.argmax(not_increasing)) + 1
        what = (
            "duplicate"
            if ns[first] == ns[first - 1]
            else "out of order: earlier than the row above"
        )
        raise InputFileError(
            f"timestamp {cells.iloc[first]!r} is {what}; timestamps must strictly increase "
            f"{_where(first)}",
            path=name,
            row=_row(first),
            column=TIMESTAMP,
        )
    return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")


def _numbers(cells: pd.Series, name: str, column: str) -> npt.NDArray[np.float64]:
    text = cells.str.strip()
    missing = text.isin(_MISSING_TEXT).to_numpy()
    values = np.asarray(
        pd.to_numeric(text.where(~missing, "nan"), errors="coerce").to_numpy(dtype=float),
        dtype=np.float64,
    )
    not_numeric = ~np.isfinite(values) & ~missing
    if not_numeric.any():
        first = int(np.argmax(not_numeric))
        raise InputFileError(
            f"not a finite number: {cells.iloc[first]!r} {_where(first)}",
            path=name,
            row=_row(first),
            column=column,
        )
    # DESIGN.md "Numbers": ratios are 0..1; latencies and business metrics (rates or counts)
    # are not negative.
    upper = 1.0 if column == ERROR_RATIO else np.inf
    out_of_range = ~np.isnan(values) & ((values < 0) | (values > upper))
    if out_of_range.any():
        first = int(np.argmax(out_of_range))
        hint = {
            ERROR_RATIO: " (a ratio between 0 and 1, not a percentage)",
            P99_LATENCY: " (a latency is not negative)",
        }.get(column, " (a business metric is a rate or count: not negative)")
        raise InputFileError(
            f"value {cells.iloc[first]!r} out of range{hint} {_where(first)}",
            path=name,
            row=_row(first),
            column=column,
        )
    return values
