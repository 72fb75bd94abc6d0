"""``RunParams``: the notebooks' parameters as one validated value, with the same names.

Every field is a parameter of ``runbook_lib.core.parameters.PARAMETERS`` (a test keeps the two
in step) holding the parsed value: durations in seconds, ratios as fractions, instants tz-aware,
optional text as ``""``. ``build_params`` checks every parameter at once, the post-rollback
ones included, so an engineer fixes the parameters cell once, before anything is changed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from runbook_lib.core import parameters as table
from runbook_lib.core.promql import QuerySpec
from runbook_lib.core.thresholds import Thresholds
from runbook_lib.errors import ParameterError

__all__ = [
    "RunParams",
    "build_params",
    "business_counters",
    "check_decision_params",
    "check_paths",
    "parse_leniently",
]

# Kubernetes object names (RFC 1123); Helm release names follow the same rule, <= 53 characters.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_INCIDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_EMAIL = re.compile(r"[^@\s<>\"',;:]+@[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?")
_URL = re.compile(r"https?://[^\s/]+\S*")


@dataclass(frozen=True)
class RunParams:
    """Every parameter of a rollback run, parsed. Names and meanings: ``core.parameters``."""

    replay_csv: str = ""
    prometheus_url: str = ""
    prometheus_selector: str = ""
    prometheus_rate_window: str = "1m"
    business_counters: str = ""
    step: float | None = None  # seconds
    deployed_at: datetime | None = None
    now: datetime | None = None
    error_ratio: float = 0.01
    latency_p99: float = 1.0  # seconds
    sustain: float = 120.0  # seconds
    window: float = 1800.0  # seconds
    business_drop: float = 0.10
    business_baseline: float = 1800.0  # seconds
    business_smoothing: float = 300.0  # seconds
    manual_reason: str = ""
    on_inconclusive: str = "stop"
    release: str = "app"
    namespace: str = "default"
    deployment: str = "app"
    pod_selector: str = ""  # empty: the Deployment's own selector (RunContext.pod_selector)
    expected_cluster: str = ""
    kubeconfig: str = ""
    context: str = ""
    helm_binary: str = "helm"
    helm_timeout: float = 120.0  # seconds
    dry_run: bool = False
    confirm: bool = False
    rollout_timeout: float = 300.0  # seconds
    verify_settle: float = 15.0  # seconds
    target: float = 300.0  # seconds
    recovery_error_ratio: float = 0.001
    recovery_within: float = 120.0  # seconds
    recovery_consecutive: int = 2
    recovery_poll: float = 5.0  # seconds
    slack_webhook_url: str = ""  # secret: never shown
    notify_file: str = ""
    console: bool = True
    notify_timeout: float = 5.0  # seconds
    migrations_to_revert: int = 0
    migrate_command: str = "./migrate down {n}"
    migrate_version_command: str = "./migrate version"
    migrator_selector: str = "app in (migrator)"
    migrate_timeout: float = 120.0  # seconds
    lock_ttl: float = 60.0  # seconds
    lock_release_grace: float = 15.0  # seconds
    lock_holder: str = ""
    lock_takeover_reason: str = ""  # non-empty: take over a live lock, recorded
    incident_id: str = ""
    output_dir: str = "evidence"
    root_cause_hypothesis: str = ""
    request_rate_rps: float = 0.0
    fix_forward_repo: str = ""
    postmortem_organizer: str = ""
    signing_key: str = ""  # empty: RUNBOOK_SIGNING_KEY, else unsigned
    without_evidence: bool = False
    capture_per_pod: int = 1024 * 1024  # bytes
    capture_total: int = 20 * 1024 * 1024  # bytes
    tracing_url: str = ""  # empty: traces not collected
    tracing_service: str = ""  # empty: the release name

    @property
    def manifest_key(self) -> str | None:
        """``write_manifest``'s ``signing_key``: the parameter, else None (the environment)."""
        return self.signing_key or None

    @property
    def mode(self) -> str:
        return "dry run" if self.dry_run else "live"

    @cached_property
    def thresholds(self) -> Thresholds:
        """The decision's and the recovery check's numbers, as the core takes them."""
        return _thresholds(self.__dict__)

    @property
    def business_counter_map(self) -> Mapping[str, str]:
        """``business_counters`` as name -> Prometheus counter."""
        return business_counters(self.business_counters, [])

    def shown(self) -> dict[str, Any]:
        """The parameters as plain values for the timeline (the webhook URL never shown)."""
        values: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "slack_webhook_url" and value:
                value = "[REDACTED]"
            values[f.name] = value.isoformat() if isinstance(value, datetime) else value
        return values


def business_counters(text: str, problems: list[str]) -> Mapping[str, str]:
    """``"orders=orders_total,logins=logins_total"`` as a mapping; problems named, not raised."""
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, counter = item.partition("=")
        if not sep or not name.strip() or not counter.strip():
            problems.append(f"business_counters: expected NAME=COUNTER, got {item!r}")
        else:
            pairs[name.strip()] = counter.strip()
    return MappingProxyType(pairs)


def _thresholds(values: Mapping[str, Any]) -> Thresholds:
    names = {f.name for f in fields(Thresholds)}
    return Thresholds(**{name: values[name] for name in names if name in values})


def check_decision_params(values: Mapping[str, Any], problems: list[str]) -> None:
    """The "When to Rollback" parameters' checks shared by every entry point."""
    prom, replay = values["prometheus_url"], values["replay_csv"]
    if prom and replay:
        problems.append("prometheus_url / replay_csv: give exactly one metrics source, not both")
    if not prom and not replay:
        problems.append("prometheus_url / replay_csv: give one metrics source (neither was given)")
    if prom and not _URL.fullmatch(prom):
        problems.append(f"prometheus_url: expected http(s)://host:port, got {prom!r}")
    counters = business_counters(values["business_counters"], problems)
    try:
        QuerySpec(
            selector=values["prometheus_selector"],
            rate_window=values["prometheus_rate_window"],
            business_counters=counters,
        )
    except ParameterError as err:
        problems.extend(
            p if p.startswith("business_counters") else f"prometheus_{p}" for p in err.problems
        )
    if values["manual_reason"] and not values["manual_reason"].strip():
        problems.append("manual_reason: give the reason for the manual call (it is recorded)")
    deployed_at, now = values["deployed_at"], values["now"]
    if deployed_at is not None and now is not None and now < deployed_at:
        problems.append(f"now: {now.isoformat()} is before deployed_at {deployed_at.isoformat()}")
    try:
        _thresholds(values)
    except ParameterError as err:
        problems.extend(err.problems)


# A set-based term, ``key in (a, b)`` or ``key notin (a)``: Kubernetes' other selector syntax.
_SET_TERM = re.compile(r"(?P<key>\S+)\s+(?:in|notin)\s+\((?P<values>[^()]*)\)")


def _check_selector(name: str, value: str, problems: list[str]) -> None:
    if not value.strip():
        problems.append(f"{name}: expected a label selector like app=api, got {value!r}")
        return
    for term in re.split(r",(?![^()]*\))", value):
        found = _SET_TERM.fullmatch(term.strip())
        if found is not None:
            values = [v.strip() for v in found["values"].split(",")]
            if not _LABEL_NAME.fullmatch(found["key"]) or not all(
                v and _LABEL_VALUE.fullmatch(v) for v in values
            ):
                problems.append(f"{name}: {term.strip()!r} is not a valid 'key in (values)' term")
            continue
        key, sep, val = term.strip().partition("=")
        val = val.removeprefix("=")  # "==" is Kubernetes' other spelling
        if not sep or not _LABEL_NAME.fullmatch(key) or not _LABEL_VALUE.fullmatch(val):
            problems.append(
                f"{name}: {term.strip()!r} is not a key=value label term (alphanumerics, "
                "'-', '_', '.')"
            )
        elif len(val) > 63 or len(key.rpartition("/")[2]) > 63:
            problems.append(
                f"{name}: {term.strip()!r}: label names and values are <= 63 characters"
            )


def _check_names(values: Mapping[str, Any], problems: list[str]) -> None:
    release = values["release"]
    if not _DNS_LABEL.fullmatch(release) or len(release) > 53:
        problems.append(
            f"release: expected a Helm release name (lowercase DNS-1123 label, <= 53 "
            f"characters), got {release!r}"
        )
    namespace = values["namespace"]
    if not _DNS_LABEL.fullmatch(namespace) or len(namespace) > 63:
        problems.append(
            f"namespace: expected a DNS-1123 label (lowercase, digits, '-', <= 63), "
            f"got {namespace!r}"
        )
    deployment = values["deployment"]
    if not _DNS_SUBDOMAIN.fullmatch(deployment) or len(deployment) > 253:
        problems.append(f"deployment: expected a DNS-1123 object name, got {deployment!r}")
    if values["pod_selector"]:
        _check_selector("pod_selector", values["pod_selector"], problems)
    _check_selector("migrator_selector", values["migrator_selector"], problems)
    if not values["expected_cluster"].strip():
        problems.append(
            "expected_cluster: required: the kube context name or API server URL this run "
            "must act on (a guard against rolling back the wrong cluster)"
        )
    incident = values["incident_id"]
    if incident and not _INCIDENT_ID.fullmatch(incident):
        problems.append(
            f"incident_id: expected letters, digits, '.', '_' or '-' (<= 64), got {incident!r}"
        )


def _check_actions(values: Mapping[str, Any], problems: list[str]) -> None:
    hook = values["slack_webhook_url"]
    if hook and not _URL.fullmatch(hook):
        # The value is a secret: name the problem, never echo it.
        problems.append("slack_webhook_url: expected an http(s) URL (value not shown: secret)")
    command = values["migrate_command"]
    if not command.strip():
        problems.append("migrate_command: expected a command such as './migrate down {n}'")
    else:
        try:
            command.format(n=1)
        except (KeyError, IndexError, ValueError):
            problems.append(
                f"migrate_command: only the placeholder {{n}} is allowed, got {command!r}"
            )
    organizer = values["postmortem_organizer"]
    if organizer and not _EMAIL.fullmatch(organizer):
        problems.append(
            f"postmortem_organizer: expected one e-mail address such as oncall@example.com, "
            f"got {organizer!r}"
        )
    for name in (
        "root_cause_hypothesis", "fix_forward_repo", "output_dir", "lock_holder",
        "lock_takeover_reason",
    ):  # fmt: skip
        if any(ch in values[name] for ch in "\r\x00"):
            problems.append(f"{name}: must not contain carriage returns or NUL characters")
    for name in (
        "fix_forward_repo", "output_dir", "lock_holder", "kubeconfig", "notify_file", "signing_key",
        "lock_takeover_reason",
    ):  # fmt: skip
        if "\n" in values[name]:
            problems.append(f"{name}: must be one line")
    if not values["output_dir"].strip():
        problems.append("output_dir: required: the folder that receives the evidence")
    for name in (
        "helm_timeout", "rollout_timeout", "target", "recovery_poll", "notify_timeout",
        "migrate_timeout", "lock_ttl",
    ):  # fmt: skip
        if values[name] <= 0:
            problems.append(f"{name}: must be longer than 0 s")
    if values["recovery_consecutive"] < 1:
        problems.append("recovery_consecutive: must be at least 1")
    _check_evidence_bounds(values, problems)


def _check_evidence_bounds(values: Mapping[str, Any], problems: list[str]) -> None:
    """The capture bounds (``core.capture.CaptureBounds``) and the tracing backend's URL."""
    per_pod, total = values["capture_per_pod"], values["capture_total"]
    if per_pod < 1024:
        problems.append(f"capture_per_pod: at least 1KiB (a few log lines), got {per_pod} B")
    if total < per_pod:
        problems.append(f"capture_total: at least capture_per_pod ({per_pod} B), got {total} B")
    url = values["tracing_url"]
    if url and not _URL.fullmatch(url.strip()):
        problems.append(
            f"tracing_url: expected http(s)://host:port (Jaeger's query API), got {url!r}"
        )
    if "\n" in values["tracing_service"]:
        problems.append("tracing_service: must be one line")


def build_params(raw: Mapping[str, Any]) -> RunParams:
    """Validate every parameter of a rollback run and build ``RunParams``.

    ``raw`` holds the notebook's parameters by name (text or typed values). Raises
    ``ParameterError`` listing every problem ("name: what was wrong") at once.
    """
    problems: list[str] = []
    try:
        values = table.parse(raw, used_by=table.ROLLBACK)
    except ParameterError as err:
        # Parse what can be parsed, so the remaining checks still report their problems.
        problems.extend(err.problems)
        values = parse_leniently(raw, table.ROLLBACK)
    check_decision_params(values, problems)
    _check_names(values, problems)
    _check_actions(values, problems)
    if problems:
        raise ParameterError(sorted(set(problems), key=problems.index))
    return RunParams(**values)


def parse_leniently(raw: Mapping[str, Any], used_by: str) -> dict[str, Any]:
    """Every parameter of ``used_by`` parsed, its default where the given value is bad.

    For checks that run after ``table.parse`` failed, so every problem is reported at once.
    """
    values: dict[str, Any] = {}
    for parameter in table.PARAMETERS:
        if used_by not in parameter.used_by:
            continue
        try:
            values[parameter.name] = table.parse_value(
                parameter, raw.get(parameter.name, parameter.default)
            )
        except (ValueError, TypeError, OverflowError):
            values[parameter.name] = table.parse_value(parameter, parameter.default)
    return values


def check_paths(params: RunParams) -> None:
    """The parameters that name files: a replay must exist, the evidence folder be a folder.

    Raises ``ParameterError`` listing each problem.
    """
    problems: list[str] = []
    if params.replay_csv and not Path(params.replay_csv).is_file():
        problems.append(f"replay_csv: no such file: {params.replay_csv} (cwd {Path.cwd()})")
    out = Path(params.output_dir)
    # The nearest existing folder on the way must be a folder (not a file): checked up the tree.
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                problems.append(f"output_dir: {folder} exists and is not a folder")
            break
    if params.kubeconfig and not Path(params.kubeconfig).is_file():
        problems.append(f"kubeconfig: no such file: {params.kubeconfig}")
    if problems:
        raise ParameterError(problems)
