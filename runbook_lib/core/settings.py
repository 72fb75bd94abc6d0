"""The runbook's settings: one model for both notebooks, the CLI, the receiver and the profile.

Every value a person can set is a field of one frozen group of ``Settings``, declared once
(``core.kinds.setting``) with its kind, its default as people write it, the unit of its parsed
value, one line of help and the entry points that take it::

    settings.sources     where the samples come from (replay_csv, prometheus_url, step, ...)
    settings.metrics     how to find the series in Prometheus (core.promql.Metrics)
    settings.rules       "When to Rollback" (error_ratio, sustain, window, ...)
    settings.target      what to roll back, and where (release, namespace, expected_cluster, ...)
    settings.acting      dry_run, confirm, rollout_timeout, verify_settle, target
    settings.recovery    "Check error rate" (recovery_error_ratio, recovery_within, ...)
    settings.notify, .migrations, .lock, .records, .capture

Field names are the flat, public names: a notebook's parameters cell (generated here), ``-p
NAME VALUE``, ``--name-with-dashes`` and the keys of a service profile (``core.profile``).
``from_flat`` parses flat values once per process and lists every problem at once ("name: what
was wrong"); ``to_flat`` gives them back as text ``from_flat`` reads to the same settings (for
papermill). Values given override a profile's, which override the defaults.

Plain frozen dataclasses with field metadata rather than pydantic: the rules are ours (a
duration without a unit is refused, instants are read to the nanosecond), every problem must
be listed at once, rules across fields and groups included, and a profile's problems carry its
line numbers; pydantic would have needed a custom validator per kind, its error texts rewritten,
and skips model validators once a field fails. This module (and ``kinds``) loads neither
pydantic nor pandas, so ``runbook run`` checks its parameters before the kernel starts.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from runbook_lib.core.groups import (
    EVERY,
    PROMETHEUS_STEP_S,
    Acting,
    Capture,
    Lock,
    Migrations,
    Notify,
    Records,
    RecoveryCheck,
    Rules,
    Sources,
    Target,
    now_problem,
)
from runbook_lib.core.kinds import DECIDE, Entry, Kind, Spec, check_value, parse, setting, specs
from runbook_lib.core.promql import Metrics
from runbook_lib.errors import ParameterError

if TYPE_CHECKING:  # core.profile reads the settings' names: imported only for the type
    from runbook_lib.core.profile import Profile

__all__ = [
    "FIELDS",
    "GROUPS",
    "PROMETHEUS_STEP_S",
    "Acting",
    "Capture",
    "Entry",
    "Lock",
    "Metrics",
    "Migrations",
    "Notify",
    "ParameterRow",
    "Records",
    "RecoveryCheck",
    "Rules",
    "Settings",
    "Sources",
    "Target",
    "cell_default",
    "default_incident_id",
    "field_named",
    "from_flat",
    "given",
    "now_problem",
    "parameter_rows",
    "parameters_cell",
    "to_flat",
    "with_incident_id",
]

_PYTHON_TYPE = {Kind.COUNT: "int", Kind.NUMBER: "float", Kind.FLAG: "bool"}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every setting of a run, parsed and checked. Build one with ``from_flat``."""

    profile: str = setting(
        "",
        Kind.TEXT,
        "service profile (YAML); the values given here override it; empty: none",
        used_by=EVERY,
        one_line=True,
        path=True,
        per_run=True,
    )
    sources: Sources = field(default_factory=Sources)
    metrics: Metrics = field(default_factory=Metrics)
    rules: Rules = field(default_factory=Rules)
    target: Target = field(default_factory=Target)
    acting: Acting = field(default_factory=Acting)
    recovery: RecoveryCheck = field(default_factory=RecoveryCheck)
    notify: Notify = field(default_factory=Notify)
    migrations: Migrations = field(default_factory=Migrations)
    lock: Lock = field(default_factory=Lock)
    records: Records = field(default_factory=Records)
    capture: Capture = field(default_factory=Capture)

    def flat(self) -> dict[str, Any]:
        """Every setting's parsed value by its flat name."""
        values = {"profile": self.profile}
        for attr, group in GROUPS:
            part = getattr(self, attr)
            values.update({spec.name: getattr(part, spec.name) for spec in specs(group)})
        return values

    def shown(self) -> dict[str, Any]:
        """The settings as plain JSON values for the timeline (secrets never shown)."""
        return {name: shown(_BY_NAME[name], value) for name, value in self.flat().items()}

    def with_values(self, **values: Any) -> Settings:
        """A copy with some fields (flat names, parsed values) changed; checked like a new one."""
        changed: dict[str, Any] = {}
        for name, value in values.items():
            attr = _GROUP_OF[name]
            if attr == "profile":
                changed["profile"] = value
                continue
            group = changed.get(attr, getattr(self, attr))
            changed[attr] = dataclasses.replace(group, **{name: value})
        return dataclasses.replace(self, **changed)


# Group attribute and class, in the order of the notebooks' parameters cells, with the heading
# each group has there.
GROUPS: tuple[tuple[str, type], ...] = (
    ("sources", Sources),
    ("metrics", Metrics),
    ("rules", Rules),
    ("target", Target),
    ("acting", Acting),
    ("recovery", RecoveryCheck),
    ("notify", Notify),
    ("migrations", Migrations),
    ("lock", Lock),
    ("records", Records),
    ("capture", Capture),
)
_HEADINGS = {
    "profile": "The service described once (a YAML profile; see docs/PARAMETERS.md)",
    "sources": '"When to Rollback": where the samples come from',
    "metrics": "Where the service's series are in Prometheus (raw PromQL, or a naming preset)",
    "rules": '"When to Rollback": the rules (runbook defaults)',
    "target": "What to roll back, and where (the run refuses any other cluster)",
    "acting": "How to act",
    "recovery": 'Rollback Steps, step 4: "Check error rate"',
    "notify": "Rollback Steps, step 1: tell the team",
    "migrations": "Rollback Steps, step 5: database migrations",
    "lock": "The lock that keeps two rollbacks of one release apart",
    "records": "Post-Rollback Actions: records and follow-up",
    "capture": "Evidence of the bad release: its pods' logs and its traces",
}
_SECTIONS: tuple[tuple[str, tuple[Spec, ...]], ...] = (
    ("profile", specs(Settings)),
    *((attr, specs(group)) for attr, group in GROUPS),
)
FIELDS: tuple[Spec, ...] = tuple(spec for _, group in _SECTIONS for spec in group)
_BY_NAME = {spec.name: spec for spec in FIELDS}
_GROUP_OF = {spec.name: attr for attr, group in _SECTIONS for spec in group}


def field_named(name: str) -> Spec:
    """The setting called ``name``; ``KeyError`` for an unknown one."""
    return _BY_NAME[name]


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def from_flat(
    raw: Mapping[str, Any],
    *,
    used_by: Entry | str,
    profile: Profile | None = None,
) -> Settings:
    """Every setting of one entry point from flat values (people's text or typed values).

    ``raw`` holds the values given, by name; ``profile`` (a ``core.profile.Profile``) supplies
    the ones not given; the rest keep their defaults. Raises ``ParameterError`` listing every
    problem at once: unknown names, bad values (a profile's with its file and line), required
    values missing, and the rules across fields and groups.
    """
    entry = Entry(used_by)
    known = {spec.name: spec for spec in FIELDS if entry in spec.used_by}
    problems = [
        f"{name}: unknown parameter (see papermill --help-notebook or --help)"
        for name in raw
        if name not in known
    ]
    where: dict[str, str] = {}
    if profile is not None:
        problems.extend(profile.problems)
    values: dict[str, Any] = {}
    for name, spec in known.items():
        if name not in raw:
            if profile is not None and name in profile.values:  # parsed and checked already
                values[name], where[name] = profile.values[name], profile.where(name)
            else:
                values[name] = spec.typed_default
            continue
        try:
            values[name] = parse(spec, raw[name])
            found = check_value(spec, values[name])
        except (ValueError, TypeError, OverflowError) as err:
            found = [str(err)]
        if found:
            problems.extend(f"{name}: {message}" for message in found)
            values[name] = spec.typed_default  # so the remaining checks still run
    failed = {p.split(":", 1)[0] for p in problems}
    for name, spec in known.items():
        if entry in spec.required_by and _empty(values[name]) and name not in failed:
            problems.append(f"{name}: required: {spec.why_required}")
    if entry in DECIDE:
        prom, replay = values["prometheus_url"], values["replay_csv"]
        if prom and replay:
            problems.append(
                "prometheus_url / replay_csv: give exactly one metrics source, not both"
            )
        if not prom and not replay:
            problems.append(
                "prometheus_url / replay_csv: give one metrics source (neither was given)"
            )
    parts: dict[str, Any] = {}
    for attr, group in GROUPS:
        try:
            parts[attr] = group(
                **{s.name: values[s.name] for s in specs(group) if s.name in values}
            )
        except ParameterError as err:
            problems.extend(_located(p, where) for p in err.problems)
            parts[attr] = group()
    if problems:
        raise ParameterError(list(dict.fromkeys(problems)))
    return Settings(profile=values.get("profile", ""), **parts)


def _located(problem: str, where: Mapping[str, str]) -> str:
    """A problem across settings, with where the profile sets the ones it names."""
    names = [name.strip() for name in problem.split(":", 1)[0].split("/")]
    return problem + "".join(dict.fromkeys(where[n] for n in names if n in where))


def to_flat(
    settings: Settings, *, used_by: Entry | str | None = None, changed_only: bool = False
) -> dict[str, Any]:
    """The settings as flat values that ``from_flat`` reads back to equal settings.

    Durations and sizes as text with their unit, ratios and instants as exact text, counts,
    numbers and flags as such. ``used_by`` keeps that entry point's settings only;
    ``changed_only`` those that differ from their defaults.
    """
    entry = None if used_by is None else Entry(used_by)
    flat = {}
    for name, value in settings.flat().items():
        spec = _BY_NAME[name]
        if entry is not None and entry not in spec.used_by:
            continue
        if changed_only and value == spec.typed_default:
            continue
        flat[name] = as_flat(spec, value)
    return flat


def given(namespace: Mapping[str, Any], used_by: Entry | str) -> dict[str, Any]:
    """The settings a notebook was given: those of ``used_by`` whose value is not the default
    its parameters cell declares (a value left at its default lets a profile set it)."""
    entry = Entry(used_by)
    return {
        spec.name: namespace[spec.name]
        for spec in FIELDS
        if entry in spec.used_by
        and spec.name in namespace
        and not _same(namespace[spec.name], cell_default(spec))
    }


def _same(value: Any, default: Any) -> bool:
    return type(value) is type(default) and value == default


def default_incident_id(release: str, started: datetime) -> str:
    """The incident id when none is given: ``rollback-<release>-<UTC time>``."""
    return f"rollback-{release}-{started:%Y%m%dT%H%M%SZ}"


def with_incident_id(settings: Settings, started: datetime) -> Settings:
    """The settings with an incident id: the one given, else ``default_incident_id``."""
    if settings.records.incident_id:
        return settings
    return settings.with_values(incident_id=default_incident_id(settings.target.release, started))


def parameters_cell(used_by: Entry | str) -> str:
    """The ``parameters`` cell of a notebook, as committed: ``name: type = default  # help``."""
    entry = Entry(used_by)
    lines = [
        "# Parameters (names, units and defaults: runbook_lib/core/settings.py). Durations",
        "# need a unit (90s, 2m), ratios are 1% or 0.01, times ISO 8601 with offset.",
    ]
    for attr, group in _SECTIONS:
        chosen = [spec for spec in group if entry in spec.used_by]
        if chosen:
            lines.append(f"# {_HEADINGS[attr]}")
            lines.extend(cell_line(spec) for spec in chosen)
    return "\n".join(lines)


@dataclass(frozen=True)
class ParameterRow:
    """One setting as a list of parameters shows it (``runbook run rollback --list-parameters``,
    the options' groups in ``--help``): its name, its default as people write it ("" for none),
    whether the entry point refuses it empty (``why`` says why), its help and its group's
    heading."""

    name: str
    default: str
    required: bool
    help: str
    group: str
    option: str
    metavar: str
    why: str = ""


def parameter_rows(used_by: Entry | str) -> tuple[ParameterRow, ...]:
    """The settings ``used_by`` takes, in the notebooks' order, grouped under their headings."""
    entry = Entry(used_by)
    return tuple(
        ParameterRow(
            name=spec.name,
            default=spec.default,
            required=entry in spec.required_by,
            help=spec.help,
            group=_HEADINGS[attr],
            option=spec.option,
            metavar=spec.metavar,
            why=spec.why_required if entry in spec.required_by else "",
        )
        for attr, group in _SECTIONS
        for spec in group
        if entry in spec.used_by
    )


# --- value -> flat value (papermill, the timeline) and the notebooks' parameters cells -------


def _seconds_text(seconds: float) -> str:
    # The largest unit that holds it a whole number of times reads back exactly ("30m").
    if float(seconds).is_integer() and seconds:
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if int(seconds) % size == 0:
                return f"{int(seconds) // size}{unit}"
        return f"{int(seconds)}s"
    return repr(float(seconds)) + "s"


def _size_text(size: int) -> str:
    for unit, bytes_ in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size and size % bytes_ == 0:
            return f"{size // bytes_}{unit}"
    return f"{size}B"


def as_flat(spec: Spec, value: Any) -> Any:
    """A value as ``parse`` reads it back exactly: text with units, or a plain number/flag."""
    kind = spec.kind
    if kind in (Kind.DURATION, Kind.OPTIONAL_DURATION):
        return "" if value is None else _seconds_text(value)
    if kind is Kind.RATIO:
        return repr(float(value))
    if kind is Kind.INSTANT:
        return "" if value is None else value.isoformat()
    if kind is Kind.SIZE:
        return _size_text(value)
    if kind is Kind.COUNTERS:
        return ",".join(f"{name}={metric}" for name, metric in value.items())
    if kind is Kind.QUERIES:
        return json.dumps(dict(value)) if value else ""
    return value


def shown(spec: Spec, value: Any) -> Any:
    """A value as plain JSON for the timeline: seconds, fractions, ISO times; secrets hidden."""
    if spec.secret and value:
        return "[REDACTED]"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    return value


def cell_default(spec: Spec) -> str | int | float | bool:
    """The default as a notebook's parameters cell declares it (typed for numbers and flags)."""
    if spec.kind in _PYTHON_TYPE:
        value: str | int | float | bool = spec.typed_default
        return value
    return spec.default


def cell_line(spec: Spec) -> str:
    """``name: type = default  # help`` for a notebook's parameters cell."""
    kind = _PYTHON_TYPE.get(spec.kind, "str")
    return f"{spec.name}: {kind} = {_literal(cell_default(spec))}  # {spec.help}"


def _literal(value: str | int | float | bool) -> str:
    if isinstance(value, str):
        # papermill's parameter parser skips a line whose value holds "=" (its issue #864):
        # the escape keeps the line, and Python reads it back as "=".
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("=", "\\x3d") + '"'
    return repr(value)
