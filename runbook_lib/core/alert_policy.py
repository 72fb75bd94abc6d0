"""Which alerts may roll back without a person: the receiver's policy and circuit breaker (pure).

Used by ``runbook serve``. The policy is a YAML file (``Policy.from_mapping`` reads the parsed
mapping)::

    parameters:            # rollback-notebook parameters for every run (vocabulary names)
      expected_cluster: kwok-runbook
      prometheus_url: http://127.0.0.1:19090
    releases:              # first match wins; release and namespace are shell-style globs
      - {release: app, namespace: default, auto_rollback: true}
      - {release: "shop-*", namespace: prod, auto_rollback: false,
         profile: /etc/runbook/shop.yaml, parameters: {deployment: shop}}
    circuit_breaker: {max_rollbacks: 2, period: 1h}
    notify: {notify_file: /var/log/runbook/notifications.log, console: true}

A release's ``profile`` (a service profile, ``core.profile``) describes the service; the run
reads it, and the policy's parameters and what the receiver sets override it.

``plan_run`` turns an alert's release into an ``Action``: roll back automatically (the
rollback notebook with ``confirm``; it still assesses first and changes nothing unless its
verdict is ``rollback``), assess only and notify with the command a person would run (the
release is not allowed, or the breaker is open), or notify only (the release is in no entry).
"""

from __future__ import annotations

import fnmatch
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from runbook_lib.core.kinds import Entry, check_value, parse, read_duration
from runbook_lib.core.names import bounded_name
from runbook_lib.core.redact import SECRET_NAME
from runbook_lib.core.settings import FIELDS, field_named
from runbook_lib.errors import ParameterError

__all__ = [
    "Action",
    "Breaker",
    "Plan",
    "Policy",
    "ReleaseRule",
    "breaker_state",
    "incident_id_for",
    "plan_run",
    "rollback_command",
]

_ROLLBACK_NAMES = frozenset(s.name for s in FIELDS if Entry.ROLLBACK in s.used_by)
# Set by the receiver for each run, not by the policy.
_RECEIVER_SETS = frozenset({"release", "namespace", "confirm", "dry_run", "incident_id"})
_NOTIFY_KEYS = frozenset({"slack_webhook_url", "notify_file", "console", "notify_timeout"})
_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Action(StrEnum):
    AUTO_ROLLBACK = "auto_rollback"  # rollback notebook, confirm=True (assesses first)
    ASSESS_AND_NOTIFY = "assess_and_notify"  # rollback notebook, dry_run=True; then notify
    NOTIFY_ONLY = "notify_only"  # nothing runs: the release is not in the policy


@dataclass(frozen=True)
class ReleaseRule:
    release: str
    namespace: str
    auto_rollback: bool
    parameters: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    profile: str = ""  # the service profile the release's runs read; "" none

    def matches(self, release: str, namespace: str) -> bool:
        return fnmatch.fnmatchcase(release, self.release) and fnmatch.fnmatchcase(
            namespace, self.namespace
        )


@dataclass(frozen=True)
class Breaker:
    """At most ``max_rollbacks`` automatic rollbacks per release within ``period`` seconds."""

    max_rollbacks: int = 2
    period: float = 3600.0


@dataclass(frozen=True)
class Policy:
    releases: tuple[ReleaseRule, ...] = ()
    breaker: Breaker = Breaker()
    parameters: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    notify: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def from_mapping(cls, data: object) -> Policy:
        """The policy from parsed YAML; ``ParameterError`` names every problem at once."""
        problems: list[str] = []
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ParameterError(["policy: expected a mapping at the top level"])
        unknown = sorted(set(data) - {"parameters", "releases", "circuit_breaker", "notify"})
        problems += [
            f"policy.{k}: unknown key (parameters, releases, circuit_breaker, notify)"
            for k in unknown
        ]
        parameters = _parameters(data.get("parameters"), "policy.parameters", problems)
        releases = []
        raw_releases = data.get("releases") or []
        if not isinstance(raw_releases, list):
            problems.append("policy.releases: expected a list")
            raw_releases = []
        for i, raw in enumerate(raw_releases):
            rule = _release_rule(raw, f"policy.releases[{i}]", problems)
            if rule is not None:
                releases.append(rule)
        breaker = _breaker(data.get("circuit_breaker"), problems)
        notify = _notify(data.get("notify"), problems)
        if problems:
            raise ParameterError(problems)
        return cls(tuple(releases), breaker, MappingProxyType(parameters), notify)

    def rule_for(self, release: str, namespace: str) -> ReleaseRule | None:
        return next((r for r in self.releases if r.matches(release, namespace)), None)


def _parameters(raw: object, where: str, problems: list[str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a mapping of rollback-notebook parameters")
        return {}
    found: dict[str, Any] = {}
    for name, value in raw.items():
        if name in _RECEIVER_SETS:
            problems.append(f"{where}.{name}: set by the receiver for each run, not the policy")
        elif name == "profile":
            problems.append(f"{where}.profile: a release's profile goes in its entry (profile:)")
        elif name not in _ROLLBACK_NAMES:
            problems.append(f"{where}.{name}: not a parameter of the rollback notebook")
        else:
            problems.extend(f"{where}.{name}: {p}" for p in _value_problems(name, value))
            found[name] = value
    return found


def _value_problems(name: str, value: object) -> list[str]:
    spec = field_named(name)
    try:
        return check_value(spec, parse(spec, value))
    except (ValueError, TypeError, OverflowError) as err:
        return [str(err)]


def _release_rule(raw: object, where: str, problems: list[str]) -> ReleaseRule | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a mapping with release, namespace, auto_rollback")
        return None
    before = len(problems)
    unknown = sorted(set(raw) - {"release", "namespace", "auto_rollback", "parameters", "profile"})
    problems += [f"{where}.{k}: unknown key" for k in unknown]
    release, namespace = raw.get("release"), raw.get("namespace", "*")
    for key, value in (("release", release), ("namespace", namespace)):
        if not isinstance(value, str) or not value:
            problems.append(f"{where}.{key}: expected a name or a glob such as 'shop-*'")
    auto = raw.get("auto_rollback", False)
    if not isinstance(auto, bool):
        problems.append(f"{where}.auto_rollback: expected true or false, got {auto!r}")
    parameters = _parameters(raw.get("parameters"), f"{where}.parameters", problems)
    profile = raw.get("profile", "")
    if not isinstance(profile, str) or "\n" in profile:
        problems.append(f"{where}.profile: expected the path of a service profile (YAML)")
    if len(problems) > before:
        return None
    return ReleaseRule(
        str(release), str(namespace), bool(auto), MappingProxyType(parameters), str(profile)
    )


def _breaker(raw: object, problems: list[str]) -> Breaker:
    if raw is None:
        return Breaker()
    if not isinstance(raw, Mapping):
        problems.append("policy.circuit_breaker: expected max_rollbacks and period")
        return Breaker()
    unknown = sorted(set(raw) - {"max_rollbacks", "period"})
    problems += [f"policy.circuit_breaker.{k}: unknown key" for k in unknown]
    count = raw.get("max_rollbacks", 2)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        problems.append(f"policy.circuit_breaker.max_rollbacks: expected a count, got {count!r}")
        count = 2
    period = 3600.0
    try:
        period = read_duration(raw.get("period", "1h"))
    except (ValueError, TypeError) as err:
        problems.append(f"policy.circuit_breaker.period: {err}")
    if period <= 0:
        problems.append("policy.circuit_breaker.period: must be longer than 0 s")
    return Breaker(count, float(period))


def _notify(raw: object, problems: list[str]) -> Mapping[str, Any]:
    if raw is None:
        return _EMPTY
    if not isinstance(raw, Mapping):
        problems.append("policy.notify: expected a mapping (slack_webhook_url, notify_file, ...)")
        return _EMPTY
    unknown = sorted(set(raw) - _NOTIFY_KEYS)
    problems += [
        f"policy.notify.{k}: unknown key ({', '.join(sorted(_NOTIFY_KEYS))})" for k in unknown
    ]
    for name in sorted(set(raw) & _NOTIFY_KEYS):
        problems.extend(f"policy.notify.{name}: {p}" for p in _value_problems(name, raw[name]))
    return MappingProxyType(dict(raw))


def breaker_state(breaker: Breaker, auto_rollbacks: Sequence[datetime], now: datetime) -> str:
    """Why the breaker is open ("" when closed): the automatic rollbacks of one release."""
    since = now - timedelta(seconds=breaker.period)
    recent = sorted(t for t in auto_rollbacks if since < t <= now)
    if len(recent) < breaker.max_rollbacks:
        return ""
    return (
        f"circuit breaker open: {len(recent)} automatic rollback(s) in the last "
        f"{breaker.period:g} s (limit {breaker.max_rollbacks}), the last at "
        f"{recent[-1].isoformat()}; a person decides from here"
    )


@dataclass(frozen=True)
class Plan:
    """What the receiver does for one release's alert, why, and the run's parameters."""

    action: Action
    reason: str
    parameters: Mapping[str, Any]


def plan_run(
    policy: Policy,
    release: str,
    namespace: str,
    *,
    auto_rollbacks: Sequence[datetime],
    now: datetime,
) -> Plan:
    """The action for an alert on ``release`` in ``namespace`` (see the module docstring)."""
    rule = policy.rule_for(release, namespace)
    base = {**policy.parameters, "release": release, "namespace": namespace}
    if rule is None:
        return Plan(
            Action.NOTIFY_ONLY,
            f"release {release} in namespace {namespace} is in no entry of the policy",
            MappingProxyType(base),
        )
    parameters = {**base, **rule.parameters}
    if rule.profile:
        parameters["profile"] = rule.profile
    if not rule.auto_rollback:
        return Plan(
            Action.ASSESS_AND_NOTIFY,
            f"the policy does not allow automatic rollback of {release} in {namespace}",
            MappingProxyType({**parameters, "dry_run": True}),
        )
    open_reason = breaker_state(policy.breaker, auto_rollbacks, now)
    if open_reason:
        return Plan(
            Action.ASSESS_AND_NOTIFY, open_reason, MappingProxyType({**parameters, "dry_run": True})
        )
    return Plan(
        Action.AUTO_ROLLBACK,
        f"the policy allows automatic rollback of {release} in {namespace}",
        MappingProxyType({**parameters, "confirm": True}),
    )


# `runbook run` accepts incident ids of up to 64 characters; a Kubernetes label value holds 63.
INCIDENT_ID_MAX = 63


def incident_id_for(release: str, namespace: str, alert_key: str, now: datetime) -> str:
    """The incident id of a run an alert starts: ``alert-<release>-<UTC time>-<hash>``.

    Unique for every valid release name (the hash covers namespace, release, the alert's key
    and the time to the microsecond; the release is only cut for reading) and at most 63
    characters, so it also fits a label value and a Job name.
    """
    return bounded_name(
        "alert-",
        f"{release[:24].rstrip('-.')}-{now:%Y%m%dT%H%M%SZ}",
        unique=f"{namespace}/{release}/{alert_key}/{now.isoformat()}",
        max_len=INCIDENT_ID_MAX,
    )


def rollback_command(parameters: Mapping[str, Any]) -> str:
    """The exact ``runbook run rollback`` a person runs to act on it (secrets left out)."""
    parts = ["runbook", "run", "rollback"]
    for name, value in parameters.items():
        if name in ("dry_run", "incident_id") or value in ("", None):
            continue
        shown = "<set it>" if SECRET_NAME.search(name) else str(value)
        parts += ["-p", name, shown]
    if "confirm" not in parameters:
        parts += ["-p", "confirm", "True"]
    return " ".join(shlex.quote(p) for p in parts)
