"""The rollback runbook's parameters: one frozen value, validated all at once.

Every threshold, duration and name has the runbook's value as its default; units are in the
field names (``_s`` seconds). ``validate_params`` collects every problem before raising, so an
engineer fixes the parameters cell once instead of once per typo.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from runbook_lib.core.thresholds import Thresholds
from runbook_lib.errors import ParameterError

__all__ = ["RunParams", "build_params", "parse_time"]

# Kubernetes object names (RFC 1123 subdomain/label); Helm release names follow the same rule
# with a 53-character limit.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_INCIDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class RunParams:
    """Everything a rollback run needs. Defaults are the runbook's; units are in the names."""

    # What to roll back.
    release: str = "app"
    namespace: str = "default"
    deployment: str = "app"
    pod_selector: str = "app=api"
    # Safety: the kube context name or API server URL the run must be pointed at.
    expected_cluster: str = ""
    kubeconfig: str | None = None
    context: str | None = None
    helm_binary: str = "helm"
    helm_timeout_s: float = 120.0
    # Where samples come from: a Prometheus server or a replay CSV (exactly one).
    prometheus_url: str | None = None
    prometheus_selector: str = ""  # PromQL label matchers, e.g. 'job="api"'
    prometheus_rate_window: str = "1m"  # PromQL duration: at least four scrape intervals
    business_counters: Mapping[str, str] = field(default_factory=dict)  # name -> counter
    replay_csv: str | None = None
    metrics_step_s: float = 15.0
    thresholds: Thresholds = field(default_factory=Thresholds)
    deployed_at: datetime | None = None  # None: the current revision's time in helm history
    now: datetime | None = None  # evaluate "as of" this time (replays); None: the clock
    manual_reason: str | None = None  # the on-call engineer's call, recorded verbatim
    # How to act.
    dry_run: bool = False
    confirm: bool = False
    # Notification (Rollback Steps, step 1).
    slack_webhook_url: str | None = None  # secret: never logged
    notify_file: str | None = None
    console: bool = True
    notify_timeout_s: float = 5.0
    # Rollout and recovery (steps 2-4).
    rollout_timeout_s: float = 300.0
    verify_settle_s: float = 15.0  # old pods may still be terminating right after the rollout
    recovery_poll_s: float = 5.0
    recovery_step_s: float = 15.0
    target_s: float = 300.0  # the runbook's "under 5 minutes from decision"
    # Migrations (step 5).
    migrations_to_revert: int = 0  # 0: leave the schema alone
    migrate_command: str = "./migrate down {n}"
    migrate_version_command: str = "./migrate version"
    migrator_selector: str = "app=migrator"
    migrate_timeout_s: float = 120.0
    # Lock and records.
    lock_ttl_s: float = 900.0
    lock_release_grace_s: float = 15.0  # after a failure, how long to retry giving the lock back
    lock_holder: str = ""  # default: <incident_id>@<host>
    incident_id: str = ""  # default: rollback-<release>-<UTC time>
    output_dir: str = "evidence"

    @property
    def mode(self) -> str:
        return "dry run" if self.dry_run else "live"


def parse_time(value: object, name: str, problems: list[str]) -> datetime | None:
    """A timezone-aware datetime from a datetime or ISO 8601 text; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            problems.append(f"{name}: expected ISO 8601 time with offset, got {value!r}")
            return None
    else:
        problems.append(f"{name}: expected a datetime or ISO 8601 text, got {type(value).__name__}")
        return None
    if parsed.tzinfo is None:
        problems.append(f"{name}: time {value!s} has no UTC offset (write e.g. +00:00)")
        return None
    return parsed


def _check_selector(name: str, value: object, problems: list[str]) -> None:
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{name}: expected a label selector like 'app=api', got {value!r}")
        return
    for term in value.split(","):
        key, sep, val = term.strip().partition("=")
        val = val.lstrip("=")  # "==" is also accepted by Kubernetes
        if not sep or not _LABEL_NAME.match(key.strip()) or not _LABEL_VALUE.match(val.strip()):
            problems.append(
                f"{name}: {term.strip()!r} is not a 'key=value' label term (label syntax: "
                "alphanumerics, '-', '_', '.', at most 63 characters)"
            )
        elif len(val.strip()) > 63 or len(key.strip().rpartition("/")[2]) > 63:
            problems.append(f"{name}: {term.strip()!r}: label names and values are ≤ 63 characters")


def _check_positive(name: str, value: object, problems: list[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        problems.append(f"{name}: expected a positive number of seconds, got {value!r}")


def _check_names(raw: Mapping[str, Any], problems: list[str]) -> None:
    release = raw["release"]
    if not isinstance(release, str) or not _DNS_LABEL.match(release) or len(release) > 53:
        problems.append(
            f"release: expected a Helm release name (lowercase DNS-1123 label, ≤ 53 "
            f"characters), got {release!r}"
        )
    namespace = raw["namespace"]
    if not isinstance(namespace, str) or not _DNS_LABEL.match(namespace) or len(namespace) > 63:
        problems.append(
            f"namespace: expected a DNS-1123 label (lowercase, digits, '-', ≤ 63), "
            f"got {namespace!r}"
        )
    deployment = raw["deployment"]
    if (
        not isinstance(deployment, str)
        or not _DNS_SUBDOMAIN.match(deployment)
        or len(deployment) > 253
    ):
        problems.append(f"deployment: expected a DNS-1123 object name, got {deployment!r}")
    _check_selector("pod_selector", raw["pod_selector"], problems)
    _check_selector("migrator_selector", raw["migrator_selector"], problems)
    if not isinstance(raw["expected_cluster"], str) or not raw["expected_cluster"].strip():
        problems.append(
            "expected_cluster: required: the kube context name or API server URL this run "
            "must act on (a guard against rolling back the wrong cluster)"
        )
    incident = raw["incident_id"]
    if incident and (not isinstance(incident, str) or not _INCIDENT_ID.match(incident)):
        problems.append(
            f"incident_id: expected letters, digits, '.', '_' or '-' (≤ 64), got {incident!r}"
        )


def _check_sources(raw: Mapping[str, Any], problems: list[str]) -> None:
    prom, replay = raw["prometheus_url"], raw["replay_csv"]
    if prom and replay:
        problems.append("prometheus_url / replay_csv: give exactly one metrics source, not both")
    if not prom and not replay:
        problems.append("prometheus_url / replay_csv: give one metrics source (neither was given)")
    if prom and not re.match(r"^https?://[^\s/]+", str(prom)):
        problems.append(f"prometheus_url: expected http(s)://host:port, got {prom!r}")
    if prom:
        from runbook_lib.core.promql import QuerySpec

        try:
            QuerySpec(
                selector=raw["prometheus_selector"],
                rate_window=raw["prometheus_rate_window"],
                business_counters=raw["business_counters"],
            )
        except ParameterError as err:
            problems.extend(f"prometheus_{p}" for p in err.problems)
        except TypeError as err:
            problems.append(f"prometheus_selector/rate_window/business_counters: {err}")
    hook = raw["slack_webhook_url"]
    if hook and not re.match(r"^https?://[^\s/]+", str(hook)):
        # The value is a secret: name the problem, never echo it.
        problems.append("slack_webhook_url: expected an http(s) URL (value not shown: secret)")


def _check_migrations(raw: Mapping[str, Any], problems: list[str]) -> None:
    count = raw["migrations_to_revert"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        problems.append(f"migrations_to_revert: expected an integer ≥ 0, got {count!r}")
    command = raw["migrate_command"]
    if not isinstance(command, str) or not command.strip():
        problems.append("migrate_command: expected a command such as './migrate down {n}'")
    else:
        try:
            command.format(n=1)
        except (KeyError, IndexError, ValueError):
            problems.append(
                f"migrate_command: only the placeholder {{n}} is allowed, got {command!r}"
            )


def _coerce_thresholds(value: object, problems: list[str]) -> Thresholds:
    if value is None:
        return Thresholds()
    if isinstance(value, Thresholds):
        return value
    if isinstance(value, Mapping):
        try:
            return Thresholds(**dict(value))
        except ParameterError as err:
            problems.extend(f"thresholds.{p}" for p in err.problems)
        except TypeError as err:
            problems.append(f"thresholds: {err}")
        return Thresholds()
    problems.append(f"thresholds: expected Thresholds or a mapping, got {type(value).__name__}")
    return Thresholds()


def build_params(raw_params: Mapping[str, Any]) -> RunParams:
    """Validate every parameter and build ``RunParams`` (the "validate" cell of the notebook).

    Raises ``ParameterError`` listing every problem ("name: what was expected").
    """
    known = {f.name for f in fields(RunParams)}
    problems = [
        f"{name}: unknown parameter (known: see RunParams)"
        for name in sorted(raw_params)
        if name not in known
    ]
    defaults = RunParams()
    raw = {f.name: raw_params.get(f.name, getattr(defaults, f.name)) for f in fields(RunParams)}
    _check_names(raw, problems)
    _check_sources(raw, problems)
    _check_migrations(raw, problems)
    for name in (
        "helm_timeout_s", "metrics_step_s", "notify_timeout_s", "rollout_timeout_s",
        "verify_settle_s", "recovery_poll_s", "recovery_step_s", "target_s",
        "migrate_timeout_s", "lock_ttl_s", "lock_release_grace_s",
    ):  # fmt: skip
        _check_positive(name, raw[name], problems)
    raw["thresholds"] = _coerce_thresholds(raw["thresholds"], problems)
    raw["deployed_at"] = parse_time(raw["deployed_at"], "deployed_at", problems)
    raw["now"] = parse_time(raw["now"], "now", problems)
    reason = raw["manual_reason"]
    if reason is not None and (not isinstance(reason, str) or not reason.strip()):
        problems.append("manual_reason: a manual rollback needs a non-empty reason")
    for name in ("dry_run", "confirm", "console"):
        if not isinstance(raw[name], bool):
            problems.append(f"{name}: expected True or False, got {raw[name]!r}")
    if problems:
        raise ParameterError(problems)
    return RunParams(**raw)
