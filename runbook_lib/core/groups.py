"""The settings by concern: one frozen group each, every field declared once (pure).

``core.settings.Settings`` holds one of each; ``core.promql.Metrics`` is the group that says
where the service's series are. A field's name is its flat, public name (notebook parameter,
``--option``, profile key); its declaration (``core.kinds.setting``) says its kind, its default
as people write it, its unit, its help, the entry points that take it and the rules it follows.
Constructing a group checks every field and the group's rules across fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from runbook_lib.core import checks
from runbook_lib.core.kinds import DECIDE, Entry, Group, Kind, setting

__all__ = [
    "EVERY",
    "PROMETHEUS_STEP_S",
    "Acting",
    "Capture",
    "Lock",
    "Migrations",
    "Notify",
    "Records",
    "RecoveryCheck",
    "Rules",
    "Sources",
    "Target",
    "now_problem",
]

# The spacing of Prometheus samples (and of the rule files' evaluations) when ``step`` is empty.
PROMETHEUS_STEP_S = 15.0

_RUN = frozenset({Entry.ROLLBACK})
_RULES_TOO = frozenset({Entry.ROLLBACK, Entry.RULES})
EVERY = DECIDE | {Entry.RULES}
_D, _T = Kind.DURATION, Kind.TEXT


def now_problem(deployed_at: datetime | None, now: datetime | None) -> str | None:
    """``now`` before the deploy is a parameter error (DESIGN.md "Verdict")."""
    if deployed_at is not None and now is not None and now < deployed_at:
        return f"now: {now.isoformat()} is before deployed_at {deployed_at.isoformat()}"
    return None


@dataclass(frozen=True, kw_only=True)
class Sources(Group):
    replay_csv: str = setting(
        "",
        _T,
        "replay CSV instead of Prometheus (docs/REPLAY.md); empty: none",
        used_by=DECIDE,
        per_run=True,
        path=True,
    )
    prometheus_url: str = setting(
        "",
        _T,
        "Prometheus base URL, e.g. http://127.0.0.1:19090; empty: none",
        used_by=DECIDE,
        check=checks.http_url,
    )
    step: float | None = setting(
        "",
        Kind.OPTIONAL_DURATION,
        "sample spacing; empty: 15s for Prometheus, the median for a replay",
        used_by=EVERY,
        check=checks.step,
    )
    deployed_at: datetime | None = setting(
        "",
        Kind.INSTANT,
        "time of the deploy; empty: the newest non-rollback revision in helm history",
        used_by=DECIDE,
        per_run=True,
        required_by=frozenset({Entry.ASSESS, Entry.EVALUATE}),
        why_required="ISO 8601 with offset, or Unix seconds (no release to ask helm about)",
    )
    now: datetime | None = setting(
        "",
        Kind.INSTANT,
        "evaluate as of this time; empty: last replay sample, or the clock",
        used_by=DECIDE,
        per_run=True,
    )

    def cross_problems(self) -> list[str]:
        problem = now_problem(self.deployed_at, self.now)
        return [problem] if problem else []

    @property
    def prometheus_step(self) -> float:
        """The spacing of the samples asked of Prometheus: ``step``, else 15 s."""
        return self.step or PROMETHEUS_STEP_S


@dataclass(frozen=True, kw_only=True)
class Rules(Group):
    """The thresholds of "When to Rollback" (runbook defaults)."""

    error_ratio: float = setting(
        "1%", Kind.RATIO, "5xx ratio above which a sample breaches", used_by=EVERY
    )
    latency_p99: float = setting(
        "1s", _D, "p99 latency above which a sample breaches", used_by=EVERY
    )
    sustain: float = setting("2m", _D, "a breach must last longer than this to fire", used_by=EVERY)
    window: float = setting(
        "30m", _D, "only samples this long after the deploy count", used_by=DECIDE, positive=True
    )
    business_drop: float = setting(
        "10%", Kind.RATIO, "a business metric drop larger than this fires", used_by=EVERY
    )
    business_baseline: float = setting(
        "30m", _D, "baseline period before the deploy", used_by=EVERY, positive=True
    )
    business_smoothing: float = setting(
        "5m", _D, "trailing mean compared with the baseline", used_by=EVERY, positive=True
    )
    manual_reason: str = setting(
        "",
        _T,
        "on-call or incident commander's call; non-empty rolls back; empty: none",
        used_by=DECIDE,
        check=checks.reason,
        per_run=True,
        shown_as="REASON",
    )
    on_inconclusive: str = setting(
        "stop",
        Kind.CHOICE,
        "headless, when the data cannot be judged: stop, or rollback",
        used_by=_RUN,
        choices=("stop", "rollback"),
    )

    def cross_problems(self) -> list[str]:
        if self.window <= self.sustain:
            return [
                f"sustain: {self.sustain:g} s is not shorter than window ({self.window:g} s); "
                "no run inside the window could last longer, so the rule could never fire"
            ]
        return []


@dataclass(frozen=True, kw_only=True)
class Target(Group):
    """What to roll back, and where (the run refuses any other cluster)."""

    release: str = setting(
        "app",
        _T,
        "Helm release name",
        used_by=_RULES_TOO,
        check=checks.release_name,
        shown_as="NAME",
    )
    namespace: str = setting(
        "default",
        _T,
        "namespace of the release",
        used_by=_RULES_TOO,
        check=checks.namespace_name,
        shown_as="NAME",
    )
    deployment: str = setting(
        "app",
        _T,
        "Deployment the release runs",
        used_by=_RUN,
        check=checks.deployment_name,
        shown_as="NAME",
    )
    pod_selector: str = setting(
        "",
        _T,
        "pods to verify; empty: the Deployment's own selector",
        used_by=_RUN,
        check=checks.optional_label_selector,
    )
    expected_cluster: str = setting(
        "",
        _T,
        "kube context name or API server URL to act on (required)",
        used_by=_RUN,
        one_line=True,
        required_by=_RUN,
        why_required="a guard against rolling back the wrong cluster",
    )
    kubeconfig: str = setting(
        "",
        _T,
        "kubeconfig path; empty: $KUBECONFIG or ~/.kube/config",
        used_by=_RUN,
        one_line=True,
        path=True,
    )
    context: str = setting(
        "", _T, "kube context; empty: the kubeconfig's current context", used_by=_RUN, one_line=True
    )
    helm_binary: str = setting("helm", _T, "helm executable (Helm 3 or 4)", used_by=_RUN)
    helm_timeout: float = setting(
        "2m", _D, "how long one helm command may take", used_by=_RUN, positive=True
    )


@dataclass(frozen=True, kw_only=True)
class Acting(Group):
    dry_run: bool = setting(
        "False", Kind.FLAG, "rehearse: read everything, change nothing", used_by=_RUN, per_run=True
    )
    confirm: bool = setting(
        "False",
        Kind.FLAG,
        "headless go-ahead; by hand you are asked instead",
        used_by=_RUN,
        per_run=True,
    )
    rollout_timeout: float = setting(
        "5m",
        _D,
        "how long to wait for the rollout (Rollback Steps, step 2)",
        used_by=_RUN,
        positive=True,
    )
    verify_settle: float = setting(
        "15s", _D, "how long old pods may take to go (step 3)", used_by=_RUN
    )
    target: float = setting(
        "5m", _D, "decision to verified recovery target", used_by=_RUN, positive=True
    )

    @property
    def mode(self) -> str:
        return "dry run" if self.dry_run else "live"


@dataclass(frozen=True, kw_only=True)
class RecoveryCheck(Group):
    """Rollback Steps, step 4: "Check error rate"."""

    recovery_error_ratio: float = setting(
        "0.1%", Kind.RATIO, "the 5xx ratio must fall below this ...", used_by=_RUN
    )
    recovery_within: float = setting(
        "2m", _D, "... within this long after the rollout ...", used_by=_RUN
    )
    recovery_consecutive: int = setting(
        "2",
        Kind.COUNT,
        "... for this many consecutive samples",
        used_by=_RUN,
        check=checks.at_least_one,
    )
    recovery_poll: float = setting(
        "5s", _D, "how often recovery is polled", used_by=_RUN, positive=True
    )


@dataclass(frozen=True, kw_only=True)
class Notify(Group):
    slack_webhook_url: str = setting(
        "",
        _T,
        "Slack incoming webhook (secret: redacted everywhere)",
        used_by=_RUN,
        check=checks.secret_http_url,
        secret=True,
    )
    notify_file: str = setting(
        "", _T, "also append notifications to this file", used_by=_RUN, one_line=True, path=True
    )
    console: bool = setting("True", Kind.FLAG, "also print notifications", used_by=_RUN)
    notify_timeout: float = setting(
        "5s", _D, "how long a notification may take", used_by=_RUN, positive=True
    )


@dataclass(frozen=True, kw_only=True)
class Migrations(Group):
    migrations_to_revert: int = setting(
        "0", Kind.COUNT, "migrations to revert with migrate down; 0: none", used_by=_RUN
    )
    migrate_command: str = setting(
        "./migrate down {n}",
        _T,
        "command run in the migrator pod",
        used_by=_RUN,
        check=checks.migrate_command,
    )
    migrate_version_command: str = setting(
        "./migrate version", _T, "prints the schema version", used_by=_RUN
    )
    migrator_selector: str = setting(
        "app in (migrator)",
        _T,
        "label selector of the migrator pod",
        used_by=_RUN,
        check=checks.label_selector,
    )
    migrate_timeout: float = setting(
        "2m", _D, "how long the migration may take", used_by=_RUN, positive=True
    )


@dataclass(frozen=True, kw_only=True)
class Lock(Group):
    """The lock that keeps two rollbacks of one release apart."""

    lock_ttl: float = setting(
        "1m",
        _D,
        "the run renews its lock; one it stops renewing frees after this",
        used_by=_RUN,
        positive=True,
    )
    lock_release_grace: float = setting(
        "15s", _D, "after a failure, how long to retry giving the lock back", used_by=_RUN
    )
    lock_holder: str = setting(
        "",
        _T,
        "who holds the lock; empty: <incident_id>@<user>.<host>",
        used_by=_RUN,
        one_line=True,
        per_run=True,
    )
    lock_takeover_reason: str = setting(
        "",
        _T,
        "take over a held lock, for this recorded reason; empty: never",
        used_by=_RUN,
        one_line=True,
        per_run=True,
    )


@dataclass(frozen=True, kw_only=True)
class Records(Group):
    """Post-Rollback Actions: records and follow-up."""

    incident_id: str = setting(
        "",
        _T,
        "empty: rollback-<release>-<UTC time>",
        used_by=_RUN,
        check=checks.incident_id,
        per_run=True,
    )
    output_dir: str = setting(
        "evidence",
        _T,
        "evidence goes to <output_dir>/<incident_id>/",
        used_by=_RUN,
        one_line=True,
        path=True,
        required_by=_RUN,
        why_required="the folder that receives the evidence",
    )
    root_cause_hypothesis: str = setting(
        "", _T, "first guess at the cause, for the incident record", used_by=_RUN, per_run=True
    )
    request_rate_rps: float = setting(
        "0",
        Kind.NUMBER,
        "requests per second, to estimate failed requests",
        used_by=_RUN,
        unit="requests/s",
    )
    fix_forward_repo: str = setting(
        "",
        _T,
        "git repository for the fix/<incident_id> branch; empty: skip",
        used_by=_RUN,
        one_line=True,
        path=True,
    )
    postmortem_organizer: str = setting(
        "", _T, "e-mail address of the post-mortem organiser", used_by=_RUN, check=checks.e_mail
    )
    signing_key: str = setting(
        "",
        _T,
        "SSH key signing the manifest; empty: $RUNBOOK_SIGNING_KEY or none",
        used_by=_RUN,
        one_line=True,
        path=True,
    )
    without_evidence: bool = setting(
        "False", Kind.FLAG, "headless: act even if evidence cannot be written", used_by=_RUN
    )

    @property
    def manifest_key(self) -> str | None:
        """``write_manifest``'s ``signing_key``: the setting, else None (the environment)."""
        return self.signing_key or None


@dataclass(frozen=True, kw_only=True)
class Capture(Group):
    """Evidence of the bad release: its pods' logs before the rollback, and its traces."""

    capture_per_pod: int = setting(
        "1MiB",
        Kind.SIZE,
        "bad pods' logs kept before the rollback, per pod",
        used_by=_RUN,
        check=checks.at_least_1kib,
    )
    capture_total: int = setting(
        "20MiB", Kind.SIZE, "... and in all (B, KiB, MiB, GiB)", used_by=_RUN
    )
    tracing_url: str = setting(
        "",
        _T,
        "Jaeger query URL, e.g. http://127.0.0.1:16686; empty: no traces",
        used_by=_RUN,
        check=checks.http_url,
    )
    tracing_service: str = setting(
        "", _T, "service name in the traces; empty: the release name", used_by=_RUN, one_line=True
    )

    def cross_problems(self) -> list[str]:
        if self.capture_total < self.capture_per_pod:
            return [
                f"capture_total: at least capture_per_pod ({self.capture_per_pod} B), got "
                f"{self.capture_total} B"
            ]
        return []
