"""The runbook's parameters: one vocabulary for both notebooks, the library and the CLI.

Each ``Parameter`` names one value a person can set, with its kind, its default as written in
the notebooks' parameters cells, and which entry points take it. The notebooks declare exactly
these names (a test compares their parameters cells with this table), ``runbook evaluate`` and
``runbook rules`` derive their options from it (``--name-with-dashes``), and ``parse`` turns
people's text into values: durations need a unit (``90s``, ``2m``), ratios are ``1%`` or
``0.01``, instants are ISO 8601 with an offset or Unix seconds.

Pure: no I/O. Checks that need the world (a file exists, a kube context) live with the callers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from runbook_lib.core.units import (
    DURATION_UNITS,
    parse_duration,
    parse_instant,
    parse_ratio,
    parse_size,
)
from runbook_lib.errors import ParameterError

__all__ = [
    "ASSESS",
    "EVALUATE",
    "PARAMETERS",
    "ROLLBACK",
    "SECTIONS",
    "Kind",
    "Parameter",
    "by_name",
    "given",
    "parameters_cell",
    "parse",
    "parse_value",
]

# Entry points that take a parameter.
ASSESS = "assess"  # notebooks/assess.ipynb
ROLLBACK = "rollback"  # notebooks/rollback.ipynb
EVALUATE = "evaluate"  # runbook evaluate

_DECIDE = frozenset({ASSESS, ROLLBACK, EVALUATE})
_RUN = frozenset({ROLLBACK})


class Kind(StrEnum):
    TEXT = "text"
    DURATION = "duration"  # text with a unit -> float seconds
    OPTIONAL_DURATION = "optional duration"  # "" -> None
    RATIO = "ratio"  # "1%" or 0.01 -> float fraction in 0..1
    INSTANT = "instant"  # "" -> None; ISO 8601 with offset or Unix seconds
    COUNT = "count"  # whole number >= 0
    NUMBER = "number"  # finite number >= 0
    FLAG = "flag"  # True / False
    SIZE = "size"  # text with a unit (B, KiB, MiB, GiB) -> int bytes
    CHOICE = "choice"


@dataclass(frozen=True)
class Parameter:
    """One parameter: its name everywhere, how to read it, its default and what it means."""

    name: str
    kind: Kind
    default: str | int | float | bool
    help: str
    used_by: frozenset[str] = _RUN
    choices: tuple[str, ...] = ()

    @property
    def option(self) -> str:
        """The command-line spelling: ``--error-ratio`` for ``error_ratio``."""
        return "--" + self.name.replace("_", "-")


def _p(
    name: str,
    kind: Kind,
    default: str | int | float | bool,
    help: str,
    used_by: frozenset[str] = _RUN,
    choices: tuple[str, ...] = (),
) -> Parameter:
    return Parameter(name, kind, default, help, used_by, choices)


D, OD, R, I, T = Kind.DURATION, Kind.OPTIONAL_DURATION, Kind.RATIO, Kind.INSTANT, Kind.TEXT  # noqa: E741

_SOURCES = (
    _p(
        "replay_csv",
        T,
        "",
        "replay CSV instead of Prometheus (README: Replay format); empty: none",
        _DECIDE,
    ),
    _p(
        "prometheus_url",
        T,
        "",
        "Prometheus base URL, e.g. http://127.0.0.1:19090; empty: none",
        _DECIDE,
    ),
    _p(
        "prometheus_selector",
        T,
        "",
        "PromQL label matchers for every query, as in braces; empty: none",
        _DECIDE,
    ),
    _p("prometheus_rate_window", T, "1m", "PromQL rate() window, at least 4 scrapes", _DECIDE),
    _p(
        "business_counters",
        T,
        "",
        "business metrics: NAME(equals)COUNTER, comma-separated; empty: none",
        _DECIDE,
    ),
    _p(
        "step",
        OD,
        "",
        "sample spacing; empty: 15s for Prometheus, the median for a replay",
        _DECIDE,
    ),
    _p(
        "deployed_at",
        I,
        "",
        "time of the deploy; empty: the newest non-rollback revision in helm history",
        _DECIDE,
    ),
    _p("now", I, "", "evaluate as of this time; empty: last replay sample, or the clock", _DECIDE),
)
_RULES = (
    _p("error_ratio", R, "1%", "5xx ratio above which a sample breaches", _DECIDE),
    _p("latency_p99", D, "1s", "p99 latency above which a sample breaches", _DECIDE),
    _p("sustain", D, "2m", "a breach must last longer than this to fire", _DECIDE),
    _p("window", D, "30m", "only samples this long after the deploy count", _DECIDE),
    _p("business_drop", R, "10%", "a business metric drop larger than this fires", _DECIDE),
    _p("business_baseline", D, "30m", "baseline period before the deploy", _DECIDE),
    _p("business_smoothing", D, "5m", "trailing mean compared with the baseline", _DECIDE),
    _p(
        "manual_reason",
        T,
        "",
        "on-call or incident commander's call; non-empty rolls back; empty: none",
        _DECIDE,
    ),
    _p(
        "on_inconclusive",
        Kind.CHOICE,
        "stop",
        "headless, when the data cannot be judged: stop, or rollback",
        choices=("stop", "rollback"),
    ),
)
_TARGET = (
    _p("release", T, "app", "Helm release name"),
    _p("namespace", T, "default", "namespace of the release"),
    _p("deployment", T, "app", "Deployment the release runs"),
    _p("pod_selector", T, "", "pods to verify; empty: the Deployment's own selector"),
    _p("expected_cluster", T, "", "kube context name or API server URL to act on (required)"),
    _p("kubeconfig", T, "", "kubeconfig path; empty: $KUBECONFIG or ~/.kube/config"),
    _p("context", T, "", "kube context; empty: the kubeconfig's current context"),
    _p("helm_binary", T, "helm", "helm executable (Helm 3 or 4)"),
    _p("helm_timeout", D, "2m", "how long one helm command may take"),
)
_ACTING = (
    _p("dry_run", Kind.FLAG, False, "rehearse: read everything, change nothing"),
    _p("confirm", Kind.FLAG, False, "headless go-ahead; by hand you are asked instead"),
    _p("rollout_timeout", D, "5m", "how long to wait for the rollout (Rollback Steps, step 2)"),
    _p("verify_settle", D, "15s", "how long old pods may take to go (step 3)"),
    _p("target", D, "5m", "decision to verified recovery target"),
)
_RECOVERY = (
    _p("recovery_error_ratio", R, "0.1%", "the 5xx ratio must fall below this ..."),
    _p("recovery_within", D, "2m", "... within this long after the rollout ..."),
    _p("recovery_consecutive", Kind.COUNT, 2, "... for this many consecutive samples"),
    _p("recovery_poll", D, "5s", "how often recovery is polled"),
)
_NOTIFY = (
    _p("slack_webhook_url", T, "", "Slack incoming webhook (secret: redacted everywhere)"),
    _p("notify_file", T, "", "also append notifications to this file"),
    _p("console", Kind.FLAG, True, "also print notifications"),
    _p("notify_timeout", D, "5s", "how long a notification may take"),
)
_MIGRATIONS = (
    _p("migrations_to_revert", Kind.COUNT, 0, "migrations to revert with migrate down; 0: none"),
    _p("migrate_command", T, "./migrate down {n}", "command run in the migrator pod"),
    _p("migrate_version_command", T, "./migrate version", "prints the schema version"),
    _p("migrator_selector", T, "app in (migrator)", "label selector of the migrator pod"),
    _p("migrate_timeout", D, "2m", "how long the migration may take"),
)
_LOCK = (
    _p("lock_ttl", D, "1m", "the run renews its lock; one it stops renewing frees after this"),
    _p("lock_release_grace", D, "15s", "after a failure, how long to retry giving the lock back"),
    _p("lock_holder", T, "", "who holds the lock; empty: <incident_id>@<user>.<host>"),
    _p(
        "lock_takeover_reason",
        T,
        "",
        "take over a held lock, for this recorded reason; empty: never",
    ),
)
_RECORDS = (
    _p("incident_id", T, "", "empty: rollback-<release>-<UTC time>"),
    _p("output_dir", T, "evidence", "evidence goes to <output_dir>/<incident_id>/"),
    _p("root_cause_hypothesis", T, "", "first guess at the cause, for the incident record"),
    _p("request_rate_rps", Kind.NUMBER, 0.0, "requests per second, to estimate failed requests"),
    _p("fix_forward_repo", T, "", "git repository for the fix/<incident_id> branch; empty: skip"),
    _p("postmortem_organizer", T, "", "e-mail address of the post-mortem organiser"),
    _p("signing_key", T, "", "SSH key signing the manifest; empty: $RUNBOOK_SIGNING_KEY or none"),
    _p("without_evidence", Kind.FLAG, False, "headless: act even if evidence cannot be written"),
    _p("capture_per_pod", Kind.SIZE, "1MiB", "bad pods' logs kept before the rollback, per pod"),
    _p("capture_total", Kind.SIZE, "20MiB", "... and in all (B, KiB, MiB, GiB)"),
    _p("tracing_url", T, "", "Jaeger query URL, e.g. http://127.0.0.1:16686; empty: no traces"),
    _p("tracing_service", T, "", "service name in the traces; empty: the release name"),
)

# The notebooks' parameters cells show these headings above each group.
SECTIONS: tuple[tuple[str, tuple[Parameter, ...]], ...] = (
    ('"When to Rollback": where the samples come from', _SOURCES),
    ('"When to Rollback": the rules (runbook defaults)', _RULES),
    ("What to roll back, and where (the run refuses any other cluster)", _TARGET),
    ("How to act", _ACTING),
    ('Rollback Steps, step 4: "Check error rate"', _RECOVERY),
    ("Rollback Steps, step 1: tell the team", _NOTIFY),
    ("Rollback Steps, step 5: database migrations", _MIGRATIONS),
    ("The lock that keeps two rollbacks of one release apart", _LOCK),
    ("Post-Rollback Actions: records and follow-up", _RECORDS),
)
PARAMETERS: tuple[Parameter, ...] = tuple(p for _, group in SECTIONS for p in group)

_BY_NAME = {p.name: p for p in PARAMETERS}


def by_name(name: str) -> Parameter:
    """The parameter called ``name``; ``KeyError`` for an unknown one."""
    return _BY_NAME[name]


def given(namespace: Mapping[str, Any], used_by: str) -> dict[str, Any]:
    """The parameters of one entry point found in ``namespace`` (a notebook's globals)."""
    return {
        p.name: namespace[p.name]
        for p in PARAMETERS
        if used_by in p.used_by and p.name in namespace
    }


def _no_unit(value: object) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return True
    return isinstance(value, str) and re.fullmatch(r"\s*[-+0-9.eE]+\s*", value) is not None


def parse_value(parameter: Parameter, value: Any) -> Any:
    """One parameter's value from people's text (or an already typed value).

    Raises ``ValueError`` with a one-line message without the parameter's name; ``parse``
    prefixes it.
    """
    kind = parameter.kind
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
            raise ValueError(f"{value!r} has no unit; write e.g. 512KiB or 1MiB (units: B, KiB,"
                             " MiB, GiB)")  # fmt: skip
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
        text = str(value).strip()
        if text not in parameter.choices:
            raise ValueError(f"expected one of {', '.join(parameter.choices)}, got {value!r}")
        return text
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__} {value!r}")
    return value


def parse(raw: Mapping[str, Any], *, used_by: str) -> dict[str, Any]:
    """Every parameter of one entry point, parsed; defaults for those not given.

    Raises ``ParameterError`` listing every unknown name and every bad value together.
    """
    problems: list[str] = []
    known = [p for p in PARAMETERS if used_by in p.used_by]
    names = {p.name for p in known}
    problems.extend(
        f"{name}: unknown parameter (see papermill --help-notebook or --help)"
        for name in sorted(set(raw) - names)
    )
    values: dict[str, Any] = {}
    for parameter in known:
        given = raw.get(parameter.name, parameter.default)
        try:
            values[parameter.name] = parse_value(parameter, given)
        except (ValueError, TypeError, OverflowError) as err:
            problems.append(f"{parameter.name}: {err}")
    if problems:
        raise ParameterError(problems)
    return values


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


_PYTHON_TYPE = {Kind.COUNT: "int", Kind.NUMBER: "float", Kind.FLAG: "bool"}


def _literal(value: str | int | float | bool) -> str:
    if isinstance(value, str):
        # papermill's parameter parser skips a line whose value holds "=" (its issue #864):
        # the escape keeps the line, and Python reads it back as "=".
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("=", "\\x3d") + '"'
    return repr(value)


def parameters_cell(used_by: str) -> str:
    """The ``parameters`` cell of a notebook, as committed: ``name: type = default  # help``."""
    lines = [
        "# Parameters (names, units and defaults: runbook_lib/core/parameters.py). Durations",
        "# need a unit (90s, 2m), ratios are 1% or 0.01, times ISO 8601 with offset.",
    ]
    for title, group in SECTIONS:
        chosen = [p for p in group if used_by in p.used_by]
        if not chosen:
            continue
        lines.append(f"# {title}")
        for p in chosen:
            kind = _PYTHON_TYPE.get(p.kind, "str")
            lines.append(f"{p.name}: {kind} = {_literal(p.default)}  # {p.help}")
    return "\n".join(lines)
