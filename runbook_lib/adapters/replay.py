"""The replay CSV of DESIGN.md ("Replay CSV"): recorded samples as a ``MetricsSource``.

Format: a header row with ``timestamp`` (ISO 8601 with a UTC offset, or Unix seconds),
``error_ratio``, ``p99_latency_s`` and any number of ``business:<name>`` columns; one row per
sample, timestamps strictly increasing; an empty cell (or ``NaN``) is a missing sample.

Every problem is reported as ``InputFileError`` naming the file, the data row (1-based, the
header not counted; the file line is data row + 1) and the column, so a person can fix the file.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from runbook_lib.adapters.metrics import BUSINESS_PREFIX, ERROR_RATIO, P99_LATENCY
from runbook_lib.errors import InputFileError

__all__ = ["ReplaySource", "read_replay_csv"]

TIMESTAMP = "timestamp"
_REQUIRED = (TIMESTAMP, ERROR_RATIO, P99_LATENCY)
_MISSING_TEXT = ("", "nan", "NaN", "NAN")
# An offset at the end of an ISO 8601 time: Z, +hh:mm, +hhmm or +hh.
_OFFSET = r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"


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
        index = frame.index
        return frame[(index >= pd.Timestamp(start)) & (index <= pd.Timestamp(end))]


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
    text = cells.str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    is_unix = numbers.notna().to_numpy() & np.isfinite(numbers.to_numpy(dtype=float))
    iso = text.where(~is_unix, "")
    naive = ~is_unix & (iso != "") & ~iso.str.contains(_OFFSET, regex=True)
    parsed_iso = pd.to_datetime(
        iso.where(~is_unix & ~naive), format="ISO8601", utc=True, errors="coerce"
    )
    parsed_unix = pd.to_datetime(numbers.where(is_unix), unit="s", utc=True, errors="coerce")
    parsed = parsed_iso.where(~pd.Series(is_unix, index=text.index), parsed_unix)
    bad = parsed.isna().to_numpy()
    naive_array = naive.to_numpy()
    if bad.any():
        first = int(np.argmax(bad))
        if naive_array[first]:
            message = (
                f"timestamp {cells.iloc[first]!r} has no UTC offset (add +00:00 or Z) "
                f"{_where(first)}"
            )
        else:
            message = (
                f"not a timestamp: {cells.iloc[first]!r}; expected ISO 8601 with an offset "
                f"or Unix seconds {_where(first)}"
            )
        raise InputFileError(message, path=name, row=_row(first), column=TIMESTAMP)
    index = pd.DatetimeIndex(parsed).as_unit("ns")
    steps = np.diff(index.asi8)
    if (steps <= 0).any():
        first = int(np.argmax(steps <= 0)) + 1
        what = "duplicate" if steps[first - 1] == 0 else "out of order: earlier than the row above"
        raise InputFileError(
            f"timestamp {cells.iloc[first]!r} is {what}; timestamps must strictly increase "
            f"{_where(first)}",
            path=name,
            row=_row(first),
            column=TIMESTAMP,
        )
    return index


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
    if column.startswith(BUSINESS_PREFIX):
        return values  # business metrics may be anything a query returns (deltas included)
    upper = 1.0 if column == ERROR_RATIO else np.inf
    out_of_range = ~np.isnan(values) & ((values < 0) | (values > upper))
    if out_of_range.any():
        first = int(np.argmax(out_of_range))
        hint = " (a ratio between 0 and 1, not a percentage)" if column == ERROR_RATIO else ""
        raise InputFileError(
            f"value {cells.iloc[first]!r} out of range{hint} {_where(first)}",
            path=name,
            row=_row(first),
            column=column,
        )
    return values
