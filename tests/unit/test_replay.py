"""The replay CSV (DESIGN.md "Replay CSV"): good files load, bad files name file, row and column.

Each bad file is checked twice: through ``read_replay_csv`` (the error's fields) and through
``runbook evaluate`` (exit status 2 and the message a person reads).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_in_process import Ran, runbook

from runbook_lib.adapters.replay import ReplaySource, read_replay_csv
from runbook_lib.errors import InputFileError

HEADER = "timestamp,error_ratio,p99_latency_s,business:orders"
GOOD_ROWS = [
    "2026-11-20T14:00:00+00:00,0.002,0.25,100",
    "2026-11-20T14:00:15+00:00,0.003,0.26,101",
    "2026-11-20T14:00:30+00:00,0.004,0.27,102",
]


def write(tmp_path: Path, *lines: str, name: str = "replay.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_evaluate(path: Path) -> Ran:
    return runbook("evaluate", "--metrics", str(path), "--deployed-at", "2026-11-20T14:00:00Z")


def test_good_file_loads_as_a_utc_metric_frame(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER,
        "2026-11-20T15:00:00+01:00,0.002,0.25,100",  # another offset: converted to UTC
        "1795183215,,0.26,",  # Unix seconds; empty cells are missing samples
        "2026-11-20T14:00:30Z,NaN,0.27,102.5",
    )
    frame = read_replay_csv(path)
    assert list(frame.columns) == ["error_ratio", "p99_latency_s", "business:orders"]
    assert [t.isoformat() for t in frame.index] == [
        "2026-11-20T14:00:00+00:00",
        "2026-11-20T14:00:15+00:00",
        "2026-11-20T14:00:30+00:00",
    ]
    assert str(frame.index.tz) == "UTC"
    assert np.isnan(frame["error_ratio"].iloc[1])
    assert np.isnan(frame["error_ratio"].iloc[2])
    assert frame["business:orders"].tolist()[2] == 102.5


def test_replay_source_returns_the_requested_range(tmp_path: Path) -> None:
    source = ReplaySource(write(tmp_path, HEADER, *GOOD_ROWS))
    start = datetime(2026, 11, 20, 14, 0, 15, tzinfo=UTC)
    part = source.query_range(start, datetime(2026, 11, 20, 15, tzinfo=UTC), 15.0)
    assert part.index[0] == pd.Timestamp(start)
    assert len(part) == 2


BAD = {
    "missing-column": (
        ["timestamp,error_ratio,business:orders", "2026-11-20T14:00:00Z,0.1,1"],
        (None, "p99_latency_s", "missing column in the header"),
    ),
    "unknown-column": (
        ["timestamp,error_ratio,p99_latency_s,orders", "2026-11-20T14:00:00Z,0.1,1,1"],
        (None, "orders", "unexpected column"),
    ),
    "duplicate-column": (
        ["timestamp,error_ratio,p99_latency_s,error_ratio", "2026-11-20T14:00:00Z,0.1,1,1"],
        (None, "error_ratio", "column appears twice"),
    ),
    "empty-file": ([""], (None, "", "empty file")),
    "header-only": ([HEADER], (None, "", "no data rows")),
    "bad-timestamp": (
        [HEADER, GOOD_ROWS[0], "2026-13-45T14:00:15Z,0.1,1,1"],
        (2, "timestamp", "not a timestamp: '2026-13-45T14:00:15Z'"),
    ),
    "naive-timestamp": (
        [HEADER, GOOD_ROWS[0], GOOD_ROWS[1], "2026-11-20T14:00:30,0.1,1,1"],
        (3, "timestamp", "has no UTC offset"),
    ),
    "empty-timestamp": ([HEADER, ",0.1,1,1"], (1, "timestamp", "not a timestamp: ''")),
    "non-numeric-value": (
        [HEADER, GOOD_ROWS[0], "2026-11-20T14:00:15Z,0.1,slow,1"],
        (2, "p99_latency_s", "not a finite number: 'slow' (data row 2, file line 3)"),
    ),
    "non-numeric-business-value": (
        [HEADER, GOOD_ROWS[0], GOOD_ROWS[1], "2026-11-20T14:00:30Z,0.1,1,lots"],
        (3, "business:orders", "not a finite number: 'lots'"),
    ),
    "percentage-instead-of-ratio": (
        [HEADER, "2026-11-20T14:00:00Z,5,1,1"],
        (1, "error_ratio", "a ratio between 0 and 1, not a percentage"),
    ),
    "negative-latency": (
        [HEADER, "2026-11-20T14:00:00Z,0.1,-1,1"],
        (1, "p99_latency_s", "out of range"),
    ),
    "negative-business-value": (
        [HEADER, GOOD_ROWS[0], "2026-11-20T14:00:15Z,0.1,1,-3"],
        (2, "business:orders", "value '-3' out of range (a business metric is a rate or count"),
    ),
    "infinite-business-value": (
        [HEADER, "2026-11-20T14:00:00Z,0.1,1,inf"],
        (1, "business:orders", "not a finite number: 'inf'"),
    ),
    "unix-time-out-of-range": (
        [HEADER, GOOD_ROWS[0], "-1000000000000,0.1,1,1"],
        (2, "timestamp", "timestamp '-1000000000000' is out of range: times must lie between"),
    ),
    "iso-time-out-of-range": (
        [HEADER, "9999-01-01T00:00:00Z,0.1,1,1"],
        (1, "timestamp", "timestamp '9999-01-01T00:00:00Z' is out of range"),
    ),
    "huge-unix-time": (
        [HEADER, "1e400,0.1,1,1"],
        (1, "timestamp", "timestamp '1e400' is out of range"),
    ),
    "finer-than-a-nanosecond": (
        [HEADER, "2026-11-20T14:00:00.0000000001Z,0.1,1,1"],
        (1, "timestamp", "not a timestamp: '2026-11-20T14:00:00.0000000001Z'"),
    ),
    "unsorted-timestamps": (
        [HEADER, GOOD_ROWS[0], GOOD_ROWS[2], GOOD_ROWS[1]],
        (3, "timestamp", "out of order: earlier than the row above"),
    ),
    "duplicate-timestamps": (
        [HEADER, GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[1]],
        (3, "timestamp", "is duplicate"),
    ),
    "too-many-fields": (
        [HEADER, GOOD_ROWS[0], "2026-11-20T14:00:15Z,0.1,1,1,9"],
        (None, "", "cannot parse as CSV"),
    ),
}


@pytest.mark.parametrize(("lines", "expected"), BAD.values(), ids=BAD.keys())
def test_bad_file_names_file_row_and_column(
    tmp_path: Path, lines: list[str], expected: tuple[int | None, str, str]
) -> None:
    path = write(tmp_path, *lines)
    row, column, message = expected
    with pytest.raises(InputFileError) as caught:
        read_replay_csv(path)
    error = caught.value
    assert (error.path, error.row, error.column) == (str(path), row, column)
    assert message in str(error)


@pytest.mark.parametrize(
    "case", ["missing-column", "naive-timestamp", "non-numeric-value", "unsorted-timestamps"]
)
def test_cli_exits_2_naming_file_row_and_column(tmp_path: Path, case: str) -> None:
    lines, (row, column, message) = BAD[case]
    path = write(tmp_path, *lines)
    result = run_evaluate(path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    where = f"{path}" + (f", row {row}" if row else "") + f", column {column!r}"
    assert f"runbook evaluate: bad input: {where}: " in result.stderr
    assert message in result.stderr


def test_cli_missing_file_exits_2(tmp_path: Path) -> None:
    result = run_evaluate(tmp_path / "nope.csv")
    assert result.returncode == 2
    assert "nope.csv" in result.stderr
    assert "Traceback" not in result.stderr


def test_spreadsheet_export_with_bom_crlf_and_trailing_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(("\ufeff" + "\r\n".join([HEADER, *GOOD_ROWS]) + "\r\n\r\n\r\n").encode())
    frame = read_replay_csv(path)
    assert len(frame) == 3
    assert frame["business:orders"].tolist() == [100.0, 101.0, 102.0]


def test_blank_line_inside_the_data_is_reported_at_its_row(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER, GOOD_ROWS[0], "", GOOD_ROWS[1])
    with pytest.raises(InputFileError) as caught:
        read_replay_csv(path)
    assert (caught.value.row, caught.value.column) == (2, "timestamp")
    assert "(data row 2, file line 3)" in str(caught.value)


def test_timestamps_are_read_exactly_to_the_nanosecond(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER,
        "1795183200.1,0.002,0.25,100",  # through a float this lands ~100 ns off
        "1795183215.000000001,0.002,0.25,100",
        "2026-11-20T14:00:30.123456789Z,0.002,0.25,100",
        "2026-11-20T15:00:45.999999999+01:00,0.002,0.25,100",
        "+1795183260,0.002,0.25,100",
        "2026-11-20 14:01:15.5+00:00,0.002,0.25,100",
        "20261120T140130Z,0.002,0.25,100",  # ISO 8601 basic format, read one cell at a time
    )
    index = read_replay_csv(path).index
    assert list(index.asi8 - 1_795_183_200 * 10**9) == [
        100_000_000,
        15_000_000_001,
        30_123_456_789,
        45_999_999_999,
        60_000_000_000,
        75_500_000_000,
        90_000_000_000,
    ]
    assert index[2].isoformat() == "2026-11-20T14:00:30.123456789+00:00"


def test_far_apart_timestamps_at_both_ends_of_the_range(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER,
        "1677-09-21T00:12:43.145224193Z,0.002,0.25,100",
        "-9223372036.854775807,0.002,0.25,100",
        "2262-04-11T23:47:16.854775807Z,0.002,0.25,100",
    )
    with pytest.raises(InputFileError, match=r"is duplicate") as caught:
        read_replay_csv(path)  # -9223372036.854775807 s is the same instant as row 1
    assert caught.value.row == 2
    path = write(
        tmp_path,
        HEADER,
        "1677-09-21T00:12:43.145224193Z,0.002,0.25,100",
        "2262-04-11T23:47:16.854775807Z,0.002,0.25,100",
        name="ends.csv",
    )
    index = read_replay_csv(path).index
    assert list(index.asi8) == [-(2**63) + 1, 2**63 - 1]
    whole = ReplaySource(path).query_range(
        datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC), 15.0
    )
    assert len(whole) == 2
