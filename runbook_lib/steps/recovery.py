"""Rollback Steps, step 4: "Check error rate" after the rollout, and escalation when it fails."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from runbook_lib.core import recovery as core_recovery
from runbook_lib.errors import MetricsError, PreconditionFailed, VerificationFailed
from runbook_lib.facts import NotRecovered, Recovered, record_fact
from runbook_lib.run.broadcast import broadcast
from runbook_lib.run.context import RunContext
from runbook_lib.run.step import runbook_step
from runbook_lib.timeline import EventKind

__all__ = ["RecoveryChecked", "check_recovery"]


@dataclass(frozen=True)
class RecoveryChecked:
    """The recovery verdict and the last 5xx ratio seen."""

    recovered: bool
    recovered_at: datetime | None
    last_error_ratio: float | None
    reason: str
    dry_run: bool = False

    def __repr__(self) -> str:
        last = "n/a" if self.last_error_ratio is None else f"{self.last_error_ratio:.4%}"
        if self.dry_run:
            return f"Recovery (dry run, not judged): 5xx ratio now {last}"
        state = "RECOVERED" if self.recovered else "NOT recovered"
        return f"{state}: {self.reason} (last 5xx ratio {last})"


def _escalate(ctx: RunContext, reason: str) -> None:
    p = ctx.params
    message = (
        f"ESCALATION: {p.release} was rolled back but recovery is NOT verified: {reason}. "
        f"Migrations are blocked. Incident {p.incident_id}."
    )
    delivered, failed = broadcast(ctx, "check_recovery", message)
    ctx.timeline.record("check_recovery", EventKind.WARNING, message,
                        delivered=delivered, failed=failed)  # fmt: skip


@runbook_step("check_recovery")
def check_recovery(ctx: RunContext) -> RecoveryChecked:
    """Rollback Steps, step 4: the 5xx ratio falls below the recovery threshold in time.

    Polls the metrics source from the end of the rollout, showing each new ratio, until
    ``core.recovery`` says recovered or the window (``recovery_within`` plus the consecutive
    samples it needs) has passed. When the metrics cannot be read it never claims recovery.
    Raises ``VerificationFailed`` (after escalating through the notifiers; migrations stay
    blocked), ``PreconditionFailed`` when the rollout was not seen to complete.
    """
    p = ctx.params
    th = p.thresholds
    step_s = ctx.metrics_step_s
    if ctx.dry_run:
        now = ctx.now()
        samples = ctx.metrics.query_range(now - timedelta(seconds=4 * step_s), now, step_s)
        ratios = samples["error_ratio"].dropna() if "error_ratio" in samples else None
        last = float(ratios.iloc[-1]) if ratios is not None and len(ratios) else None
        result = RecoveryChecked(False, None, last, "dry run", dry_run=True)
        ctx.timeline.record("check_recovery", EventKind.DRY_RUN,
                            f"would wait for recovery; {result!r}")  # fmt: skip
        return result
    rollout = ctx.facts.rollout
    done_at = rollout.done_at if rollout else None
    if done_at is None:
        raise PreconditionFailed("check_recovery needs wait_for_rollout to have completed")
    # core.recovery says when its verdict is final; this cap only guards against a
    # source that returns no samples at all (Prometheus down): never wait past the window.
    budget = th.recovery_within + (th.recovery_consecutive + 2) * step_s + p.recovery_poll
    deadline = done_at + timedelta(seconds=budget)
    last_error: MetricsError | None = None
    verdict = None
    shown = ""
    while True:
        now = ctx.now()
        try:
            samples = ctx.metrics.query_range(done_at - timedelta(seconds=step_s), now, step_s)
        except MetricsError as err:
            if last_error is None:
                ctx.timeline.record("check_recovery", EventKind.WARNING,
                                    f"metrics unavailable: {err}")  # fmt: skip
            last_error = err
        else:
            last_error = None
            verdict = core_recovery.check_recovery(samples, rollout_done_at=done_at,
                                                   thresholds=th)  # fmt: skip
            ratio = "n/a" if verdict.last_value is None else f"{verdict.last_value:.4%}"
            line = (
                f"  {now:%H:%M:%S} 5xx ratio {ratio} (recovered below "
                f"{th.recovery_error_ratio:.2%} for {th.recovery_consecutive} samples: "
                f"{'yes' if verdict.recovered else 'not yet'})"
            )
            if line != shown:
                shown = line
                ctx.show(line)
            if verdict.recovered or verdict.conclusive:
                break
        if now >= deadline:
            break
        ctx.sleep(p.recovery_poll)
    if verdict is None or not verdict.recovered or last_error is not None:
        reason = (
            f"metrics unavailable, cannot confirm recovery: {last_error}"
            if last_error is not None or verdict is None
            else verdict.reason
        )
        _escalate(ctx, reason)
        record_fact(ctx.timeline, "check_recovery", NotRecovered(reason),
                    f"recovery not verified: {reason}")  # fmt: skip
        raise VerificationFailed(f"recovery not verified: {reason}") from last_error
    verified_at = ctx.now()
    recovered_at = verdict.recovered_at or verified_at
    last_value = None if verdict.last_value is None else float(verdict.last_value)
    result = RecoveryChecked(True, recovered_at, last_value, verdict.reason)
    record_fact(ctx.timeline, "check_recovery",
                Recovered(recovered_at, verified_at, last_value), repr(result))  # fmt: skip
    return result
