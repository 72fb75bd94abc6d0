"""Rollback Steps, step 5: revert database migrations from the migrator pod, and prove it."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runbook_lib.adapters.pod_exec import exec_in_pod
from runbook_lib.core.images import PodImages
from runbook_lib.errors import CommandFailed, PreconditionFailed, VerificationFailed
from runbook_lib.record.facts import MigrationsReverted, record_fact
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.step import runbook_step

if TYPE_CHECKING:
    from subprocess import CompletedProcess

__all__ = ["MigrationsDone", "revert_migrations"]

_VERSION = re.compile(r"^\s*(\d+)\b")


@dataclass(frozen=True)
class MigrationsDone:
    """What the migrations step did and the schema versions around it."""

    action: str  # "reverted", "not requested", "dry run", "skipped: already rolled back"
    pod: str = ""
    command: str = ""
    version_before: int | None = None
    version_after: int | None = None
    exit_code: int | None = None
    output: str = ""

    def __repr__(self) -> str:
        if self.action != "reverted":
            where = f" in {self.pod}" if self.pod else ""
            version = "" if self.version_before is None else f"; schema at {self.version_before}"
            return f"Migrations: {self.action}{where}{version}"
        return (
            f"Migrations reverted in {self.pod}: `{self.command}` exited {self.exit_code}; "
            f"schema version {self.version_before} -> {self.version_after}"
        )


def _migrator_pod(ctx: RunContext) -> PodImages:
    namespace, selector = ctx.settings.target.namespace, ctx.settings.migrations.migrator_selector
    pods = ctx.kube.pods(namespace, selector)
    running = [pod for pod in pods if pod.phase == "Running" and pod.ready]
    if not running:
        seen = ", ".join(f"{pod.name} ({pod.phase})" for pod in pods) or "none"
        raise PreconditionFailed(
            f"no running, ready pod matches {selector!r} in {namespace} (seen: "
            f"{seen}); migrations NOT reverted, the release rollback itself stands"
        )
    return sorted(running, key=lambda pod: pod.name)[0]


def _exec(ctx: RunContext, pod: str, argv: list[str]) -> CompletedProcess[str]:
    settings = ctx.settings
    timeout_s = settings.migrations.migrate_timeout
    return exec_in_pod(ctx.kube, settings.target.namespace, pod, argv, timeout_s=timeout_s)


def _schema_version(ctx: RunContext, pod: str) -> int:
    settings = ctx.settings
    argv = shlex.split(settings.migrations.migrate_version_command)
    result = _exec(ctx, pod, argv)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    match = _VERSION.match(lines[-1]) if lines else None
    if result.returncode != 0 or match is None:
        raise CommandFailed(
            f"could not read the schema version in pod {pod} (exit {result.returncode}, "
            f"output {result.stdout.strip()[:200]!r})",
            command=shlex.join(argv),
            stderr=result.stderr,
            returncode=result.returncode,
        )
    return int(match.group(1))


@runbook_step("revert_migrations", mutating=True)
def revert_migrations(ctx: RunContext) -> MigrationsDone:
    """Rollback Steps, step 5: ``kubectl exec <migrator> -- ./migrate down N``, then verify.

    Only when ``migrations_to_revert`` > 0 and ``check_recovery`` passed. Captures output and
    exit status, then checks ``migrate_version_command`` moved down by exactly N. When the
    release was already rolled back before this run, migrations are not reverted again (a
    second ``down`` would drop a migration the good version needs). Raises
    ``PreconditionFailed`` (recovery not verified, migrator pod missing), ``CommandFailed``
    (non-zero exit), ``VerificationFailed`` (schema version did not move by N).
    """
    settings = ctx.settings
    n = settings.migrations.migrations_to_revert
    facts = ctx.facts
    if n == 0:
        ctx.timeline.record(
            "revert_migrations", EventKind.INFO, "no migrations to revert (migrations_to_revert=0)"
        )
        return MigrationsDone("not requested")
    target = facts.target
    if target is not None and target.already_rolled_back and facts.rolled_back is None:
        note = "not by this run"
        ctx.timeline.record(
            "revert_migrations",
            EventKind.WARNING,
            f"release was already rolled back before this run; migrations NOT reverted "
            f"again ({note}); check the schema version by hand",
        )
        return MigrationsDone("skipped: already rolled back")
    if not ctx.dry_run and facts.recovered is None:
        raise PreconditionFailed(
            "migrations blocked: recovery after the rollback is not verified (run "
            "check_recovery first; a failed recovery check must be escalated, not migrated)"
        )
    pod = _migrator_pod(ctx).name
    before = _schema_version(ctx, pod)
    argv = shlex.split(settings.migrations.migrate_command.format(n=n))
    command = shlex.join(argv)
    if ctx.dry_run:
        ctx.timeline.record(
            "revert_migrations",
            EventKind.DRY_RUN,
            f"would run in {pod}: {command} (schema now {before})",
        )
        return MigrationsDone("dry run", pod, command, version_before=before)
    result = _exec(ctx, pod, argv)
    ctx.timeline.record(
        "revert_migrations",
        EventKind.INFO,
        f"ran in {pod}: {command} -> exit {result.returncode}",
        stdout=result.stdout[-4000:],
        stderr=result.stderr[-4000:],
        exit_code=result.returncode,
    )
    if result.returncode != 0:
        raise CommandFailed(
            f"{command} failed in pod {pod} (exit {result.returncode})",
            command=command,
            stderr=result.stderr,
            returncode=result.returncode,
        )
    after = _schema_version(ctx, pod)
    if before - after != n:
        raise VerificationFailed(
            f"schema version moved from {before} to {after}, expected down by {n}"
        )
    reverted = MigrationsDone(
        "reverted", pod, command, before, after, result.returncode, result.stdout
    )
    record_fact(
        ctx.timeline, "revert_migrations", MigrationsReverted(n, before, after), repr(reverted)
    )
    return reverted
