"""The last rollback step: release the lock and time the run against the 5-minute target."""

from __future__ import annotations

from dataclasses import dataclass

from runbook_lib.steps.context import RunContext
from runbook_lib.steps.span import release_lock, step_span
from runbook_lib.timeline import EventKind

__all__ = ["Finished", "finish"]


@dataclass(frozen=True)
class Finished:
    """How the run ended and, when it rolled back, how long decision -> recovery took."""

    outcome: str
    decision_to_rollout_s: float | None
    decision_to_recovery_s: float | None
    target_s: float
    lock_released: bool

    @property
    def within_target(self) -> bool | None:
        if self.decision_to_recovery_s is None:
            return None
        return self.decision_to_recovery_s <= self.target_s

    def __repr__(self) -> str:
        parts = [f"Finished: {self.outcome}"]
        if self.decision_to_rollout_s is not None:
            parts.append(f"decision -> rollout complete {self.decision_to_rollout_s:.1f} s")
        if self.decision_to_recovery_s is not None:
            verdict = "within" if self.within_target else "OVER"
            parts.append(
                f"decision -> verified recovery {self.decision_to_recovery_s:.1f} s "
                f"({verdict} the {self.target_s:.0f} s target)"
            )
        return "; ".join(parts)


def finish(ctx: RunContext) -> Finished:
    """End of "Rollback Steps": release the Lease and record decision -> verified recovery.

    Above ``target_s`` (the runbook's 5 minutes) the timeline says so with a warning.
    Raises nothing of its own; a Lease that cannot be released is a recorded warning.
    """
    s = ctx.state
    with step_span(ctx, "finish"):
        released = release_lock(ctx, "finish", why="run finished")
        to_rollout = to_recovery = None
        if s.decided_at is not None and s.rollout_done_at is not None:
            to_rollout = (s.rollout_done_at - s.decided_at).total_seconds()
        if s.decided_at is not None and s.verified_at is not None:
            to_recovery = (s.verified_at - s.decided_at).total_seconds()
        if not ctx.rolling_back:
            outcome = "no rollback needed"
        elif ctx.dry_run:
            outcome = "dry run: nothing changed"
        elif s.target is not None and s.target.already_rolled_back and not s.rolled_back:
            outcome = "already rolled back: nothing changed"
        elif to_recovery is not None:
            outcome = f"rolled back to revision {s.target.target.number if s.target else '?'}"
        else:
            outcome = "incomplete: recovery not verified"
        result = Finished(outcome, to_rollout, to_recovery, ctx.params.target_s, released)
        kind = EventKind.WARNING if result.within_target is False else EventKind.INFO
        message = repr(result)
        if result.within_target is False:
            message += " -- above the runbook's target: note it in the incident record"
        ctx.timeline.record(
            "finish", kind, message,
            outcome=outcome, decision_to_rollout_s=to_rollout,
            decision_to_recovery_s=to_recovery, target_s=ctx.params.target_s,
            within_target=result.within_target,
        )  # fmt: skip
        ctx.show(message)
    return result
