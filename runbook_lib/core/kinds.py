"""What a setting is, and how people's text becomes its value (pure: no I/O).

Every value a person can set (a notebook parameter, a ``--option``, a key of a service profile)
is a field of one of the frozen settings groups (``core.settings``), declared once with
``setting()``: its ``Kind``, its default as people write it (``"2m"``; the typed default, 120.0
seconds, is derived from that text), the unit of the parsed value, one line of help, the entry
points that take it, and the checks its value must pass. ``parse`` reads people's text:
durations need a unit (``90s``, ``2m``; a bare ``90`` is refused, never taken as seconds),
sizes too (``1MiB``), ratios are ``1%`` or ``0.01``, instants ISO 8601 with an offset or Unix
seconds. Each function raises or returns one-line messages without the setting's name; the
caller prefixes it ("sustain: ...") and collects every problem into one ``ParameterError``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from runbook_lib.core.units import (
    DURATION_UNITS,
    instant_ns,
    parse_duration,
    parse_instant,
    parse_ratio,
    parse_size,
)
from runbook_lib.errors import ParameterError

__all__ = [
    "DECIDE",
    "Entry",
    "Group",
    "Kind",
    "Spec",
    "check_value",
    "parse",
    "read_duration",
    "setting",
    "specs",
]


class Entry(StrEnum):
    """The entry points that take settings."""

    ASSESS = "assess"  # notebooks/assess.ipynb (and runbook run assess)
    ROLLBACK = "rollback"  # notebooks/rollback.ipynb (and runbook run rollback)
    EVALUATE = "evaluate"  # runbook evaluate
    RULES = "rules"  # runbook rules


# "When to Rollback" is taken by both notebooks and runbook evaluate.
DECIDE = frozenset({Entry.ASSESS, Entry.ROLLBACK, Entry.EVALUATE})


class Kind(StrEnum):
    TEXT = "text"
    DURATION = "duration"  # text with a unit -> float seconds
    OPTIONAL_DURATION = "optional duration"  # "" -> None
    RATIO = "ratio"  # "1%" or 0.01 -> float fraction in 0..1
    INSTANT = "instant"  # "" -> None; ISO 8601 with offset or Unix seconds -> tz-aware datetime
    COUNT = "count"  # whole number >= 0
    NUMBER = "number"  # finite number >= 0
    FLAG = "flag"  # True / False
    SIZE = "size"  # text with a unit (B, KiB, MiB, GiB) -> int bytes
    CHOICE = "choice"  # one of the spec's choices
    COUNTERS = "counters"  # "orders=orders_total,..." -> name -> Prometheus counter
    QUERIES = "queries"  # YAML/JSON mapping text, or a mapping -> name -> PromQL


# The unit of the parsed value, where the kind decides it.
_UNITS = {
    Kind.DURATION: "s",
    Kind.OPTIONAL_DURATION: "s",
    Kind.RATIO: "fraction 0..1",
    Kind.SIZE: "bytes",
    Kind.INSTANT: "UTC time",
}
_METAVARS = {
    Kind.DURATION: "DURATION",
    Kind.OPTIONAL_DURATION: "DURATION",
    Kind.RATIO: "RATIO",
    Kind.INSTANT: "TIME",
    Kind.COUNT: "N",
    Kind.NUMBER: "NUMBER",
    Kind.FLAG: "BOOL",
    Kind.SIZE: "SIZE",
    Kind.COUNTERS: "NAME=COUNTER,...",
    Kind.QUERIES: "YAML",
}
# Times are int64 nanoseconds (pandas' range): a longer duration cannot be added to one.
_LONGEST_S = (2**63 - 1) // 1_000_000_000

Check = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Spec:
    """One setting: its name everywhere, how to read it, its default as written, its meaning.

    ``check`` is a further rule its parsed value must pass (a message, or None when it does);
    ``required_by``: the entry points that refuse it empty (``why_required`` says why);
    ``per_run``: it describes one run, not the service, so a profile cannot set it;
    ``path``: a file or folder, made absolute before a kernel runs elsewhere;
    ``secret``: never shown (the timeline shows ``[REDACTED]``); ``shown_as``: the option's
    metavar when the kind's (``DURATION``, ``FILE``, ``URL`` ...) would not say enough.
    """

    kind: Kind
    default: str
    help: str
    used_by: frozenset[Entry]
    unit: str = ""
    choices: tuple[str, ...] = ()
    check: Check | None = None
    positive: bool = False
    one_line: bool = False
    required_by: frozenset[Entry] = frozenset()
    why_required: str = ""
    per_run: bool = False
    path: bool = False
    secret: bool = False
    shown_as: str = ""
    name: str = ""

    @property
    def option(self) -> str:
        """The command-line spelling: ``--error-ratio`` for ``error_ratio``."""
        return "--" + self.name.replace("_", "-")

    @property
    def metavar(self) -> str:
        if self.shown_as:
            return self.shown_as
        if self.path:
            return "DIR" if self.name.endswith(("_dir", "_repo")) else "FILE"
        if self.name.endswith("_url"):
            return "URL"
        if self.name.endswith("_query"):
            return "PROMQL"
        if self.kind is Kind.CHOICE:
            return "{" + ",".join(c for c in self.choices if c) + "}"
        return _METAVARS.get(self.kind, "TEXT")

    @property
    def typed_default(self) -> Any:
        return parse(self, self.default)


def setting(
    default: str,
    kind: Kind,
    help: str,
    *,
    used_by: frozenset[Entry],
    unit: str = "",
    choices: tuple[str, ...] = (),
    check: Check | None = None,
    positive: bool = False,
    one_line: bool = False,
    required_by: frozenset[Entry] = frozenset(),
    why_required: str = "",
    per_run: bool = False,
    path: bool = False,
    secret: bool = False,
    shown_as: str = "",
) -> Any:
    """A field of a settings group; its default is parsed from ``default`` (people's text)."""
    spec = Spec(
        kind,
        default,
        help,
        used_by,
        unit or _UNITS.get(kind, ""),
        choices,
        check,
        positive,
        one_line,
        required_by,
        why_required,
        per_run,
        path,
        secret,
        shown_as,
    )
    value = parse(spec, default)
    problems = check_value(spec, value)
    if problems:  # a programming error: the declared default breaks its own rules
        raise ValueError(f"default {default!r}: {'; '.join(problems)}")
    metadata = {"spec": spec}
    if isinstance(value, Mapping):
        return dataclasses.field(default_factory=lambda: value, metadata=metadata)
    return dataclasses.field(default=value, metadata=metadata)


_SPECS: dict[type, tuple[Spec, ...]] = {}


def specs(group: type) -> tuple[Spec, ...]:
    """The specs of a settings group's fields, in declaration order, each with its name."""
    if group not in _SPECS:
        _SPECS[group] = tuple(
            dataclasses.replace(f.metadata["spec"], name=f.name)
            for f in dataclasses.fields(group)
            if "spec" in f.metadata
        )
    return _SPECS[group]


class Group:
    """A frozen settings group: constructing one checks every field and the group's own rules.

    Raises ``ParameterError`` listing every problem ("name: what was wrong"). The rules across
    fields (``cross_problems``) run once every field is valid.
    """

    def __post_init__(self) -> None:
        problems = [
            f"{spec.name}: {message}"
            for spec in specs(type(self))
            for message in check_value(spec, getattr(self, spec.name))
        ]
        if not problems:
            problems = self.cross_problems()
        if problems:
            raise ParameterError(problems)

    def cross_problems(self) -> list[str]:
        """Rules that no single field can check alone; none by default."""
        return []


# --- people's text -> value ---------------------------------------------------------------


def _no_unit(value: object) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return True
    return isinstance(value, str) and re.fullmatch(r"\s*[-+0-9.eE]+\s*", value) is not None


def parse(spec: Spec, value: Any) -> Any:
    """One setting's value from people's text (or an already typed value).

    Raises ``ValueError`` with a one-line message without the setting's name.
    """
    kind = spec.kind
    if kind in (Kind.DURATION, Kind.OPTIONAL_DURATION):
        if kind is Kind.OPTIONAL_DURATION and (value is None or value == ""):
            return None
        if isinstance(value, timedelta):
            return value.total_seconds()
        if _no_unit(value):
            units = ", ".join(DURATION_UNITS)
            raise ValueError(f"{value!r} has no unit; write e.g. 90s or 2m (units: {units})")
        if not isinstance(value, str):
            raise ValueError(f"expected a duration such as 2m, got {value!r}")
        return parse_duration(value)
    if kind is Kind.SIZE:
        if _no_unit(value):
            raise ValueError(
                f"{value!r} has no unit; write e.g. 512KiB or 1MiB (units: B, KiB, MiB, GiB)"
            )
        if not isinstance(value, str):
            raise ValueError(f"expected a size such as 1MiB, got {value!r}")
        return parse_size(value)
    if kind is Kind.RATIO:
        ratio = parse_ratio(value)
        if not 0 <= ratio <= 1:
            raise ValueError(f"a ratio is between 0 and 1 (0% and 100%), got {value!r}")
        return ratio
    if kind is Kind.INSTANT:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return parse_instant(value)
    if kind is Kind.COUNT:
        return _count(value)
    if kind is Kind.NUMBER:
        return _number(value)
    if kind is Kind.FLAG:
        return _flag(value)
    if kind is Kind.CHOICE:
        text = "" if value is None else str(value).strip()
        if text not in spec.choices:
            shown = ", ".join(c for c in spec.choices if c)
            raise ValueError(f"expected one of {shown}, got {value!r}")
        return text
    if kind is Kind.COUNTERS:
        return _counters(value)
    if kind is Kind.QUERIES:
        return _queries(value)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__} {value!r}")
    return value


def read_duration(value: Any) -> float:
    """Seconds from a duration as people write it (``90s``, ``2m``; a bare number is refused).

    For durations that are not settings (a receiver's cooldown, a policy's period). Raises
    ``ValueError`` naming what was wrong.
    """
    seconds: float = parse(_DURATION_SPEC, value)
    return seconds


def check_value(spec: Spec, value: Any) -> list[str]:
    """The problems of a typed value: the kind's range, then the spec's own rule, then the
    rules every text follows (one problem a setting, the most specific)."""
    found = _kind_problem(spec, value)
    if found is None and spec.check is not None:
        found = spec.check(value)
    if found is None and spec.positive and value is not None and value <= 0:
        found = "must be longer than 0 s" if spec.unit == "s" else "must be more than 0"
    if found is None and spec.kind is Kind.TEXT:
        if spec.one_line and "\n" in value:
            found = "must be one line"
        elif any(ch in value for ch in "\r\x00"):
            found = "must not contain carriage returns or NUL characters"
    return [found] if found else []


def _kind_problem(spec: Spec, value: Any) -> str | None:
    kind = spec.kind
    if kind in (Kind.DURATION, Kind.OPTIONAL_DURATION, Kind.RATIO, Kind.NUMBER):
        if value is None and kind is Kind.OPTIONAL_DURATION:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {value!r}"
        if not math.isfinite(value):
            return f"must be finite, got {value!r}"
        if value < 0:
            return f"must not be negative, got {value!r}"
        if kind is Kind.RATIO and value > 1:
            return f"a ratio must be between 0 and 1, got {value!r}"
        if kind is not Kind.RATIO and kind is not Kind.NUMBER and value > _LONGEST_S:
            return (
                f"{value:g} s is longer than the tool can represent (at most {_LONGEST_S} s, "
                "about 292 years)"
            )
        return None
    if kind in (Kind.COUNT, Kind.SIZE):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"must be a whole number >= 0, got {value!r}"
        return None
    if kind is Kind.FLAG:
        return None if isinstance(value, bool) else f"expected True or False, got {value!r}"
    if kind is Kind.INSTANT:
        if value is None:
            return None
        try:
            instant_ns(value)
        except ValueError as err:
            return str(err)
        return None
    if kind is Kind.CHOICE:
        return None if value in spec.choices else f"expected one of {spec.choices}, got {value!r}"
    if kind in (Kind.COUNTERS, Kind.QUERIES):
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            return f"expected a mapping of names to text, got {value!r}"
        return None
    return None if isinstance(value, str) else f"expected text, got {value!r}"


def _count(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number >= 0, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise ValueError(f"expected a number >= 0, got {value!r}") from err
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"expected a finite number >= 0, got {value!r}")
    return number


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"expected True or False, got {value!r}")


def _counters(value: object) -> Mapping[str, str]:
    if isinstance(value, Mapping):
        return _names_to_text(value)
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, str):
        raise ValueError(f"expected NAME=COUNTER pairs, got {value!r}")
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, counter = item.partition("=")
        if not sep or not name.strip() or not counter.strip():
            raise ValueError(f"expected NAME=COUNTER, got {item!r}")
        pairs[name.strip()] = counter.strip()
    return MappingProxyType(pairs)


def _queries(value: object) -> Mapping[str, str]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return MappingProxyType({})
    if isinstance(value, str):
        import yaml  # here: only a command line that gives queries pays for it

        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ValueError(f"expected a mapping NAME: PROMQL (YAML or JSON): {err}") from err
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping NAME: PROMQL, got {value!r}")
    return _names_to_text(value)


def _names_to_text(value: Mapping[Any, Any]) -> Mapping[str, str]:
    for name, text in value.items():
        if not isinstance(name, str) or not isinstance(text, str):
            raise ValueError(f"expected NAME: text pairs, got {name!r}: {text!r}")
    return MappingProxyType({name.strip(): text for name, text in value.items()})


_DURATION_SPEC = Spec(Kind.DURATION, "", "", frozenset(), unit="s")
