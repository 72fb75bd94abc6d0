"""Holding the release lock through a run: take it, renew it, and check it before a change.

The Lease (``adapters/lease.py``) frees itself ``lock_ttl`` after its last renewal, so a run
that crashes blocks the next one for at most that long (a minute by default). A live run
therefore renews it: at the start of every step (the ``@runbook_step`` frame), in the recovery
poll loop, and during the calls that can block for longer than the TTL (the "yes" prompt, the
rollout watch, ``helm rollback``, ``migrate down``), where ``keep_renewed`` renews it from a
small daemon thread. Before a step that changes the cluster the frame checks that the lock is
still this run's (``check_lock``): a lock taken over or released under the run stops the step
before it changes anything (``LockLost``, naming who holds it now); a lock this run gave back
after a failed step is taken again if it is free (``LockHeld`` otherwise), so re-running a
step's cell never acts without the lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runbook_lib.adapters.lease import LeaseState, LockInfo, ReleaseLock
from runbook_lib.adapters.processes import host_name, process_started, this_process
from runbook_lib.core.run_identity import RunIdentity, process_gone
from runbook_lib.errors import AdapterError, LockLost
from runbook_lib.record.facts import LockTaken, RunFacts, record_fact
from runbook_lib.record.timeline import EventKind, Timeline
from runbook_lib.steps.context import RunContext

__all__ = [
    "check_lock",
    "holder_gone",
    "keep_renewed",
    "make_lock",
    "renew_every",
    "renew_lock",
    "run_identity",
    "take_lock",
]

# Renew at a third of the TTL: two renewals may fail (an API blip) before the lock frees itself.
_RENEWALS_PER_TTL = 3.0


def renew_every(ttl_s: float) -> float:
    """Seconds between renewals for a lock that frees itself ``ttl_s`` after the last one."""
    return ttl_s / _RENEWALS_PER_TTL


def run_identity(ctx: RunContext) -> RunIdentity:
    """This run as the Lease names it: holder name, incident, this process, run id."""
    host, pid, started = this_process()
    settings = ctx.settings
    return RunIdentity(
        settings.lock.lock_holder, settings.records.incident_id, host, pid, started, ctx.run_id
    )


def make_lock(ctx: RunContext) -> ReleaseLock:
    """The run's lock object (no API call): holder process, TTL, incident, evidence folder."""
    settings = ctx.settings
    identity = run_identity(ctx)
    return ReleaseLock(
        ctx.kube,
        namespace=settings.target.namespace,
        release=settings.target.release,
        holder=identity.holder,
        ttl_s=settings.lock.lock_ttl,
        incident_id=settings.records.incident_id,
        evidence_dir=str(ctx.incident_dir.resolve()),
        identity=identity,
    )


def holder_gone(state: LeaseState) -> str:
    """Why the Lease's holder is provably gone, "" when it may still be running.

    Gone: it ran on this host and its process no longer exists (or its pid now belongs to a
    process started at another time), or its own timeline, in the evidence folder the Lease
    names, says that run ended. Anything else (another host, a Lease without a process) may
    be alive: the TTL or a deliberate takeover decides.
    """
    here = host_name()
    started_now = process_started(state.pid) if state.host == here and state.pid > 0 else None
    why = process_gone(
        host=state.host,
        pid=state.pid,
        started=state.process_started,
        here=here,
        started_now=started_now,
    )
    if why or not (state.run_id and state.evidence_dir):
        return why
    path = Path(state.evidence_dir) / "timeline.jsonl"
    try:
        if not path.is_file() or path.is_symlink():
            return ""
    except OSError:
        return ""
    facts = RunFacts.read(Timeline(path).events, run=state.run_id)
    if facts.started_at is not None and facts.ended:
        return f"its timeline says its run ended ({facts.outcome.value})"
    return ""


def take_lock(ctx: RunContext, step: str) -> LockInfo:
    """Take the release's Lease for this run (preflight; a re-run cell after a failure).

    Records ``LockTaken`` (this run's process and run id; the takeover and its reason, when
    there was one: a holder provably gone is taken over at once, ``holder_gone``). Raises
    ``LockHeld`` (who holds it, since when, when it frees itself, how to take it over),
    ``ApiError``.
    """
    settings = ctx.settings
    lock = make_lock(ctx)
    info = lock.acquire(
        ctx.now(), takeover_reason=settings.lock.lock_takeover_reason, gone=holder_gone
    )
    ctx.live.lock = lock
    if info.warning:
        ctx.timeline.record(step, EventKind.WARNING, info.warning)
    who = lock.identity
    assert who is not None
    record_fact(
        ctx.timeline,
        step,
        LockTaken(
            holder=lock.holder,
            lease=lock.where,
            ttl_s=settings.lock.lock_ttl,
            takeover=info.takeover,
            previous_holder=info.previous_holder or "",
            reason=info.reason,
            run_id=who.run_id,
            host=who.host,
            pid=who.pid,
            process_started=who.process_started,
        ),
        f"took Lease {lock.where} as {settings.lock.lock_holder}, {who.describe()} (frees "
        f"itself {settings.lock.lock_ttl:g} s after the last renewal; renewed while the run "
        "works)",
    )
    return info


def renew_lock(ctx: RunContext, step: str, *, force: bool = False) -> None:
    """Renew the lock if this run holds one and it is due (best effort, for steps that read).

    A lock found lost is a recorded warning here (the next step that changes the cluster
    stops on it); an API failure is a warning too (the lock holds until ``lock_ttl``).
    """
    lock = ctx.live.lock
    if lock is None or ctx.dry_run:
        return
    # Steps in quick succession do not each renew: once per renewal interval is enough.
    if not force and time.monotonic() - lock.renewed_monotonic < renew_every(lock.ttl_s):
        return
    try:
        lock.renew(ctx.now())
    except LockLost as err:
        ctx.timeline.record(
            step, EventKind.WARNING, f"rollback lock lost: {err}", holder=err.holder or ""
        )
        return
    except AdapterError as err:
        ctx.timeline.record(step, EventKind.WARNING, f"could not renew the rollback lock: {err}")
        return


def check_lock(ctx: RunContext, step: str) -> None:
    """Before a step that changes the cluster: the lock must be this run's, now.

    Takes the lock again when this run gave it back after a failed step (``LockHeld`` when
    another run holds it); renews it otherwise, raising ``LockLost`` (naming the holder now)
    when it was taken over or released under the run. Nothing has changed when it raises.
    """
    if ctx.dry_run:
        return
    lock = ctx.live.lock
    if lock is None:
        take_lock(ctx, step)
        return
    lock.renew(ctx.now())


@contextmanager
def keep_renewed(ctx: RunContext) -> Iterator[None]:
    """Renew the lock from a daemon thread while the block runs (a call that may block).

    A thread, because the blocking call cannot renew: ``input()`` waits as long as the
    person does, and a watch, ``helm rollback`` or ``migrate down`` may take longer than
    ``lock_ttl`` in one call. The thread only renews (a lost lock ends it; the frame's check
    before the next change reports it) and stops when the block ends, never outliving it.
    """
    lock = ctx.live.lock
    if lock is None or ctx.dry_run:
        yield
        return
    stop = threading.Event()
    interval = renew_every(lock.ttl_s)

    def renew() -> None:
        while not stop.wait(interval):
            try:
                lock.renew(ctx.now())
            except LockLost:
                return
            except AdapterError:
                continue  # the API may come back before the TTL runs out

    thread = threading.Thread(target=renew, name=f"renew-{lock.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5.0)
