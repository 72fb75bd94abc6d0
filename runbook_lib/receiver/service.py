"""The alert receiver behind ``runbook serve``: from an Alertmanager alert to a run and a report.

For each firing alert naming a release (labels ``release`` and ``namespace``, as ``runbook
rules`` writes them, valid Kubernetes names) the policy (``core.alert_policy``) picks the
action: an automatic rollback (the notebook with ``confirm``: it still assesses first and
changes nothing unless its verdict is ``rollback``), an assessment in a dry run with a
notification carrying the command (release not allowed, circuit breaker open), or a
notification only (the release is in no policy entry).

What an operator may rely on (README, "Alert-driven runs"):

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
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook_lib.adapters.notify import Notifier
from runbook_lib.adapters.webhook import Accepted
from runbook_lib.core.alert_policy import (
    Action,
    Policy,
    incident_id_for,
    plan_run,
    rollback_command,
)
from runbook_lib.core.alerts import Alert, Notification, read_alert
from runbook_lib.core.escape import line
from runbook_lib.core.receiver_state import (
    Disposition,
    ReceiverState,
    ReleaseKey,
    Waiting,
    label_problem,
)
from runbook_lib.core.redact import redact_value
from runbook_lib.core.run_job import credential_parameters
from runbook_lib.errors import AdapterError, CommandFailed, ParameterError, RunbookError
from runbook_lib.evidence import files
from runbook_lib.evidence.manifest import write_manifest
from runbook_lib.receiver import texts
from runbook_lib.receiver.dispatch import Dispatch, DispatchRefused, Liveness, RunSpec
from runbook_lib.receiver.journal import Entry, Journal
from runbook_lib.receiver.outcome import read_run_end
from runbook_lib.receiver.replay import Replayed, compacted, instant, replay
from runbook_lib.receiver.status import Stats, metrics_text, run_row

__all__ = ["CHANGED_OUTCOMES", "RETRY_AFTER_S", "Receiver"]

# Outcomes of an automatic run that may have changed the cluster when its timeline cannot say:
# they count towards the breaker.
CHANGED_OUTCOMES = frozenset(
    {
        "recovered",
        "not_recovered",
        "release_changed",
        "failed",
        "interrupted",
        "incomplete",
        "job_succeeded",
        "job_failed",
        "job_gone",
        "job_timeout",
        "unknown",
    }
)
# Verdicts after which the release's next alert is assessed again (no cooldown): the run
# changed nothing, on data that ended before later alerts fired.
REASSESS_VERDICTS = frozenset({"no_rollback", "inconclusive"})
DISPATCH_FAILED = "dispatch_failed"
RECENT_RUNS = 200  # kept for /runs
RETRY_AFTER_S = 10.0  # a full queue, or a stopping receiver, asks Alertmanager to come back
COMPACT_BYTES = 8 * 1024 * 1024


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Run:
    """A run the receiver is responsible for: its journal line and how to reach it."""

    entry: Entry  # the run_started line (parameters without credentials)
    spec: RunSpec
    alert: Alert
    received: datetime
    more: int = 0  # alerts coalesced into it

    @property
    def run_id(self) -> str:
        return self.spec.run_id


@dataclass
class _Shutdown:
    stopping: bool = False
    now: bool = False  # a second signal: no more grace
    hand_back: threading.Event = field(default_factory=threading.Event)


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
        self.output_dir = Path(output_dir).resolve()
        self.dispatch = dispatch
        self.notifiers = list(notifiers)
        self.grace_s = grace_s
        self.compact_bytes = compact_bytes
        self.clock = clock
        self.state = ReceiverState(capacity=capacity, cooldown=cooldown)
        self.stats = Stats()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_RUNS)
        self.auto_rollbacks: dict[ReleaseKey, list[datetime]] = {}
        self._lock = threading.Condition()
        self._received_at: dict[ReleaseKey, datetime] = {}
        self._active: dict[str, _Run] = {}  # dispatched, being waited for
        self._shutdown = _Shutdown()
        self._threads = [
            threading.Thread(target=self._work, name=f"runbook-run-{i}", daemon=True)
            for i in range(workers)
        ]
        self.journal = Journal(self.state_dir / "journal.jsonl", clock=clock)
        self._recover()

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
        self.auto_rollbacks = replayed.automatic_rollbacks(CHANGED_OUTCOMES)
        for started, finished in replayed.finished[-RECENT_RUNS:]:
            self.recent.append(run_row(started, finished))
        for run, _ in resumed:
            self.recent.append(run_row(run, None))
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
                    self.stats.received[disposition.value] += 1
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
        if self._shutdown.stopping:
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
        with self._lock:
            return [dict(r) for r in reversed(self.recent)]

    def metrics_text(self) -> str:
        with self._lock:
            return metrics_text(self.stats, self.state)

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
                    if self._shutdown.stopping or self.journal.broken is not None:
                        return  # what waits stays in the journal for the next start
                    job = self.state.take()
                    if job is not None:
                        break
                    self._lock.wait()
            release, waiting = job
            self._guarded(release, functools.partial(self._run_new, waiting.first, waiting.more))

    def _resume(self, entry: Entry, alert: Alert) -> None:
        release = (alert.namespace, alert.release)
        self._guarded(release, lambda: self._reconcile(entry, alert))

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

    # --- one run -------------------------------------------------------------------------

    def _run_new(self, alert: Alert, more: int) -> bool | None:
        """Plan, journal and dispatch the run for ``alert``; True when no cooldown follows,
        None when it was left for the next start."""
        release = (alert.namespace, alert.release)
        now = self.clock()
        with self._lock:
            received = self._received_at.pop(release, None) or now
            history = list(self.auto_rollbacks.get(release, ()))
        plan = plan_run(
            self.policy, alert.release, alert.namespace, auto_rollbacks=history, now=now
        )
        run_id = incident_id_for(alert.release, alert.namespace, alert.key, now)
        parameters = {**plan.parameters, "incident_id": run_id, "output_dir": str(self.output_dir)}
        command = rollback_command({k: v for k, v in parameters.items() if k != "output_dir"})
        if plan.action is Action.NOTIFY_ONLY:
            try:
                self.journal.write(
                    "notify_only",
                    durable=True,
                    key=alert.key,
                    release=alert.release,
                    namespace=alert.namespace,
                    reason=plan.reason,
                )
            except OSError as err:
                self._not_journaled(alert, err)
                return None
            with self._lock:
                self.stats.runs[(plan.action.value, "notified")] += 1
            self._notify(texts.notify_only(alert, plan.reason, command))
            return False
        incident_dir = self.output_dir / run_id
        if incident_dir.parent != self.output_dir:  # names were checked; never leave the root
            raise AssertionError(f"incident folder outside {self.output_dir}")
        secret = set(credential_parameters(parameters))
        entry: Entry = {
            "run_id": run_id,
            "release": alert.release,
            "namespace": alert.namespace,
            "alert_name": line(alert.name, limit=200),
            "alert_key": alert.key,
            "alert": alert.to_json_dict(),
            "action": plan.action.value,
            "reason": plan.reason,
            "incident_dir": str(incident_dir),
            "received_at": received.isoformat(),
            "command": command,
            "dispatch": self.dispatch.kind,
            "parameters": {k: v for k, v in parameters.items() if k not in secret},
        }
        try:
            self.journal.write("run_started", durable=True, **entry)
        except OSError as err:
            self._not_journaled(alert, err)
            return None
        run = _Run(
            {**entry, "at": now.isoformat()},
            RunSpec(run_id, alert.release, alert.namespace, parameters, incident_dir),
            alert,
            received,
            more,
        )
        with self._lock:
            self.recent.append(run_row(run.entry, None))
            self.stats.to_start_s.append((now - received).total_seconds())
        self._notify(
            texts.started(
                alert,
                cluster=str(plan.parameters.get("expected_cluster") or "the policy's cluster"),
                run_id=run_id,
                automatic=plan.action is Action.AUTO_ROLLBACK,
                reason=plan.reason,
                evidence=str(incident_dir),
            )
        )
        return self._dispatch_and_wait(run)

    def _not_journaled(self, alert: Alert, err: OSError) -> None:
        # Without its journal line a run must not start: the accepted alert stays in the
        # journal as it was, and the next start runs it.
        self._notify(
            f"runbook serve: the journal cannot be written ({err}); nothing started "
            f"for {alert.release} ({alert.namespace}) until the receiver restarts"
        )

    def _dispatch_and_wait(self, run: _Run, note: str = "") -> bool | None:
        with self._lock:
            stopping = self._shutdown.stopping
        if stopping:  # planned but not started: the next start starts it
            self._notify(
                texts.not_started(
                    run_id=run.run_id, release=run.spec.release, namespace=run.spec.namespace
                )
            )
            return None
        try:
            self._write_alert(run)
        except OSError as err:
            return self._finish(run, outcome=DISPATCH_FAILED, note=f"evidence folder: {err}")
        try:
            dispatched = self.dispatch.start(run.spec)
        except DispatchRefused as err:
            return self._finish(run, outcome=DISPATCH_FAILED, note=err.reason)
        with contextlib.suppress(OSError):  # the run goes on; /healthz says the journal broke
            self.journal.write("run_dispatched", durable=True, run_id=run.run_id, **dispatched)
        return self._wait_and_finish(run, note)

    def _write_alert(self, run: _Run) -> None:
        """The alert that started the run travels with the evidence (sealed with it): written
        like every evidence file (0640, never through a symlink), redacted, once."""
        if (run.spec.incident_dir / "alert.json").exists():
            return
        fields = {k: v for k, v in run.entry.items() if k not in ("alert", "event")}
        document = {"alert": run.entry.get("alert"), "also_received": run.more, **fields}
        files.write_text(
            run.spec.incident_dir,
            "alert.json",
            json.dumps(redact_value(document), indent=2) + "\n",
        )

    def _wait_and_finish(self, run: _Run, note: str = "") -> bool | None:
        with self._lock:
            self._active[run.run_id] = run
        try:
            waited = self.dispatch.wait(run.spec, handed_back=self._shutdown.hand_back)
        finally:
            with self._lock:
                self._active.pop(run.run_id, None)
                self._lock.notify_all()
        if not waited.ended:
            with contextlib.suppress(OSError):
                self.journal.write("handed_back", run_id=run.run_id, state=waited.state)
            return None
        end = read_run_end(run.spec.incident_dir)
        if end is not None and end.ended:
            return self._finish(
                run,
                outcome=end.outcome,
                verdict=end.verdict,
                status=waited.status,
                changed=end.changed_cluster,
                note=note,
            )
        if end is not None:  # a timeline without an ending: killed before it could write one
            return self._finish(
                run,
                outcome="interrupted",
                status=waited.status,
                changed=end.changed_cluster,
                note="left no ending",
                sealed=self._seal(run),
            )
        fallback = {
            "succeeded": "job_succeeded",
            "failed": "job_failed",
            "gone": "job_gone",
            "timeout": "job_timeout" if self.dispatch.kind == "job" else "interrupted",
        }.get(waited.state, "unknown" if waited.status is None else "failed")
        return self._finish(run, outcome=fallback, status=waited.status, note=note)

    def _seal(self, run: _Run) -> str:
        """Seal the evidence of a run that left no ending; says how it went."""
        key = str(run.spec.parameters.get("signing_key") or "") or None
        try:
            write_manifest(run.spec.incident_dir, signing_key=key)
        except (OSError, CommandFailed) as err:
            return f"could not seal {run.spec.incident_dir}: {err}"
        return f"evidence sealed in {run.spec.incident_dir}"

    def _finish(
        self,
        run: _Run,
        *,
        outcome: str,
        verdict: str = "",
        status: int | None = None,
        changed: bool | None = None,
        note: str = "",
        sealed: str = "",
    ) -> bool:
        """Journal, count and report how a run ended; True when no cooldown follows.
        ``sealed`` says how the receiver sealed a run that left no ending."""
        ended_at = self.clock()
        reassess = verdict in REASSESS_VERDICTS or outcome == DISPATCH_FAILED
        if outcome == DISPATCH_FAILED:
            changed = False
        finished = {
            "run_id": run.run_id,
            "outcome": outcome,
            "verdict": verdict,
            "status": status,
            "changed": changed,
            "reassess": reassess,
            "note": note,
        }
        with contextlib.suppress(OSError):
            self.journal.write("run_finished", durable=True, **finished)
        with self._lock:
            self._count(run, {**finished, "at": ended_at.isoformat()})
            self.stats.to_end_s.append((ended_at - run.received).total_seconds())
        self._notify(self._end_text(run, outcome, verdict, status, note, sealed, ended_at))
        return reassess

    def _count(self, run: _Run, finished: Entry) -> None:
        action = str(run.entry.get("action") or "")
        outcome = str(finished["outcome"])
        self.stats.runs[(action, outcome)] += 1
        changed = finished.get("changed")
        if changed is None:
            changed = outcome in CHANGED_OUTCOMES
        if action == Action.AUTO_ROLLBACK and changed:
            started = instant(run.entry.get("at")) or self.clock()
            self.auto_rollbacks.setdefault((run.spec.namespace, run.spec.release), []).append(
                started
            )
        for row in self.recent:
            if row["run_id"] == run.run_id:
                row.update(run_row(run.entry, finished))

    def _end_text(
        self,
        run: _Run,
        outcome: str,
        verdict: str,
        status: int | None,
        note: str,
        sealed: str,
        ended_at: datetime,
    ) -> str:
        command = str(run.entry.get("command") or "")
        evidence = str(run.spec.incident_dir)
        if outcome == DISPATCH_FAILED:
            return texts.dispatch_failed(
                run_id=run.run_id,
                release=run.spec.release,
                namespace=run.spec.namespace,
                reason=note,
                command=command,
            )
        if sealed:
            return texts.interrupted(
                run_id=run.run_id,
                release=run.spec.release,
                namespace=run.spec.namespace,
                sealed=f"; {sealed}",
                command=command,
            )
        took = f"alert to end {(ended_at - run.received).total_seconds():.1f} s"
        if run.entry.get("action") == Action.AUTO_ROLLBACK:
            return texts.ended(
                run_id=run.run_id,
                release=run.spec.release,
                namespace=run.spec.namespace,
                outcome=outcome,
                verdict=verdict,
                status=status,
                took=took,
                evidence=evidence,
                command=command,
                note=note,
            )
        return texts.assessed(
            release=run.spec.release,
            namespace=run.spec.namespace,
            reason=str(run.entry.get("reason") or ""),
            outcome=outcome,
            verdict=verdict,
            took=took,
            evidence=evidence,
            command=command,
            note=note,
        )

    def _reconcile(self, entry: Entry, alert: Alert) -> bool | None:
        """A run the journal says started and did not finish (see the module docstring)."""
        parameters = dict(entry.get("parameters") or {})
        # Credentials were never journaled: they come from the policy as it is now.
        plan = plan_run(
            self.policy, alert.release, alert.namespace, auto_rollbacks=(), now=self.clock()
        )
        parameters.update({k: plan.parameters[k] for k in credential_parameters(plan.parameters)})
        incident_dir = Path(str(entry.get("incident_dir") or self.output_dir / entry["run_id"]))
        spec = RunSpec(
            str(entry["run_id"]), alert.release, alert.namespace, parameters, incident_dir
        )
        received = instant(entry.get("received_at")) or self.clock()
        run = _Run(entry, spec, alert, received)
        liveness = self.dispatch.find(spec)
        where = {"local": "its process", "job": "its Job"}.get(self.dispatch.kind, "it")
        if liveness is Liveness.NEVER:
            self._notify(
                texts.resumed(
                    run_id=spec.run_id,
                    release=alert.release,
                    namespace=alert.namespace,
                    how="it had not started; starting it now",
                )
            )
            return self._dispatch_and_wait(run, note="started after a restart")
        if liveness is Liveness.RUNNING:
            self._notify(
                texts.resumed(
                    run_id=spec.run_id,
                    release=alert.release,
                    namespace=alert.namespace,
                    how=f"{where} is still running; waiting for it",
                )
            )
            return self._wait_and_finish(run, note="waited for after a restart")
        return self._wait_and_finish(run, note="ended while the receiver was down")

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
        with self._lock:
            if self._shutdown.stopping:
                return
            self._shutdown.stopping = True
            self._lock.notify_all()
        if self.dispatch.hands_back:
            self._shutdown.hand_back.set()  # Jobs run on without us
        with self._lock:
            running = sorted(self._active)
        with contextlib.suppress(OSError):
            self.journal.write("stopping", durable=True, running=running)

    def stop_now(self) -> None:
        """A second signal: no more grace; ``close`` stops the runs at once."""
        with self._lock:
            self._shutdown.now = True
            self._lock.notify_all()

    def close(self, grace_s: float | None = None) -> None:
        """Stop: ``begin_shutdown``, wait up to ``grace_s`` (default: the receiver's) for the
        runs in progress, then stop local runs (sealed) and hand Jobs back; close the journal."""
        self.begin_shutdown()
        deadline = time.monotonic() + (self.grace_s if grace_s is None else grace_s)
        with self._lock:
            while self._active and not self._shutdown.now:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            to_stop = list(self._active.values())
        self._shutdown.hand_back.set()
        stoppers = [
            threading.Thread(target=self.dispatch.stop, args=(run.spec,), daemon=True)
            for run in to_stop
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
