"""Rollback Steps 1 and 2: notify the team, then roll the Helm release back."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from runbook_lib.errors import CommandFailed, PreconditionFailed
from runbook_lib.record.facts import RollbackStarted, RolledBack, record_fact
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps.bad_pods import start_bad_release_capture
from runbook_lib.steps.broadcast import broadcast
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.plan import rollout_message
from runbook_lib.steps.read_back import (
    cut_off_reason,
    how_it_ended,
    interrupts_deferred,
    read_cluster_back,
)
from runbook_lib.steps.step import runbook_step

__all__ = ["Notified", "RollbackDone", "helm_rollback", "notify"]


@dataclass(frozen=True)
class Notified:
    """Which notifiers delivered the message and which failed (recorded as warnings)."""

    message: str
    delivered: tuple[str, ...]
    failed: tuple[str, ...]
    dry_run: bool = False
    skipped: bool = False  # nothing to announce: the run changes nothing

    def __repr__(self) -> str:
        if self.skipped:
            return f"Notify: {self.message}"
        if self.dry_run:
            return f"Notify (dry run, not sent): {self.message!r}"
        failed = f"; FAILED: {', '.join(self.failed)}" if self.failed else ""
        return f"Notified {', '.join(self.delivered) or 'nobody'}: {self.message!r}{failed}"


@dataclass(frozen=True)
class RollbackDone:
    """The outcome of the helm rollback step."""

    revision: int
    action: str  # "rolled back", "already rolled back", "dry run"
    command: str

    def __repr__(self) -> str:
        return f"Helm rollback to revision {self.revision}: {self.action} ({self.command})"


@runbook_step("notify")
def notify(ctx: RunContext) -> Notified:
    """Rollback Steps, step 1: "Rolling back <release> from <bad> to <good>".

    Nothing is sent when the release already runs the target (nothing will change). Posts
    through Slack webhook / file / console as configured, each retried once. Never
    raises for a failed notification (it is a recorded warning). Raises
    ``PreconditionFailed`` if preflight has not resolved the revisions.
    """
    target = ctx.live.target
    if target is None:
        raise PreconditionFailed("notify needs preflight to have resolved the revisions")
    if target.already_rolled_back:
        # Nothing will change: a "Rolling back" message would announce a rollback that never
        # happens (and name the good revision as the bad one).
        release = ctx.settings.target.release
        message = (
            f"not sent: {release} already runs revision {target.target.number}'s chart and "
            "values; nothing will be rolled back"
        )
        ctx.timeline.record("notify", EventKind.INFO, message)
        return Notified(message, (), (), skipped=True)
    message = rollout_message(ctx.settings, target)
    if ctx.dry_run:
        ctx.timeline.record("notify", EventKind.DRY_RUN, f"would post: {message}")
        return Notified(message, (), (), dry_run=True)
    delivered, failed = broadcast(ctx, "notify", message)
    ctx.timeline.record(
        "notify",
        EventKind.INFO,
        f"posted: {message}",
        delivered=delivered,
        failed=failed,
    )
    return Notified(message, tuple(delivered), tuple(failed))


@runbook_step("helm_rollback", mutating=True)
def helm_rollback(ctx: RunContext) -> RollbackDone:
    """Rollback Steps, step 2 (first half): ``helm rollback <release> <N>`` to the resolved N.

    Never revision 0. Idempotent: when preflight found the release already running the
    target's chart and values, records "already rolled back" and changes nothing. Otherwise,
    just before the rollback (dry run too), the pods the Deployment runs now start being
    captured in the background (``run/capture.py``: their logs since the deploy, into
    ``kubernetes/before-rollback/``); the rollback waits only for their listing. When helm
    does not end cleanly (its timeout, an interrupt, a failure) the cluster is read back
    before the error goes on: ``ClusterReadBack`` says whether the rollback was applied, and
    the same sentence is posted to the notifiers. Raises ``PreconditionFailed`` without
    preflight/confirm, ``CommandFailed`` when helm fails or is missing (the Lease is released
    first).
    """
    settings = ctx.settings
    target = ctx.live.target
    if target is None or ctx.facts.confirmed is None or not ctx.facts.confirmed.go_ahead:
        raise PreconditionFailed("helm_rollback needs preflight and confirm first")
    number = target.target.number
    command = shlex.join(
        ctx.helm.rollback_command(
            settings.target.release, number, timeout_s=settings.target.helm_timeout
        )
    )
    # Evidence first: the rollback replaces exactly the pods whose logs explain the incident.
    start_bad_release_capture(ctx, "helm_rollback")
    if target.already_rolled_back:
        action = "already rolled back"
        ctx.timeline.record(
            "helm_rollback",
            EventKind.INFO,
            f"already rolled back: revision {target.current.number} runs revision "
            f"{number}'s chart and values; nothing changed",
        )
    elif ctx.dry_run:
        action = "dry run"
        ctx.timeline.record("helm_rollback", EventKind.DRY_RUN, f"would run: {command}")
    else:
        _run_helm_rollback(ctx, number, command)
        action = "rolled back"
        record_fact(
            ctx.timeline,
            "helm_rollback",
            RolledBack(from_revision=target.current.number, to_revision=number, command=command),
            f"ran: {command}",
        )
    return RollbackDone(number, action, command)


def _run_helm_rollback(ctx: RunContext, number: int, command: str) -> None:
    """``helm rollback``, marked as started first; cut off, the cluster is read back."""
    settings = ctx.settings
    release, timeout_s = settings.target.release, settings.target.helm_timeout
    target = ctx.live.target
    assert target is not None
    started = record_fact(
        ctx.timeline,
        "helm_rollback",
        RollbackStarted(from_revision=target.current.number, to_revision=number, command=command),
        f"running: {command}",
    )
    try:
        ctx.helm.rollback(release, number, timeout_s=timeout_s)
    except BaseException as err:
        reason = cut_off_reason(started.at, ctx.now(), how_it_ended(err))
        if isinstance(err, CommandFailed) and err.timeout_s is not None:
            reason += f" (helm_timeout {timeout_s:g} s)"
        with interrupts_deferred() as interrupted:
            fact = read_cluster_back(ctx, "helm_rollback", reason=reason)
            if fact is not None:
                broadcast(
                    ctx,
                    "helm_rollback",
                    f"helm rollback of {release} did not end cleanly (incident "
                    f"{settings.records.incident_id}): {fact.sentence}",
                )
        if interrupted and not isinstance(err, KeyboardInterrupt):
            raise KeyboardInterrupt from err
        raise
