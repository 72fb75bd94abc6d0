"""Rollback Steps 2 (rollout status) and 3 (verify the previous image)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from runbook_lib.core import readable
from runbook_lib.core.images import image_mismatches
from runbook_lib.core.rollout import RolloutState, rollout_state
from runbook_lib.display.progress import Wait
from runbook_lib.errors import PreconditionFailed, StepTimeout, VerificationFailed
from runbook_lib.record.facts import RolloutCompleted, record_fact
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps.bad_pods import SETTLE_AFTER_ROLLOUT_S, settle_capture
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.lock import keep_renewed
from runbook_lib.steps.step import runbook_step

__all__ = ["ImagesVerified", "RolloutDone", "verify_image", "wait_for_rollout"]


@dataclass(frozen=True)
class RolloutDone:
    """The Deployment's final rollout state and when it was reached."""

    deployment: str
    message: str
    done: bool
    at: datetime
    waited_s: float

    def __repr__(self) -> str:
        waited = f"waited {readable.duration(self.waited_s)}"
        return f"Rollout of deployment/{self.deployment}: {self.message} ({waited})"


@dataclass(frozen=True)
class ImagesVerified:
    """Pods checked against the target revision's manifest."""

    expected: tuple[str, ...]
    pods: tuple[str, ...]
    mismatches: tuple[str, ...] = ()

    def __repr__(self) -> str:
        head = f"{len(self.pods)} pod(s) checked against {', '.join(self.expected)}"
        if not self.mismatches:
            return f"Images verified: {head}"
        return "\n".join([f"Images NOT as expected: {head}", *(f"  {m}" for m in self.mismatches)])


def _watch(ctx: RunContext, started: float) -> tuple[RolloutState | None, str]:
    """Follow the Deployment until it is done, fails, or ``rollout_timeout`` passes."""
    settings = ctx.settings
    last_progress = ""
    final = None
    with Wait(
        f"rollout of deployment/{settings.target.deployment}", settings.acting.rollout_timeout
    ) as wait:
        for status in ctx.kube.watch_deployment(
            settings.target.namespace,
            settings.target.deployment,
            timeout_s=settings.acting.rollout_timeout,
        ):
            state = rollout_state(status)
            progress = status.progress()
            wait.tick(progress)
            if progress != last_progress:
                last_progress = progress
                ctx.timeline.record("wait_for_rollout", EventKind.INFO, progress)
            if state.failed:
                raise VerificationFailed(
                    f"rollout failed: {state.message}; pods are not "
                    "serving the target revision; escalate"
                )
            if state.done:
                final = state
                wait.done(state.message)
                break
            if time.monotonic() - started > settings.acting.rollout_timeout:
                break
    return final, last_progress


@runbook_step("wait_for_rollout")
def wait_for_rollout(ctx: RunContext) -> RolloutDone:
    """Rollback Steps, step 2 (second half): ``kubectl rollout status`` with a timeout.

    Watch-based; a progress bar (elapsed and remaining time, the replica counts) follows it
    and the timeline records each change of the replica counts. Raises
    ``StepTimeout`` after ``rollout_timeout_s``, ``VerificationFailed`` when the Deployment
    exceeds its progress deadline, ``ApiError`` when the API stays unreachable. In a dry run
    it reads the current state once and does not wait. Then it waits briefly for the capture
    of the old pods ``helm_rollback`` started, and records what it got (``BadPodsCaptured``).
    """
    settings = ctx.settings
    started = time.monotonic()
    if ctx.dry_run:
        state = rollout_state(
            ctx.kube.deployment_status(settings.target.namespace, settings.target.deployment)
        )
        ctx.timeline.record(
            "wait_for_rollout",
            EventKind.DRY_RUN,
            f"would wait up to {readable.duration(settings.acting.rollout_timeout)}; "
            f"now: {state.message}",
        )
        settle_capture(ctx, "wait_for_rollout", timeout_s=SETTLE_AFTER_ROLLOUT_S)
        return RolloutDone(settings.target.deployment, state.message, state.done, ctx.now(), 0.0)
    with keep_renewed(ctx):  # one watch call may block longer than lock_ttl
        final, last_progress = _watch(ctx, started)
    if final is None:
        raise StepTimeout(
            f"deployment/{settings.target.deployment} did not finish rolling out within "
            f"{readable.duration(settings.acting.rollout_timeout)} "
            f"(last: {last_progress or 'no status seen'})",
            step="wait_for_rollout",
            timeout_s=settings.acting.rollout_timeout,
        )
    done_at = ctx.now()
    deployment = settings.target.deployment
    result = RolloutDone(deployment, final.message, True, done_at, time.monotonic() - started)
    record_fact(
        ctx.timeline,
        "wait_for_rollout",
        RolloutCompleted(deployment, done_at),
        f"{final.message} (waited {readable.duration(result.waited_s)})",
    )
    settle_capture(ctx, "wait_for_rollout", timeout_s=SETTLE_AFTER_ROLLOUT_S)
    return result


@runbook_step("verify_image")
def verify_image(ctx: RunContext) -> ImagesVerified:
    """Rollback Steps, step 3: the selected pods run exactly the target manifest's images.

    Old pods can still be terminating right after the rollout, so a mismatch is re-checked for
    up to ``verify_settle_s`` before it counts. Raises ``VerificationFailed`` listing each
    mismatching pod. In a dry run it reports what the pods run now without failing.
    """
    settings = ctx.settings
    resolved = ctx.facts.target
    expected = resolved.expected_images if resolved else ()
    if not expected:
        raise PreconditionFailed("verify_image needs preflight to have read the manifest")
    deadline = time.monotonic() + (0.0 if ctx.dry_run else settings.acting.verify_settle)
    while True:
        pods = ctx.kube.pods(settings.target.namespace, ctx.pod_selector)
        problems = image_mismatches(pods, expected)
        if not problems or time.monotonic() >= deadline:
            break
        ctx.sleep(1.0)
    result = ImagesVerified(expected, tuple(sorted(pod.name for pod in pods)), tuple(problems))
    if ctx.dry_run:
        ctx.timeline.record(
            "verify_image", EventKind.DRY_RUN, f"would verify images; now: {result!r}"
        )
    elif problems:
        raise VerificationFailed(
            "pods do not run the target revision's images:\n"
            + "\n".join(f"  {m}" for m in problems)
        )
    else:
        ctx.timeline.record("verify_image", EventKind.INFO, repr(result), pods=list(result.pods))
    return result
