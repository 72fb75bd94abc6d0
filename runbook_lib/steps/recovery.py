"""Rollback Steps, step 4: "Check error rate" after the rollout, and escalation when it fails."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from runbook_lib.core import readable
from runbook_lib.core import recovery as core_recovery
from runbook_lib.core.drift import expected_revision, release_drift
from runbook_lib.display.progress import Wait
from runbook_lib.errors import (
    MetricsError,
    PreconditionFailed,
    ReleaseChangedUnderRun,
    RunbookError,
    VerificationFailed,
)
from runbook_lib.record.facts import NotRecovered, Recovered, ReleaseChanged, record_fact
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps.broadcast import broadcast
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.lock import renew_lock
from runbook_lib.steps.step import runbook_step

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
        last = readable.percent(self.last_error_ratio)
        if self.dry_run:
            return f"Recovery (dry run, not judged): 5xx ratio now {last}"
        state = "RECOVERED" if self.recovered else "NOT recovered"
        return f"{state}: {self.reason} (last 5xx ratio {last})"


def _world_check(ctx: RunContext) -> tuple[ReleaseChanged, str] | None:
    """Before escalating: re-read the release's history and the pods' images.

    Returns the ``ReleaseChanged`` fact and a sentence when someone changed the release after
    the rollback, else None. A failure to read is a recorded warning (the escalation stands).
    """
    settings = ctx.settings
    facts = ctx.facts
    target = facts.target
    if target is None:
        return None
    expected = expected_revision(
        target.current_revision, rolled_back_by_this_run=facts.rolled_back is not None
    )
    try:
        history = ctx.helm.history(settings.target.release)
        pods = ctx.kube.pods(settings.target.namespace, ctx.pod_selector)
    except RunbookError as err:
        ctx.timeline.record(
            "check_recovery",
            EventKind.WARNING,
            f"could not re-read the release before escalating: {err}",
        )
        return None
    drift = release_drift(
        history, expected=expected, pods=pods, expected_images=target.expected_images
    )
    if not drift.changed:
        ctx.timeline.record(
            "check_recovery",
            EventKind.INFO,
            f"release re-read before escalating: still at revision {expected}, "
            "pods run the target's images",
        )
        return None
    newest = max(history, key=lambda r: r.number)
    images = sorted({image for pod in pods for image in pod.images})
    return ReleaseChanged(
        expected_revision=expected,
        current_revision=newest.number,
        current_version=newest.app_version or newest.chart,
        changed_at=newest.updated if drift.newer is not None else None,
        images=tuple(images),
    ), drift.describe()


def _report_changed(ctx: RunContext, fact: ReleaseChanged, what: str, *, reason: str) -> None:
    """Escalate a release changed under the run as that, not as a failed recovery; raise."""
    release, incident = ctx.settings.target.release, ctx.settings.records.incident_id
    message = (
        f"ESCALATION: {release} was rolled back by this run, but the release CHANGED under "
        f"it: {what}. The service now runs what was deployed since, not the rollback; find "
        f"who changed it before acting again. Migrations are blocked. Incident {incident}."
    )
    delivered, failed = broadcast(ctx, "check_recovery", message)
    ctx.timeline.record(
        "check_recovery", EventKind.WARNING, message, delivered=delivered, failed=failed
    )
    record_fact(ctx.timeline, "check_recovery", fact, f"release changed under the run: {what}")
    raise ReleaseChangedUnderRun(
        f"release {release} changed under the run: {what} (the recovery check saw: {reason})",
        revision=fact.current_revision,
        version=fact.current_version,
        changed_at=fact.changed_at.isoformat() if fact.changed_at else "",
    )


def _escalate(ctx: RunContext, reason: str) -> None:
    release, incident = ctx.settings.target.release, ctx.settings.records.incident_id
    message = (
        f"ESCALATION: {release} was rolled back but recovery is NOT verified: {reason}. "
        f"Migrations are blocked. Incident {incident}."
    )
    delivered, failed = broadcast(ctx, "check_recovery", message)
    ctx.timeline.record(
        "check_recovery", EventKind.WARNING, message, delivered=delivered, failed=failed
    )


@runbook_step("check_recovery")
def check_recovery(ctx: RunContext) -> RecoveryChecked:
    """Rollback Steps, step 4: the 5xx ratio falls below the recovery threshold in time.

    Polls the metrics source from the end of the rollout, a progress bar showing the time
    left and the last ratio, until
    ``core.recovery`` says recovered or the window (``recovery_within`` plus the consecutive
    samples it needs) has passed. When the metrics cannot be read it never claims recovery.
    Before escalating it re-reads the release (``helm history``) and the pods' images: a
    release someone changed after the rollback raises ``ReleaseChangedUnderRun`` (which
    revision, when; escalated as that). Raises ``VerificationFailed`` (after escalating
    through the notifiers; migrations stay blocked), ``PreconditionFailed`` when the rollout
    was not seen to complete.
    """
    settings = ctx.settings
    th = settings.recovery
    step_s = settings.sources.prometheus_step
    if ctx.dry_run:
        now = ctx.now()
        samples = ctx.metrics.query_range(now - timedelta(seconds=4 * step_s), now, step_s)
        ratios = samples["error_ratio"].dropna() if "error_ratio" in samples else None
        last = float(ratios.iloc[-1]) if ratios is not None and len(ratios) else None
        result = RecoveryChecked(False, None, last, "dry run", dry_run=True)
        ctx.timeline.record(
            "check_recovery", EventKind.DRY_RUN, f"would wait for recovery; {result!r}"
        )
        return result
    rollout = ctx.facts.rollout
    done_at = rollout.done_at if rollout else None
    if done_at is None:
        raise PreconditionFailed("check_recovery needs wait_for_rollout to have completed")
    # core.recovery says when its verdict is final; this cap only guards against a
    # source that returns no samples at all (Prometheus down): never wait past the window.
    budget = th.recovery_within + (th.recovery_consecutive + 2) * step_s + th.recovery_poll
    deadline = done_at + timedelta(seconds=budget)
    last_error: MetricsError | None = None
    verdict = None
    awaited = (
        f"5xx ratio below {readable.percent(th.recovery_error_ratio)} for "
        f"{th.recovery_consecutive} samples"
    )
    # The bar counts from the end of the rollout, as the recovery window does.
    elapsed_before = max((ctx.now() - done_at).total_seconds(), 0.0)
    since_rollout = lambda: (ctx.now() - done_at).total_seconds()  # noqa: E731
    with Wait(awaited, budget, clock=since_rollout, started=0.0) as wait:
        wait.tick(f"{readable.duration(elapsed_before)} since the rollout")
        while True:
            now = ctx.now()
            try:
                samples = ctx.metrics.query_range(done_at - timedelta(seconds=step_s), now, step_s)
            except MetricsError as err:
                if last_error is None:
                    ctx.timeline.record(
                        "check_recovery", EventKind.WARNING, f"metrics unavailable: {err}"
                    )
                last_error = err
                wait.tick(f"metrics unavailable: {err}"[:120])
            else:
                last_error = None
                verdict = core_recovery.check_recovery(
                    samples, rollout_done_at=done_at, check=th, step=settings.sources.step
                )
                ratio = readable.percent(verdict.last_value)
                state = "recovered" if verdict.recovered else "not yet"
                wait.tick(f"last 5xx ratio {ratio}, {state}")
                if verdict.recovered or verdict.conclusive:
                    wait.done(f"last 5xx ratio {ratio}, {state}", ok=verdict.recovered)
                    break
            if now >= deadline:
                wait.done("recovery window over", ok=False)
                break
            ctx.sleep(th.recovery_poll)
            renew_lock(ctx, "check_recovery")  # the wait can outlast lock_ttl
    if verdict is None or not verdict.recovered or last_error is not None:
        reason = (
            f"metrics unavailable, cannot confirm recovery: {last_error}"
            if last_error is not None or verdict is None
            else verdict.reason
        )
        changed = _world_check(ctx)
        if changed is not None:
            _report_changed(ctx, *changed, reason=reason)
        _escalate(ctx, reason)
        record_fact(
            ctx.timeline, "check_recovery", NotRecovered(reason), f"recovery not verified: {reason}"
        )
        raise VerificationFailed(f"recovery not verified: {reason}") from last_error
    verified_at = ctx.now()
    recovered_at = verdict.recovered_at or verified_at
    last_value = None if verdict.last_value is None else float(verdict.last_value)
    result = RecoveryChecked(True, recovered_at, last_value, verdict.reason)
    record_fact(
        ctx.timeline,
        "check_recovery",
        Recovered(recovered_at, verified_at, last_value),
        repr(result),
    )
    return result
