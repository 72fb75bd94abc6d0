"""The last rollback step: release the lock, say how the run ended, time it against the target."""

from __future__ import annotations

from dataclasses import dataclass

from runbook_lib.core import readable
from runbook_lib.record.facts import Finished as FinishedFact
from runbook_lib.record.facts import Outcome, record_fact
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.step import release_lock, runbook_step

__all__ = ["Finished", "finish"]


@dataclass(frozen=True)
class Finished:
    """How the run ended and, when it rolled back, how long decision -> recovery took."""

    outcome: Outcome
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
        parts = [f"Finished: {self.outcome.value}"]
        if self.decision_to_rollout_s is not None:
            parts.append(
                f"decision -> rollout complete {readable.duration(self.decision_to_rollout_s)}"
            )
        if self.decision_to_recovery_s is not None:
            verdict = "within" if self.within_target else "OVER"
            parts.append(
                f"decision -> verified recovery {readable.duration(self.decision_to_recovery_s)}"
                f" ({verdict} the {readable.duration(self.target_s)} target)"
            )
        return "; ".join(parts)


@runbook_step("finish", only_when_rolling_back=False)
def finish(ctx: RunContext) -> Finished:
    """End of "Rollback Steps": release the Lease, record the outcome and decision -> recovery.

    Above ``target`` (the runbook's 5 minutes) the timeline says so with a warning. Raises
    nothing of its own; a Lease that cannot be released is a recorded warning.
    """
    released = release_lock(ctx, "finish", why="run finished")
    facts = ctx.facts
    to_rollout = facts.seconds_from_decision(facts.rollout.done_at if facts.rollout else None)
    to_recovery = facts.seconds_from_decision(
        facts.recovered.verified_at if facts.recovered else None
    )
    result = Finished(facts.outcome, to_rollout, to_recovery, ctx.settings.acting.target, released)
    message = repr(result)
    if result.within_target is False:
        message += " -- above the runbook's target: note it in the incident record"
        ctx.timeline.record("finish", EventKind.WARNING, message)
    record_fact(
        ctx.timeline,
        "finish",
        FinishedFact(result.outcome, to_rollout, to_recovery, ctx.settings.acting.target),
        message,
    )
    return result
