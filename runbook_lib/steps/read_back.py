"""The cluster read back: what is so after ``helm rollback`` was cut off, or its run crashed.

"The step did not finish" is not a fact about the release: Helm may have applied the rollback
a second after it started and been killed thirty seconds later. So whenever ``helm rollback``
did not end cleanly (its timeout, a signal, a failure), whenever a run that stopped without an
ending is salvaged, and whenever a later run seals a crashed one, ``helm history`` and the pods
are read and recorded as a ``ClusterReadBack`` fact whose sentence every ending repeats.

``read_back_if_cut_off`` is the entry point for whoever ends a run from outside its kernel
(``runbook run`` after the kernel died or was killed mid-rollback).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from runbook_lib.core import readable
from runbook_lib.core.read_back import read_back
from runbook_lib.errors import CommandFailed, RunbookError
from runbook_lib.record.facts import ClusterReadBack, RunFacts, record_fact
from runbook_lib.record.timeline import EventKind, Timeline
from runbook_lib.steps.context import RunContext

__all__ = [
    "READ_BACK_TIMEOUT_S",
    "cut_off_reason",
    "how_it_ended",
    "interrupts_deferred",
    "read_back_if_cut_off",
    "read_cluster_back",
]

# Each read (helm history, the pod list) gets at most this long: a run being stopped must
# still end within the grace its supervisor gives it (``runbook run``: 20 s after a signal).
READ_BACK_TIMEOUT_S = 15.0


def _clock(at: datetime) -> str:
    return f"{at.astimezone(UTC):%H:%M:%S} UTC"


def cut_off_reason(started_at: datetime | None, now: datetime | None, how: str) -> str:
    """ "helm rollback was started at 14:00:01 UTC and killed after 40 s (...)".

    ``now`` None: how long it ran is not known (it never reported back).
    """
    if started_at is None:
        return f"helm rollback {how}"
    text = f"helm rollback was started at {_clock(started_at)} and {how}"
    if now is None:
        return text
    return f"{text} after {readable.duration(max(0.0, (now - started_at).total_seconds()))}"


def how_it_ended(err: BaseException) -> str:
    """What stopped ``helm rollback``, in the words of ``cut_off_reason``."""
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    if isinstance(err, CommandFailed) and err.timeout_s is not None:
        return "killed"
    if isinstance(err, CommandFailed) and err.returncode is not None:
        return f"failed with exit status {err.returncode}"
    return f"stopped by {type(err).__name__}"


@contextmanager
def interrupts_deferred() -> Iterator[list[int]]:
    """SIGINT is noted, not raised, while the cluster is read back (a few seconds, bounded).

    ``runbook run`` interrupts the kernel again every 2 s until the notebook stops; without
    this the second interrupt would cut off the read meant to say what the first one left.
    Yields the list of signals received meanwhile. Only the main thread can set handlers;
    elsewhere nothing is deferred.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


def read_cluster_back(
    ctx: RunContext,
    step: str,
    *,
    reason: str,
    facts: RunFacts | None = None,
    timeline: Timeline | None = None,
) -> ClusterReadBack | None:
    """Read ``helm history`` and the release's pods; record what is so as ``ClusterReadBack``.

    ``facts`` are the run the read is about (default: this run's), whose ``TargetResolved``
    and ``RollbackStarted`` say where the release started from and where it was going;
    ``timeline`` is where to record it (default: this run's), on behalf of ``facts.run``.
    Returns the fact, or None when the cluster could not be read (a recorded warning: whether
    the rollback was applied is then unknown). Never raises a ``RunbookError``.
    """
    target_settings = ctx.settings.target
    about = ctx.facts if facts is None else facts
    into = ctx.timeline if timeline is None else timeline
    run = about.run if about.run and not about.run.startswith("#") else into.run
    started = about.rollback_started
    target = about.target
    start = started.from_revision if started else (target.current_revision if target else None)
    goal = started.to_revision if started else (target.target_revision if target else None)
    try:
        history = ctx.helm.history(
            target_settings.release,
            timeout_s=min(target_settings.helm_timeout, READ_BACK_TIMEOUT_S),
        )
        pods = ctx.kube.pods(target_settings.namespace, ctx.pod_selector)
    except (RunbookError, OSError, ValueError) as err:  # e.g. a kubeconfig that cannot be read
        into.record_for(
            run,
            step,
            EventKind.WARNING,
            f"{reason}; the cluster could not be read back ({type(err).__name__}: {err}): "
            "whether the rollback was applied is unknown",
            read_back_failed=True,
        )
        return None
    found = read_back(
        history,
        reason=reason,
        started_from=start,
        target=goal,
        pod_images=[image for pod in pods for image in pod.images],
        expected_images=target.expected_images if target else (),
        helm_started_at=about.rollback_started_at,
    )
    fact = ClusterReadBack.of(found, reason=reason, read_at=ctx.now())
    record_fact(into, step, fact, f"cluster read back: {found.sentence}", run=run)
    return fact


def read_back_if_cut_off(ctx: RunContext, step: str = "runbook_run") -> ClusterReadBack | None:
    """For whoever ends a run from outside its kernel: if its ``helm rollback`` started and
    neither reported back nor was read back (the kernel died or was killed mid-rollback),
    read the cluster back now and record it on the run's timeline. None otherwise.
    Never raises a ``RunbookError``.
    """
    facts = ctx.facts
    if facts.dry_run or not facts.cut_off:
        return None
    how = "never reported back: its run stopped"
    if facts.failure is not None:
        how += f" ({facts.failure.kind}: {facts.failure.error_type})"
    return read_cluster_back(ctx, step, reason=cut_off_reason(facts.rollback_started_at, None, how))
