"""The frame every step runs in: a timeline span, the "no rollback" skip, lock release on failure.

The Lease must never outlive a failed run (the next engineer would find the release locked in
the middle of an incident), so any exception leaving a step after ``preflight`` took the lock
releases it before propagating.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from runbook_lib.errors import AdapterError
from runbook_lib.steps.context import RunContext
from runbook_lib.timeline import EventKind

__all__ = ["Skipped", "release_lock", "skip_if_not_rolling_back", "step_span"]

NO_ROLLBACK = "skipped: no rollback needed"


@dataclass(frozen=True)
class Skipped:
    """A step that did nothing because ``decide`` found no reason to roll back."""

    step: str
    reason: str = NO_ROLLBACK

    def __repr__(self) -> str:
        return f"{self.step}: {self.reason}"


def skip_if_not_rolling_back(ctx: RunContext, step: str) -> Skipped | None:
    """Record and return a ``Skipped`` when the decision was "no rollback"; else None."""
    if ctx.rolling_back:
        return None
    ctx.timeline.record(step, EventKind.INFO, NO_ROLLBACK)
    ctx.show(f"{step}: {NO_ROLLBACK}")
    return Skipped(step)


def release_lock(ctx: RunContext, step: str, *, why: str) -> bool:
    """Release the Lease if this run holds it; True when it was released.

    A failure to release is recorded as a warning, not raised: the caller is either already
    propagating the real error or finishing, and the lease expires after ``lock_ttl_s``.
    """
    lock = ctx.state.lock
    if lock is None:
        return False
    deadline = time.monotonic() + ctx.params.lock_release_grace_s
    while True:
        try:
            lock.release()
            break
        except AdapterError as err:
            # The failure being propagated may be the API server itself going away; give it
            # a short grace to come back rather than leave the release locked for lock_ttl_s.
            if err.retryable and time.monotonic() < deadline:
                ctx.sleep(1.0)
                continue
            ctx.timeline.record(
                step,
                EventKind.WARNING,
                f"could not release the rollback lock ({why}): {err}; another run can take "
                f"it over after {ctx.params.lock_ttl_s:.0f} s",
            )
            return False
    ctx.state.lock = None
    ctx.timeline.record(step, EventKind.INFO, f"rollback lock released ({why})")
    return True


@contextmanager
def step_span(ctx: RunContext, step: str, message: str = "", **data: Any) -> Iterator[None]:
    """Run a step's body inside a timeline span; on any failure release the lock, then re-raise."""
    try:
        with ctx.timeline.span(step, message, **data):
            yield
    except BaseException:
        release_lock(ctx, step, why=f"{step} failed")
        raise
