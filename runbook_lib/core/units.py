"""Parsing of the quantities people type into parameters: durations, ratios and instants.

Parameters come from notebooks, the command line and replay files as text ("2m", "1%",
"2026-11-20T14:00:00+00:00"); these functions turn them into seconds, fractions and tz-aware UTC
datetimes, and name what was wrong otherwise. Each raises ``ValueError`` with a one-line
message; callers collect those messages into one ``ParameterError``.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

__all__ = ["DURATION_UNITS", "parse_duration", "parse_instant", "parse_ratio"]

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

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


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
        match = _DURATION.match(value)
        if match is None:
            if value.strip().startswith("-"):
                raise ValueError(f"must not be negative, got {value!r}")
            raise ValueError(f"not a duration: {value!r} (e.g. 120, 120s, 2m, 1h)")
        number, unit = match.groups()
        if unit and unit.lower() not in DURATION_UNITS:
            known = ", ".join(DURATION_UNITS)
            raise ValueError(f"unknown unit {unit!r} in {value!r} (known: {known})")
        seconds = float(number) * DURATION_UNITS[unit.lower() if unit else "s"]
    if not math.isfinite(seconds):
        raise ValueError(f"must be finite, got {value!r}")
    if seconds < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return seconds


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


def parse_instant(value: str | float | int | datetime) -> datetime:
    """Return a tz-aware UTC datetime from ISO 8601 text with an offset (or ``Z``) or Unix seconds.

    Raises ``ValueError`` for text without a UTC offset (a naive time is ambiguous during an
    incident that spans teams in several time zones) or that is not a time at all.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{value.isoformat()} has no UTC offset (add +00:00 or Z)")
        return value.astimezone(UTC)
    if isinstance(value, bool):
        raise ValueError(f"expected a time, got {value!r}")
    if isinstance(value, int | float):
        return _from_unix(float(value), value)
    text = value.strip()
    try:
        return _from_unix(float(text), value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as err:
        raise ValueError(
            f"not a time: {value!r} (ISO 8601 with offset, e.g. 2026-11-20T14:00:00+00:00, "
            "or Unix seconds)"
        ) from err
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"{value!r} has no UTC offset (add +00:00 or Z)")
    return parsed.astimezone(UTC)


def _from_unix(seconds: float, original: object) -> datetime:
    if not math.isfinite(seconds):
        raise ValueError(f"not a time: {original!r}")
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError) as err:
        raise ValueError(f"Unix time out of range: {original!r}") from err
