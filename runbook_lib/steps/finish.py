"""The last rollback step: release the lock, say how the run ended, time it against the target."""

from __future__ import annotations

from runbook_lib.record.facts import Finished, record_fact
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.step import release_lock, runbook_step

__all__ = ["Finished", "finish"]


@runbook_step("finish", only_when_rolling_back=False)
def finish(ctx: RunContext) -> Finished:
    """End of "Rollback Steps": release the Lease, record the outcome and decision -> recovery.

    Above ``target`` (the runbook's 5 minutes) the timeline says so with a warning. Raises
    nothing of its own; a Lease that cannot be released is a recorded warning.
    """
    release_lock(ctx, "finish", why="run finished")
    facts = ctx.facts
    to_rollout = facts.seconds_from_decision(facts.rollout.done_at if facts.rollout else None)
    to_recovery = facts.seconds_from_decision(
        facts.recovered.verified_at if facts.recovered else None
    )
    result = Finished(facts.outcome, to_rollout, to_recovery, ctx.settings.acting.target)
    message = repr(result)
    if result.within_target is False:
        message += " -- above the runbook's target: note it in the incident record"
        ctx.timeline.record("finish", EventKind.WARNING, message)
    record_fact(ctx.timeline, "finish", result, message)
    return result
