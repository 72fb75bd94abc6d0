"""The plan ``preflight`` shows before anything changes: commands, cluster, revisions.

Built from values only (no I/O), so what an engineer reads is exactly what the steps will do.
"""

from __future__ import annotations

from dataclasses import dataclass

from runbook_lib.core import readable
from runbook_lib.core.revisions import RollbackTarget
from runbook_lib.core.settings import Settings

__all__ = ["Plan", "build_plan", "rollout_message"]


@dataclass(frozen=True)
class Plan:
    """What the run will do, in order, against which cluster."""

    cluster: str
    server: str
    release: str
    namespace: str
    current: str
    target: str
    already_rolled_back: bool
    expected_images: tuple[str, ...]
    actions: tuple[str, ...]
    dry_run: bool
    cut_off: bool = False  # the current revision is a rollback to the target left pending

    def render(self) -> str:
        head = [
            f"Plan{' (DRY RUN: nothing will change)' if self.dry_run else ''}",
            f"  cluster:  {self.cluster} ({self.server})",
            f"  release:  {self.release} in namespace {self.namespace}",
            f"  current:  revision {self.current}",
            f"  target:   revision {self.target}",
            f"  images:   {', '.join(self.expected_images) or '(none found in manifest)'}",
        ]
        if self.already_rolled_back:
            head.append("  note:     the release already runs the target; helm rollback is skipped")
        if self.cut_off:
            head.append(
                "  note:     the current revision is a rollback to the target that Helm never "
                "marked deployed (its helm was cut off); rolling back again finishes it"
            )
        steps = [f"  {i}. {action}" for i, action in enumerate(self.actions, start=1)]
        return "\n".join([*head, "  steps:", *steps])

    def __repr__(self) -> str:
        return self.render()


def rollout_message(settings: Settings, target: RollbackTarget) -> str:
    """The notification text of Rollback Steps, step 1.

    The bad release is the deploy being undone as ``helm history`` shows it, never a rollback
    revision (after an earlier rollback the current revision runs the good version).
    """
    bad_release = target.bad_release
    bad = bad_release.app_version or bad_release.chart
    good = target.target.app_version or target.target.chart
    return (
        f"Rolling back {settings.target.release} from {bad} to {good} "
        f"(revision {bad_release.number} -> {target.target.number}, "
        f"incident {settings.records.incident_id})"
    )


def build_plan(
    settings: Settings,
    *,
    cluster: str,
    server: str,
    target: RollbackTarget,
    expected_images: tuple[str, ...],
    notifiers: tuple[str, ...],
    rollback_command: str,
    pod_selector: str,
) -> Plan:
    """The ordered actions of this run, for people to read before confirming."""
    release, namespace = settings.target.release, settings.target.namespace
    lock, check, migrations = settings.lock, settings.recovery, settings.migrations
    actions = [
        f"take Lease runbook-rollback-{release} in {namespace} as {lock.lock_holder} "
        f"(ttl {readable.duration(lock.lock_ttl)})",
        f"notify ({', '.join(notifiers) or 'no notifier'}): {rollout_message(settings, target)!r}",
    ]
    if target.already_rolled_back:
        actions.append(f"helm rollback: none (already on revision {target.target.number})")
    else:
        actions.append(rollback_command)
    actions += [
        f"wait for deployment/{settings.target.deployment} to roll out (kubectl rollout status "
        "semantics, "
        f"timeout {readable.duration(settings.acting.rollout_timeout)})",
        f"verify pods {pod_selector} run exactly: {', '.join(expected_images)}",
        f"check 5xx ratio < {readable.percent(check.recovery_error_ratio)} within "
        f"{readable.duration(check.recovery_within)} for {check.recovery_consecutive} "
        "consecutive samples",
    ]
    if migrations.migrations_to_revert:
        count = migrations.migrations_to_revert
        command = migrations.migrate_command.format(n=count)
        actions.append(
            f"kubectl exec <pod {migrations.migrator_selector}> -- {command} "
            f"(then check `{migrations.migrate_version_command}` moved down by {count})"
        )
    else:
        actions.append("migrations: none (migrations_to_revert=0)")
    actions.append(
        "release the Lease; time decision -> verified recovery against "
        f"{readable.duration(settings.acting.target)}"
    )
    return Plan(
        cluster=cluster,
        server=server,
        release=settings.target.release,
        namespace=settings.target.namespace,
        current=target.current.label(),
        target=target.target.label(),
        already_rolled_back=target.already_rolled_back,
        expected_images=expected_images,
        actions=tuple(actions),
        dry_run=settings.acting.dry_run,
        cut_off=target.cut_off,
    )
