"""Post a message through every configured notifier: the start and the escalation both use it."""

from __future__ import annotations

from runbook_lib.record.timeline import EventKind
from runbook_lib.steps.context import RunContext

__all__ = ["broadcast"]

# A second attempt catches a dropped connection; more would hold up the rollback.
_RETRY_PAUSE_S = 1.0


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
                    step,
                    EventKind.WARNING,
                    f"notification via {name} failed (attempt {attempt} of 2): "
                    f"{type(err).__name__}: {err}",
                )
                # A 4xx (revoked webhook) will not get better a second later.
                if attempt == 1 and getattr(err, "retryable", True):
                    ctx.sleep(_RETRY_PAUSE_S)
                    continue
                failed.append(name)
            else:
                delivered.append(name)
            break
    return delivered, failed
