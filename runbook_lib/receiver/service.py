"""The alert receiver behind ``runbook serve``: from an Alertmanager alert to a run and a report.

For each firing alert naming a release (labels ``release`` and ``namespace``, as ``runbook
rules`` writes them, valid Kubernetes names) the policy (``core.alert_policy``) picks the
action: an automatic rollback (the notebook with ``confirm``: it still assesses first and
changes nothing unless its verdict is ``rollback``), an assessment in a dry run with a
notification carrying the command (release not allowed, circuit breaker open), or a
notification only (the release is in no policy entry).

What an operator may rely on (docs/ALERTS.md):

- **Durable before acknowledged.** ``accept`` answers only after its journal lines are on
  disk (``Journal.sync``); a journal that cannot be written turns every post into a 503 and
  ``/healthz`` unhealthy. A run is dispatched only after its ``run_started`` line is durable.
- **Nothing accepted is lost, nothing runs twice.** After any stop, ``replay`` re-queues the
  alerts accepted and not started, and reconciles the runs started and not finished: a child
  still holding its lock or a Job still running is waited for, one that ended while the
  receiver was down is recorded with the outcome its timeline tells, one that was planned and
  never started is started now, and one killed without an ending is sealed as interrupted.
- **Graceful stop.** ``begin_shutdown`` (first SIGTERM) takes no new work and answers posts
  503; ``close`` gives the runs in progress ``grace_s`` to end, then stops the local ones
  (they record the interrupt and seal their evidence) and hands Jobs back to the next start;
  ``stop_now`` (second signal) skips what is left of the grace.

One run per release at a time (``core.receiver_state``; the notebook's Lease guards against
people and other receivers); the journal is compacted when it grows past ``compact_bytes``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook_lib.adapters.notify import Notifier
from runbook_lib.adapters.webhook import Accepted
from runbook_lib.core.alert_policy import Policy
from runbook_lib.core.alerts import Alert, Notification, read_alert
from runbook_lib.core.escape import line
from runbook_lib.core.receiver_state import (
    Disposition,
    ReceiverState,
    ReleaseKey,
    Waiting,
    label_problem,
)
from runbook_lib.errors import AdapterError, ParameterError, RunbookError
from runbook_lib.receiver.dispatch import Dispatch
from runbook_lib.receiver.journal import Entry, Journal
from runbook_lib.receiver.replay import Replayed, compacted, replay
from runbook_lib.receiver.runs import CHANGED_OUTCOMES, RunLife
from runbook_lib.receiver.status import RECENT_RUNS, Ledger, Stats, run_row

__all__ = ["RETRY_AFTER_S", "Receiver"]

RETRY_AFTER_S = 10.0  # a full queue, or a stopping receiver, asks Alertmanager to come back
COMPACT_BYTES = 8 * 1024 * 1024


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Receiver:
    """Implements ``adapters.webhook.ReceiverApi``; ``start()`` the workers, ``close()``."""

    def __init__(
        self,
        policy: Policy,
        *,
        state_dir: Path,
        output_dir: Path,
        dispatch: Dispatch,
        notifiers: Sequence[Notifier] = (),
        capacity: int = 100,
        cooldown: float = 300.0,
        workers: int = 2,
        grace_s: float = 120.0,
        compact_bytes: int = COMPACT_BYTES,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.policy = policy
        self.state_dir = Path(state_dir)
        self.dispatch = dispatch
        self.notifiers = list(notifiers)
        self.grace_s = grace_s
        self.compact_bytes = compact_bytes
        self.clock = clock
        self.state = ReceiverState(capacity=capacity, cooldown=cooldown)
        self.ledger = Ledger()
        self.journal = Journal(self.state_dir / "journal.jsonl", clock=clock)
        self.life = RunLife(
            policy=policy,
            output_dir=Path(output_dir).resolve(),
            dispatch=dispatch,
            journal=self.journal,
            ledger=self.ledger,
            notify=self._notify,
            clock=clock,
        )
        self._lock = threading.Condition()  # the state: what waits, what runs
        self._received_at: dict[ReleaseKey, datetime] = {}
        self._no_more_grace = False
        self._threads = [
            threading.Thread(target=self._work, name=f"runbook-run-{i}", daemon=True)
            for i in range(workers)
        ]
        self._recover()

    @property
    def stats(self) -> Stats:
        return self.ledger.stats

    @property
    def auto_rollbacks(self) -> dict[ReleaseKey, list[datetime]]:
        return self.ledger.auto_rollbacks

    # --- restart -------------------------------------------------------------------------

    def _recover(self) -> None:
        replayed = replay(self.journal.entries(), remember=self.state.remember)
        waiting = []
        for pending in replayed.pending:
            with contextlib.suppress(ParameterError):
                waiting.append(Waiting(read_alert(pending.alert), pending.more))
        resumed: list[tuple[Entry, Alert]] = []
        lost: list[Entry] = []
        for run in replayed.unfinished:
            try:
                resumed.append((run, read_alert(run.get("alert"))))
            except ParameterError:
                lost.append(run)  # a line without the alert (an older receiver's)
        self.state.restore(
            keys=replayed.seen,
            waiting=waiting,
            running=[alert for _, alert in resumed],
            ended=replayed.ended(),
        )
        for release, entry in replayed.arrived.items():
            with contextlib.suppress(ParameterError):
                self.state.arrived[release] = read_alert(entry.get("alert"))
        self.ledger.auto_rollbacks.update(replayed.automatic_rollbacks(CHANGED_OUTCOMES))
        self.ledger.recent.extend(
            run_row(started, finished) for started, finished in replayed.finished[-RECENT_RUNS:]
        )
        self._threads += [
            threading.Thread(
                target=self._resume,
                args=(run, alert),
                daemon=True,
                name=f"runbook-resume-{run['run_id']}",
            )
            for run, alert in resumed
        ]
        self._compact(replayed)
        with contextlib.suppress(OSError):
            self.journal.write(
                "receiver_started", durable=True, pending=len(waiting), unfinished=len(resumed)
            )
        for run in lost:
            note = "started by an earlier receiver and not resumable: check the release"
            with contextlib.suppress(OSError):
                self.journal.write(
                    "run_finished",
                    durable=True,
                    run_id=run["run_id"],
                    outcome="interrupted",
                    verdict="",
                    changed=None,
                    reassess=False,
                    note=note,
                )
            self._notify(
                f"runbook serve: run {line(str(run['run_id']), limit=80)} was "
                f"{note} ({line(str(run.get('command') or ''), limit=400)})"
            )

    def _compact(self, replayed: Replayed | None = None) -> None:
        def select(entries: list[Entry]) -> list[Entry]:
            found = replayed or replay(entries, remember=self.state.remember)
            return compacted(
                found,
                now=self.clock(),
                breaker_s=self.policy.breaker.period,
                cooldown_s=self.state.cooldown,
                recent=RECENT_RUNS,
            )

        # A journal that cannot be compacted is still a journal: it stays as it is.
        with contextlib.suppress(OSError):
            self.journal.compact(select)

    # --- ReceiverApi ---------------------------------------------------------------------

    def accept(self, notification: Notification) -> Accepted:
        """File each alert of a post; answer once the journal has it (see the docstring)."""
        refused = self._refusal()
        if refused:
            return Accepted((), RETRY_AFTER_S, refused=refused)
        dispositions: list[str] = []
        reasons: list[str] = []
        full = False
        seq = 0
        try:
            with self._lock:
                now = self.clock()
                for alert in notification.alerts:
                    disposition = self.state.offer(alert, now)
                    self.ledger.received(disposition.value)
                    dispositions.append(disposition.value)
                    reasons.append(
                        label_problem(alert) if disposition is Disposition.INVALID else ""
                    )
                    full = full or disposition is Disposition.FULL
                    if disposition is not Disposition.FULL:
                        seq = self.journal.append("alert", **_alert_fields(alert, disposition))
                    if disposition is Disposition.QUEUED:
                        self._received_at[(alert.namespace, alert.release)] = now
                self._lock.notify_all()
            if seq:
                self.journal.sync(seq)
        except OSError as err:
            return Accepted((), RETRY_AFTER_S, refused=f"the journal cannot be written: {err}")
        if self.journal.bytes_written > self.compact_bytes:
            self._compact()
        return Accepted(tuple(dispositions), RETRY_AFTER_S if full else None, tuple(reasons))

    def _refusal(self) -> str:
        if self.life.stopping:
            return "the receiver is stopping"
        if self.journal.broken is not None:
            return f"the journal cannot be written: {self.journal.broken}"
        return ""

    def health(self) -> tuple[bool, str]:
        refused = self._refusal()
        if refused:
            return False, refused
        if not all(t.is_alive() for t in self._threads if t.name.startswith("runbook-run-")):
            return False, "a worker stopped"
        return True, "ok"

    def runs(self) -> Sequence[Mapping[str, Any]]:
        return self.ledger.rows()

    def metrics_text(self) -> str:
        with self._lock:
            return self.ledger.metrics_text(self.state)

    # --- workers -------------------------------------------------------------------------

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """True once nothing waits or runs (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self.state.waiting or self.state.running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def _work(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self.life.stopping or self.journal.broken is not None:
                        return  # what waits stays in the journal for the next start
                    job = self.state.take()
                    if job is not None:
                        break
                    self._lock.wait()
                release, waiting = job
                received = self._received_at.pop(release, None) or self.clock()
            work = functools.partial(self.life.start, waiting.first, waiting.more, received)
            self._guarded(release, work)

    def _resume(self, entry: Entry, alert: Alert) -> None:
        release = (alert.namespace, alert.release)
        self._guarded(release, lambda: self.life.reconcile(entry, alert))

    def _guarded(self, release: ReleaseKey, work: Callable[[], bool | None]) -> None:
        reassess: bool | None = False
        try:
            reassess = work()
        except Exception as err:  # a worker must survive any one run's failure
            self._notify(f"runbook serve: internal error on {release[1]} ({release[0]}): {err}")
        if reassess is None:
            return  # handed back or left for the next start: still the release's run
        with self._lock:
            later = self.state.done(release, self.clock(), reassess=reassess)
            self._lock.notify_all()
        if later is not None:
            with contextlib.suppress(OSError):
                self.journal.write("reassess", durable=True, **_alert_fields(later, None))

    def _notify(self, text: str) -> None:
        for notifier in self.notifiers:
            # A failed notification never blocks a run; the journal has every text.
            with contextlib.suppress(AdapterError, RunbookError, OSError):
                notifier.post(text)
        with contextlib.suppress(OSError):
            self.journal.write("notified", text=text)

    # --- stopping ------------------------------------------------------------------------

    def begin_shutdown(self) -> None:
        """Take no new work: posts are answered 503, workers start nothing new."""
        life = self.life
        with life.changed:
            if life.stopping:
                return
            life.stopping = True
            running = sorted(life.active)
        with self._lock:
            self._lock.notify_all()  # idle workers return
        if self.dispatch.hands_back:
            life.hand_back.set()  # Jobs run on without us
        with contextlib.suppress(OSError):
            self.journal.write("stopping", durable=True, running=running)

    def stop_now(self) -> None:
        """A second signal: no more grace; ``close`` stops the runs at once."""
        with self.life.changed:
            self._no_more_grace = True
            self.life.changed.notify_all()

    def close(self, grace_s: float | None = None) -> None:
        """Stop: ``begin_shutdown``, wait up to ``grace_s`` (default: the receiver's) for the
        runs in progress, then stop local runs (sealed) and hand Jobs back; close the journal."""
        self.begin_shutdown()
        life = self.life
        deadline = time.monotonic() + (self.grace_s if grace_s is None else grace_s)
        with life.changed:
            while life.active and not self._no_more_grace:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                life.changed.wait(left)
            to_stop = list(life.active.values())
        life.hand_back.set()
        stoppers = [
            threading.Thread(target=self.dispatch.stop, args=(spec,), daemon=True)
            for spec in to_stop
        ]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(60)
        for thread in self._threads:
            if thread.ident:
                thread.join(15)
        self.journal.close()


def _alert_fields(alert: Alert, disposition: Disposition | None) -> Entry:
    fields: Entry = {
        "key": alert.key,
        "alertname": line(alert.name, limit=200),
        "status": alert.status,
    }
    problem = label_problem(alert)
    if problem:
        # Not names: kept short and escaped; nothing is run for them.
        fields.update(
            release=line(alert.release, limit=80),
            namespace=line(alert.namespace, limit=80),
            problem=problem,
        )
    else:
        fields.update(release=alert.release, namespace=alert.namespace)
    if disposition is not None:
        fields["disposition"] = disposition.value
    if disposition in (Disposition.QUEUED, Disposition.COALESCED, None):
        fields["alert"] = alert.to_json_dict()
    return fields
