"""``@runbook_step``: the frame every step runs in, so a step's body is only its work.

The decorator owns a step's name, the "nothing to do" skip (the decision said no rollback, or
the run stopped on an inconclusive verdict), the timeline span (start, end, or failure with its
kind), the lock's release when a step fails after preflight took it (the next engineer must not
find the release locked in the middle of an incident), and re-sealing the evidence manifest after
steps that write evidence.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, TypeVar

from runbook_lib.core import readable
from runbook_lib.core.verdict import Verdict
from runbook_lib.display.summary import current as current_summary
from runbook_lib.errors import AdapterError
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.lock import check_lock, keep_renewed, renew_lock

__all__ = ["Skipped", "release_lock", "runbook_step"]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Skipped:
    """A step that did nothing because the run is not rolling back."""

    step: str
    reason: str

    def __repr__(self) -> str:
        return f"{self.step}: {self.reason}"


def _skip_reason(ctx: RunContext) -> str:
    decided = ctx.facts.decided
    if decided is not None and decided.verdict is Verdict.INCONCLUSIVE:
        return "skipped: stopped before any change, the verdict is inconclusive"
    return "skipped: no rollback needed"


def release_lock(ctx: RunContext, step: str, *, why: str) -> bool:
    """Release the Lease if this run holds it; True when it was released.

    A failure to release is recorded as a warning, not raised: the caller is either already
    propagating the real error or finishing, and the lease expires after ``lock_ttl``.
    """
    lock = ctx.live.lock
    if lock is None:
        return False
    deadline = time.monotonic() + ctx.settings.lock.lock_release_grace
    while True:
        try:
            ours = lock.release()
            break
        except AdapterError as err:
            # The failure being propagated may be the API server itself going away; give it
            # a short grace to come back rather than leave the release locked for lock_ttl.
            if err.retryable and time.monotonic() < deadline:
                ctx.sleep(1.0)
                continue
            ctx.timeline.record(
                step,
                EventKind.WARNING,
                f"could not release the rollback lock ({why}): {err}; another run can take "
                f"it over after {readable.duration(ctx.settings.lock.lock_ttl)}",
            )
            return False
    ctx.live.lock = None
    if not ours:  # taken over or deleted under the run: nothing of ours to give back
        ctx.timeline.record(step, EventKind.INFO, f"rollback lock no longer held ({why})")
        return False
    ctx.timeline.record(step, EventKind.INFO, f"rollback lock released ({why})")
    return True


def runbook_step(
    name: str, *, only_when_rolling_back: bool = True, seals: bool = False, mutating: bool = False
) -> Callable[
    [Callable[Concatenate[RunContext, P], R]], Callable[Concatenate[RunContext, P], R | Skipped]
]:
    """Make ``func(ctx, ...)`` a runbook step called ``name``.

    ``only_when_rolling_back``: record and return ``Skipped`` when the run is not rolling back.
    ``seals``: re-write ``MANIFEST.sha256`` after the step (it wrote evidence), also when it is
    skipped or fails, so the bundle verifies whichever step the run stopped at.
    ``mutating``: the step changes the cluster; before its body the lock must be this run's
    (``run.lock.check_lock``: ``LockLost`` / ``LockHeld`` stop it before any change), and it
    is kept renewed while the body runs. Every other step renews a held lock when it is due.
    """

    def decorate(
        func: Callable[Concatenate[RunContext, P], R],
    ) -> Callable[Concatenate[RunContext, P], R | Skipped]:
        @functools.wraps(func)
        def step(ctx: RunContext, /, *args: P.args, **kwargs: P.kwargs) -> R | Skipped:
            summary = current_summary()
            try:
                if only_when_rolling_back and not ctx.facts.rolling_back:
                    reason = _skip_reason(ctx)
                    ctx.timeline.record(name, EventKind.STEP_END, reason, skipped=True)
                    if summary is not None:
                        summary.note_step_end(name, 0.0, "skipped")
                    return Skipped(name, reason)
                if summary is not None:
                    summary.note_step(name)
                begun, status = time.monotonic(), "failed"
                try:
                    with ctx.timeline.span(name):
                        if mutating:
                            check_lock(ctx, name)
                            with keep_renewed(ctx):
                                result = func(ctx, *args, **kwargs)
                        else:
                            renew_lock(ctx, name)
                            result = func(ctx, *args, **kwargs)
                    status = "done"
                    return result
                except BaseException:
                    release_lock(ctx, name, why=f"{name} failed")
                    raise
                finally:
                    if summary is not None:  # the banner follows the run, step by step
                        summary.note_facts(ctx.facts)
                        summary.note_step_end(name, time.monotonic() - begun, status)
            finally:
                if seals:
                    ctx.seal()  # never raises: a failure to seal is a timeline warning

        step.step_name = name  # type: ignore[attr-defined]
        return step

    return decorate
