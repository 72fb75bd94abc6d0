"""Rollback Steps 1 and 2: notify the team, then roll the Helm release back."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from runbook_lib.errors import PreconditionFailed
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.plan import rollout_message
from runbook_lib.steps.span import Skipped, skip_if_not_rolling_back, step_span
from runbook_lib.timeline import EventKind

__all__ = ["Notified", "RollbackDone", "broadcast", "helm_rollback", "notify"]

# A second attempt catches a dropped connection; more would hold up the rollback.
_RETRY_PAUSE_S = 1.0


@dataclass(frozen=True)
class Notified:
    """Which notifiers delivered the message and which failed (recorded as warnings)."""

    message: str
    delivered: tuple[str, ...]
    failed: tuple[str, ...]
    dry_run: bool = False

    def __repr__(self) -> str:
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


def broadcast(ctx: RunContext, step: str, message: str) -> tuple[list[str], list[str]]:
    """Post ``message`` through every configured notifier, one retry each; never raises.

    A notification failure must not block the rollback (or hide a failed one), so each failure
    becomes a warning on the timeline. Returns (delivered, failed) notifier names.
    """
    delivered: list[str] = []
    failed: list[str] = []
    for name, notifier in ctx.notifiers:
        for attempt in (1, 2):
            try:
                notifier.post(message)
            except Exception as err:  # any notifier bug must not stop the rollback
                ctx.timeline.record(
                    step, EventKind.WARNING,
                    f"notification via {name} failed (attempt {attempt} of 2): "
                    f"{type(err).__name__}: {err}",
                )  # fmt: skip
                # A 4xx (revoked webhook) will not get better a second later.
                if attempt == 1 and getattr(err, "retryable", True):
                    ctx.sleep(_RETRY_PAUSE_S)
                    continue
                failed.append(name)
            else:
                delivered.append(name)
            break
    return delivered, failed


def notify(ctx: RunContext) -> Notified | Skipped:
    """Rollback Steps, step 1: "Rolling back <release> from <bad> to <good>".

    Posts through Slack webhook / file / console as configured, each retried once. Never
    raises for a failed notification (it is a recorded warning). Raises
    ``PreconditionFailed`` if preflight has not resolved the revisions.
    """
    skipped = skip_if_not_rolling_back(ctx, "notify")
    if skipped:
        return skipped
    with step_span(ctx, "notify"):
        target = ctx.state.target
        if target is None:
            raise PreconditionFailed("notify needs preflight to have resolved the revisions")
        message = rollout_message(ctx.params, target)
        if ctx.dry_run:
            ctx.timeline.record("notify", EventKind.DRY_RUN, f"would post: {message}")
            return Notified(message, (), (), dry_run=True)
        delivered, failed = broadcast(ctx, "notify", message)
        ctx.timeline.record(
            "notify", EventKind.INFO, f"posted: {message}",
            delivered=delivered, failed=failed,
        )  # fmt: skip
    return Notified(message, tuple(delivered), tuple(failed))


def helm_rollback(ctx: RunContext) -> RollbackDone | Skipped:
    """Rollback Steps, step 2 (first half): ``helm rollback <release> <N>`` to the resolved N.

    Never revision 0. Idempotent: when preflight found the release already running the
    target's chart and values, records "already rolled back" and changes nothing. Raises
    ``PreconditionFailed`` without preflight/confirm, ``CommandFailed`` when helm fails or is
    missing (the Lease is released first).
    """
    skipped = skip_if_not_rolling_back(ctx, "helm_rollback")
    if skipped:
        return skipped
    p = ctx.params
    with step_span(ctx, "helm_rollback"):
        target = ctx.state.target
        if target is None or not ctx.state.confirmed:
            raise PreconditionFailed("helm_rollback needs preflight and confirm first")
        number = target.target.number
        command = shlex.join(
            ctx.helm.rollback_command(p.release, number, timeout_s=p.helm_timeout_s)
        )
        if target.already_rolled_back:
            action = "already rolled back"
            ctx.timeline.record(
                "helm_rollback", EventKind.INFO,
                f"already rolled back: revision {target.current.number} runs revision "
                f"{number}'s chart and values; nothing changed",
            )  # fmt: skip
        elif ctx.dry_run:
            action = "dry run"
            ctx.timeline.record("helm_rollback", EventKind.DRY_RUN, f"would run: {command}")
        else:
            ctx.helm.rollback(p.release, number, timeout_s=p.helm_timeout_s)
            ctx.state.rolled_back = True
            action = "rolled back"
            ctx.timeline.record("helm_rollback", EventKind.INFO, f"ran: {command}", revision=number)
        result = RollbackDone(number, action, command)
        ctx.show(repr(result))
    return result
