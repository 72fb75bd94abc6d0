"""Parsing of the quantities people type into parameters: durations, ratios and instants.

Parameters come from notebooks, the command line and replay files as text ("2m", "1%",
"2026-11-20T14:00:00+00:00"); these functions turn them into seconds, fractions and tz-aware UTC
datetimes, and name what was wrong otherwise. Each raises ``ValueError`` with a one-line
message; callers collect those messages into one ``ParameterError``.
"""

from __future__ import annotations

import math
import re
import sys
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

__all__ = [
    "DURATION_UNITS",
    "INSTANT_RANGE",
    "SIZE_UNITS",
    "InstantOutOfRange",
    "NaiveInstant",
    "instant_ns",
    "parse_duration",
    "parse_instant",
    "parse_ratio",
    "parse_size",
]

# Seconds per unit. Only unambiguous units: "m" is minutes (there is no metre here), and months
# are refused because their length varies.
DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}

# Bytes per unit: binary units only (a "1MB" could mean either, so it is refused).
SIZE_UNITS: dict[str, int] = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3}

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def _number_and_unit(value: str, what: str, examples: str) -> tuple[float, str]:
    """``"1.5GiB"`` -> ``(1.5, "GiB")``, the unit as written (empty when there is none);
    a ``ValueError`` naming ``what`` was expected, with ``examples``, for other text."""
    match = _DURATION.match(value)
    if match is None:
        if value.strip().startswith("-"):
            raise ValueError(f"must not be negative, got {value!r}")
        raise ValueError(f"not a {what}: {value!r} (e.g. {examples})")
    number, unit = match.groups()
    return float(number), unit


def parse_duration(value: str | float | int) -> float:
    """Return seconds from ``90``, ``"90"``, ``"90s"``, ``"2m"``, ``"1.5h"`` or ``"500ms"``.

    A bare number means seconds. Raises ``ValueError`` for an unknown unit, a negative or
    non-finite number, or text that is not a duration.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        number, unit = _number_and_unit(value, "duration", "120, 120s, 2m, 1h")
        if unit and unit.lower() not in DURATION_UNITS:
            known = ", ".join(DURATION_UNITS)
            raise ValueError(f"unknown unit {unit!r} in {value!r} (known: {known})")
        seconds = number * DURATION_UNITS[unit.lower() if unit else "s"]
    if not math.isfinite(seconds):
        raise ValueError(f"must be finite, got {value!r}")
    if seconds < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return seconds


def parse_size(value: str) -> int:
    """Return bytes from ``"512KiB"``, ``"1MiB"``, ``"1.5GiB"`` or ``"4096B"``.

    A unit is required (the caller refuses bare numbers with a message naming the units).
    Raises ``ValueError`` for an unknown unit, a negative or non-finite number, or text that is
    not a size.
    """
    number, unit = _number_and_unit(value, "size", "512KiB, 1MiB, 1GiB")
    if unit.lower() not in SIZE_UNITS:
        known = ", ".join(("B", "KiB", "MiB", "GiB"))
        raise ValueError(f"unknown unit {unit!r} in {value!r} (known: {known})")
    size = number * SIZE_UNITS[unit.lower()]
    if not math.isfinite(size):
        raise ValueError(f"must be finite, got {value!r}")
    return int(size)


def parse_ratio(value: str | float | int) -> float:
    """Return a fraction from ``0.01``, ``"0.01"`` or ``"1%"``.

    Raises ``ValueError`` for text that is not a number or a percentage, or a non-finite value.
    The range (0..1) is checked by the caller, which knows the parameter's name.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a ratio, got {value!r}")
    if isinstance(value, int | float):
        ratio = float(value)
    else:
        text = value.strip()
        scale = 1.0
        if text.endswith("%"):
            text, scale = text[:-1].strip(), 0.01
        try:
            ratio = float(text) * scale
        except ValueError as err:
            raise ValueError(f"not a ratio: {value!r} (e.g. 0.01 or 1%)") from err
    if not math.isfinite(ratio):
        raise ValueError(f"must be finite, got {value!r}")
    return ratio


class NaiveInstant(ValueError):
    """A time without a UTC offset."""


class InstantOutOfRange(ValueError):
    """A time outside what the tool can represent (``INSTANT_RANGE``)."""


def parse_instant(value: str | float | int | datetime) -> datetime:
    """Return a tz-aware UTC time from ISO 8601 text with an offset (or ``Z``) or Unix seconds.

    Read exactly, to the nanosecond (DESIGN.md: never through a binary float); the result is a
    ``pandas.Timestamp`` (a ``datetime``) so the nanoseconds are kept. Raises ``ValueError``
    for text without a UTC offset (a naive time is ambiguous during an incident that spans
    teams in several time zones), that is not a time at all, or a time outside what the tool
    can represent (``INSTANT_RANGE``).
    """
    import pandas as pd  # here: a run whose parameters name no time never loads pandas

    stamp: datetime = pd.Timestamp(instant_ns(value), tz=UTC)
    return stamp


def instant_ns(value: str | float | int | datetime) -> int:
    """``parse_instant`` as integer nanoseconds since the Unix epoch (UTC)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a time, got {value!r}")
    if isinstance(value, datetime):
        ns = _datetime_ns(value)
    elif isinstance(value, int):
        ns = value * _NS_PER_S
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a time: {value!r}")
        ns = _unix_ns(repr(value), value)  # the shortest text that reads back as this float
    elif isinstance(value, str):
        ns = _text_ns(value)
    else:
        raise ValueError(f"expected a time, got {value!r}")
    if not _FIRST_NS <= ns <= _LAST_NS:
        raise InstantOutOfRange(f"{_shown(value)} is out of range: {INSTANT_RANGE}")
    return ns


_NS_PER_S = 1_000_000_000
# pandas keeps times as int64 nanoseconds, its smallest value meaning "not a time".
_FIRST_NS = -(2**63) + 1
_LAST_NS = 2**63 - 1
INSTANT_RANGE = (
    "times must lie between 1677-09-21T00:12:43.145224193Z and 2262-04-11T23:47:16.854775807Z"
)
_EPOCH_DAY = 719_163  # date(1970, 1, 1).toordinal()
_UNIX = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_CLOCK = r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2}))?"
_BASIC_CLOCK = r"(?P<hour>[0-9]{2})(?P<minute>[0-9]{2})(?P<second>[0-9]{2})?"
_REST = r"(?:[.,](?P<fraction>[0-9]+))?\s*(?P<offset>[zZ]|[+-][0-9]{2}(?::?[0-9]{2})?)?"
_ISO = (
    re.compile(
        rf"(?P<year>[0-9]{{4}})-(?P<month>[0-9]{{2}})-(?P<day>[0-9]{{2}})[Tt ]{_CLOCK}{_REST}"
    ),
    re.compile(
        rf"(?P<year>[0-9]{{4}})(?P<month>[0-9]{{2}})(?P<day>[0-9]{{2}})[Tt]{_BASIC_CLOCK}{_REST}"
    ),
)


def _shown(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else repr(value)


def _datetime_ns(value: datetime) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveInstant(f"{value.isoformat()} has no UTC offset (add +00:00 or Z)")
    pandas = sys.modules.get("pandas")  # a pandas Timestamp exists only once pandas is loaded
    if pandas is not None and isinstance(value, pandas.Timestamp):
        return int(value.value)  # nanoseconds since the epoch, whatever the time zone
    offset = value.utcoffset() or timedelta(0)
    local = value.replace(tzinfo=None) - datetime(1970, 1, 1)
    return (local - offset) // timedelta(microseconds=1) * 1000


def _text_ns(text: str) -> int:
    stripped = text.strip()
    if _UNIX.fullmatch(stripped):
        return _unix_ns(stripped, text)
    for pattern in _ISO:
        match = pattern.fullmatch(stripped)
        if match:
            return _iso_ns(match, text)
    raise ValueError(
        f"not a time: {text!r} (ISO 8601 with offset, e.g. 2026-11-20T14:00:00+00:00, "
        "or Unix seconds)"
    )


def _unix_ns(text: str, original: object) -> int:
    try:
        with localcontext() as context:
            context.prec = 60
            scaled = Decimal(text) * _NS_PER_S
            if scaled.adjusted() > 30:  # far beyond any representable time
                raise InstantOutOfRange(f"{_shown(original)} is out of range: {INSTANT_RANGE}")
            return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN))
    except ArithmeticError as err:  # decimal overflow of an absurd exponent
        raise InstantOutOfRange(f"{_shown(original)} is out of range: {INSTANT_RANGE}") from err


def _iso_ns(match: re.Match[str], original: str) -> int:
    part = match.groupdict()
    if part["offset"] is None:
        raise NaiveInstant(f"{original!r} has no UTC offset (add +00:00 or Z)")
    fraction = part["fraction"] or ""
    if len(fraction) > 9 and fraction[9:].strip("0"):
        raise ValueError(f"{original!r} is finer than a nanosecond")
    try:
        moment = datetime(
            int(part["year"]),
            int(part["month"]),
            int(part["day"]),
            int(part["hour"]),
            int(part["minute"]),
            int(part["second"] or 0),
        )
    except ValueError as err:
        raise ValueError(f"not a time: {original!r} ({err})") from err
    offset = part["offset"]
    offset_s = 0
    if offset not in ("Z", "z"):
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 23 or minutes > 59:
            raise ValueError(f"not a time: {original!r} (offset {offset} out of range)")
        offset_s = (hours * 3600 + minutes * 60) * (-1 if offset[0] == "-" else 1)
    seconds = (
        (moment.toordinal() - _EPOCH_DAY) * 86_400
        + moment.hour * 3600
        + moment.minute * 60
        + moment.second
        - offset_s
    )
    return seconds * _NS_PER_S + int(fraction[:9].ljust(9, "0"))
