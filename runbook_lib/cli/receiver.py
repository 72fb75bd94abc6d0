"""The alert receiver behind ``runbook serve``: from an Alertmanager alert to a run and a report.

For each firing alert naming a release (labels ``release`` and ``namespace``, as ``runbook
rules`` writes them) the policy (``core.alert_policy``) picks the action:

- automatic rollback: the rollback notebook runs headlessly with ``confirm``. It assesses first
  ("When to Rollback", the library's exact semantics and deploy window) and changes nothing
  unless its verdict is ``rollback``; inconclusive stops (``on_inconclusive`` stays ``stop``).
- assess and notify (release not allowed, or the circuit breaker open): the same notebook with
  ``dry_run``; the notification carries the verdict, the evidence and the exact
  ``runbook run rollback ...`` command for a person.
- notify only (the release is in no policy entry): nothing runs.

One run per release at a time (``core.receiver_state``; the notebook's Lease guards against
people and other receivers), a bounded queue, and duplicates, resolved alerts and alerts
without a release recorded and ignored. Every decision is appended to ``journal.jsonl`` in the
state folder before it is acted on, so a restart knows which alerts were handled, which runs
counted towards the breaker, and which run was interrupted: that run's child is stopped, its
evidence sealed (``MANIFEST.sha256``) and reported, and it is never started again.
Notifications: one when a run starts, one when it ends (what fired, where, who started it,
outcome, durations, evidence folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from runbook_lib.adapters.notebook_runner import RunResult, is_running, terminate
from runbook_lib.adapters.notify import ConsoleNotifier, FileNotifier, Notifier, SlackWebhook
from runbook_lib.adapters.webhook import Accepted
from runbook_lib.core.alert_policy import Action, Policy, plan_run, rollback_command
from runbook_lib.core.alerts import Alert, Notification
from runbook_lib.core.receiver_state import Disposition, ReceiverState, ReleaseKey
from runbook_lib.core.redact import redact_value
from runbook_lib.errors import AdapterError, RunbookError
from runbook_lib.evidence import files
from runbook_lib.evidence.manifest import seal

__all__ = ["CHANGED_OUTCOMES", "Receiver", "Runner", "notifiers_from_policy"]

# Outcomes of an automatic run that changed the cluster: they count towards the breaker.
CHANGED_OUTCOMES = frozenset(
    {"recovered", "not_recovered", "release_changed", "failed", "interrupted"}
)
# Verdicts after which the release's next alert is assessed again (no cooldown): the run
# changed nothing, on data that ended before later alerts fired.
REASSESS_VERDICTS = frozenset({"no_rollback", "inconclusive"})
RECENT_RUNS = 200  # kept for /runs
RETRY_AFTER_S = 10.0  # a full queue asks Alertmanager to come back after this


class Runner(Protocol):
    def __call__(
        self, parameters: Mapping[str, Any], *, on_start: Callable[[int], None]
    ) -> RunResult: ...


def notifiers_from_policy(policy: Policy) -> list[Notifier]:
    """Slack, file and console channels as the policy's ``notify`` section names them."""
    notify = policy.notify
    found: list[Notifier] = []
    if notify.get("slack_webhook_url"):
        found.append(SlackWebhook(str(notify["slack_webhook_url"])))
    if notify.get("notify_file"):
        found.append(FileNotifier(str(notify["notify_file"])))
    if notify.get("console", True) not in (False, "False", "false"):
        found.append(ConsoleNotifier())
    return found


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Stats:
    received: Counter[str] = field(default_factory=Counter)  # by disposition
    runs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (action, outcome)
    to_decision_s: list[float] = field(default_factory=list)
    to_end_s: list[float] = field(default_factory=list)


class Receiver:
    """Implements ``adapters.webhook.ReceiverApi``; ``start()`` the workers, ``close()`` them."""

    def __init__(
        self,
        policy: Policy,
        *,
        state_dir: Path,
        output_dir: Path,
        runner: Runner,
        notifiers: Sequence[Notifier] = (),
        capacity: int = 100,
        cooldown: float = 300.0,
        workers: int = 2,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.policy = policy
        self.state_dir = Path(state_dir)
        self.output_dir = Path(output_dir).resolve()
        self.runner = runner
        self.notifiers = list(notifiers)
        self.clock = clock
        self.state = ReceiverState(capacity=capacity, cooldown=cooldown)
        self.stats = _Stats()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_RUNS)
        self.auto_rollbacks: dict[ReleaseKey, list[datetime]] = {}
        self._lock = threading.Condition()
        self._journal_lock = threading.Lock()
        self._received_at: dict[ReleaseKey, datetime] = {}
        self._closing = False
        self._threads = [
            threading.Thread(target=self._work, name=f"runbook-run-{i}", daemon=True)
            for i in range(workers)
        ]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._journal_path = self.state_dir / "journal.jsonl"
        self._journal_file: TextIO | None = None
        self._recover()

    # --- journal -------------------------------------------------------------------------

    def _journal(self, event: str, *, sync: bool = False, **fields: Any) -> None:
        line = json.dumps({"event": event, "at": self.clock().isoformat(), **fields}, default=str)
        with self._journal_lock:
            if self._journal_file is None:
                self._journal_file = self._journal_path.open("a", encoding="utf-8")
            self._journal_file.write(line + "\n")
            self._journal_file.flush()
            if sync:
                # Runs are on disk before they start: a crash never forgets a started run.
                os.fsync(self._journal_file.fileno())

    def _read_journal(self) -> Iterator[dict[str, Any]]:
        try:
            lines = self._journal_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if isinstance(entry, dict):
                yield entry

    def _recover(self) -> None:
        started: dict[str, dict[str, Any]] = {}
        keys: list[str] = []
        for entry in self._read_journal():
            kind = entry.get("event")
            if kind == "alert" and entry.get("disposition") in ("queued", "coalesced"):
                keys.append(str(entry.get("key")))
            elif kind == "run_started":
                started[str(entry["run_id"])] = entry
                keys.append(str(entry.get("alert_key")))
                self.recent.append(self._row(entry))
            elif kind == "run_pid" and str(entry.get("run_id")) in started:
                started[str(entry["run_id"])]["pid"] = entry.get("pid")
            elif kind == "run_finished":
                run = started.pop(str(entry["run_id"]), None)
                if run is not None:
                    self._count_finished(run, entry)
        self.state.remember_keys(keys)
        for run in started.values():
            self._finish_interrupted(run)

    def _finish_interrupted(self, run: dict[str, Any]) -> None:
        pid = run.get("pid")
        if isinstance(pid, int) and is_running(pid):
            terminate(pid)
        incident_dir = Path(str(run.get("incident_dir") or ""))
        sealed = ""
        if incident_dir.is_dir():
            key = str(run.get("signing_key") or "") or None
            sealed = (
                f"; evidence in {incident_dir}: {seal(incident_dir, signing_key=key).sentence()}"
            )
        finished = {
            "run_id": run["run_id"],
            "outcome": "interrupted",
            "status": None,
            "note": "the receiver stopped during this run; it is not started again",
        }
        self._journal("run_finished", sync=True, **finished)
        self._count_finished(run, finished)
        self._notify(
            f"runbook serve: run {run['run_id']} for release {run.get('release')} "
            f"(namespace {run.get('namespace')}) was interrupted when the receiver stopped; "
            f"not started again{sealed}. Check the release before acting: "
            f"{run.get('command', '')}"
        )

    def _count_finished(self, run: Mapping[str, Any], finished: Mapping[str, Any]) -> None:
        outcome = str(finished.get("outcome") or "unknown")
        action = str(run.get("action") or "")
        self.stats.runs[(action, outcome)] += 1
        if action == Action.AUTO_ROLLBACK and outcome in CHANGED_OUTCOMES:
            key = (str(run.get("namespace")), str(run.get("release")))
            self.auto_rollbacks.setdefault(key, []).append(_instant(run.get("at")))
        for row in self.recent:
            if row["run_id"] == run["run_id"]:
                row["outcome"] = outcome

    @staticmethod
    def _row(run: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "run_id": run["run_id"],
            "received_at": run.get("received_at"),
            "release": run.get("release"),
            "namespace": run.get("namespace"),
            "alert": run.get("alert_name"),
            "action": run.get("action"),
            "outcome": "running",
            "evidence": run.get("incident_dir") or "",
        }

    # --- ReceiverApi ---------------------------------------------------------------------

    def accept(self, notification: Notification) -> Accepted:
        """File each alert of a post (journaled); wake a worker for new runs."""
        dispositions: list[str] = []
        full = False
        with self._lock:
            for alert in notification.alerts:
                disposition = self.state.offer(alert, self.clock())
                self.stats.received[disposition.value] += 1
                dispositions.append(disposition.value)
                full = full or disposition is Disposition.FULL
                if disposition is not Disposition.FULL:
                    self._journal(
                        "alert",
                        key=alert.key,
                        disposition=disposition.value,
                        release=alert.release,
                        namespace=alert.namespace,
                        alertname=alert.name,
                        status=alert.status,
                    )
                if disposition is Disposition.QUEUED:
                    self._received_at[(alert.namespace, alert.release)] = self.clock()
            self._lock.notify_all()
        return Accepted(tuple(dispositions), RETRY_AFTER_S if full else None)

    def healthy(self) -> bool:
        return not self._closing and all(t.is_alive() for t in self._threads if t.ident)

    def runs(self) -> Sequence[Mapping[str, Any]]:
        with self._lock:
            return [dict(r) for r in reversed(self.recent)]

    def metrics_text(self) -> str:
        with self._lock:
            lines = [
                "# HELP runbook_alerts_received_total Alerts received, by what became of them.",
                "# TYPE runbook_alerts_received_total counter",
            ]
            lines += [
                f'runbook_alerts_received_total{{disposition="{d.value}"}} '
                f"{self.stats.received[d.value]}"
                for d in Disposition
            ]
            lines += [
                "# HELP runbook_runs_total Runs started by alerts, by action and outcome.",
                "# TYPE runbook_runs_total counter",
            ]
            lines += [
                f'runbook_runs_total{{action="{a}",outcome="{o}"}} {n}'
                for (a, o), n in sorted(self.stats.runs.items())
            ]
            lines += [
                "# HELP runbook_queue_depth Releases waiting for a run.",
                "# TYPE runbook_queue_depth gauge",
                f"runbook_queue_depth {self.state.depth}",
                "# HELP runbook_runs_running Runs in progress.",
                "# TYPE runbook_runs_running gauge",
                f"runbook_runs_running {len(self.state.running)}",
            ]
            for name, values, text in (
                ("alert_to_decision", self.stats.to_decision_s, "alert received to decision"),
                ("alert_to_end", self.stats.to_end_s, "alert received to end of run"),
            ):
                lines += [
                    f"# HELP runbook_{name}_seconds Time from {text}.",
                    f"# TYPE runbook_{name}_seconds summary",
                    f"runbook_{name}_seconds_sum {sum(values):.3f}",
                    f"runbook_{name}_seconds_count {len(values)}",
                ]
        return "\n".join(lines) + "\n"

    # --- workers -------------------------------------------------------------------------

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        for thread in self._threads:
            if thread.ident:
                thread.join(timeout_s)
        with self._journal_lock:
            if self._journal_file is not None:
                self._journal_file.close()
                self._journal_file = None

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """True once nothing waits or runs (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self.state.waiting or self.state.running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.2))
        return True

    def _work(self) -> None:
        while True:
            with self._lock:
                job = self.state.take()
                while job is None and not self._closing:
                    self._lock.wait(1.0)
                    job = self.state.take()
                if job is None:
                    return
            release, waiting = job
            verdict = ""
            try:
                verdict = self._run(waiting.first, waiting.more)
            except Exception as err:  # a worker must survive any one run's failure
                self._notify(f"runbook serve: internal error handling {waiting.first.key}: {err}")
            finally:
                with self._lock:
                    later = self.state.done(
                        release, self.clock(), reassess=verdict in REASSESS_VERDICTS
                    )
                    self._lock.notify_all()
                if later is not None:
                    self._journal("reassess", key=later.key, alertname=later.name,
                                  after_verdict=verdict)  # fmt: skip

    def _run(self, alert: Alert, more: int) -> str:
        """One run for ``alert``; returns its verdict ("" when none was reached or run)."""
        received = self._received_at.pop((alert.namespace, alert.release), None) or self.clock()
        with self._lock:
            history = list(self.auto_rollbacks.get((alert.namespace, alert.release), ()))
        now = self.clock()
        plan = plan_run(
            self.policy, alert.release, alert.namespace, auto_rollbacks=history, now=now
        )
        incident_id = f"alert-{alert.release}-{now:%Y%m%dT%H%M%S%fZ}"[:64]
        parameters = {
            **plan.parameters,
            "incident_id": incident_id,
            "output_dir": str(self.output_dir),
        }
        command = rollback_command({k: v for k, v in parameters.items() if k != "output_dir"})
        what = (
            f"{alert.name or 'alert'} fired for release {alert.release} (namespace "
            f"{alert.namespace}) at {alert.starts_at.isoformat()}"
        )
        cluster = plan.parameters.get("expected_cluster") or "the policy's cluster"
        if plan.action is Action.NOTIFY_ONLY:
            self._journal("notify_only", key=alert.key, reason=plan.reason, command=command)
            with self._lock:
                self.stats.runs[(plan.action.value, "notified")] += 1
            self._notify(
                f"runbook serve: {what}; nothing run: {plan.reason}. To act by hand: {command}"
            )
            return ""
        incident_dir = self.output_dir / incident_id
        run = {
            "run_id": incident_id,
            "release": alert.release,
            "namespace": alert.namespace,
            "alert_name": alert.name,
            "alert_key": alert.key,
            "action": plan.action.value,
            "reason": plan.reason,
            "incident_dir": str(incident_dir),
            "received_at": received.isoformat(),
            "command": command,
            # The policy's key (or "": RUNBOOK_SIGNING_KEY), for sealing after a restart.
            "signing_key": str(parameters.get("signing_key") or ""),
        }
        # The alert that started the run travels with the evidence (sealed with it); written
        # like every evidence file (0640, folders 0750, never through a symlink), redacted.
        files.write_text(
            incident_dir,
            "alert.json",
            json.dumps(
                redact_value({"alert": alert.to_json_dict(), "also_received": more, **run}),
                indent=2,
            )
            + "\n",
        )
        self._journal("run_started", sync=True, **run)
        with self._lock:
            self.recent.append(self._row({**run, "at": now.isoformat()}))
        mode = (
            "rolls back if the verdict says so"
            if plan.action is Action.AUTO_ROLLBACK
            else ("assesses only (dry run)")
        )
        self._notify(
            f"runbook serve: {what}; started by Alertmanager via runbook serve on {cluster}: "
            f"run {incident_id} {mode} ({plan.reason}); evidence: {incident_dir}"
        )

        def on_start(pid: int) -> None:
            self._journal("run_pid", sync=True, run_id=incident_id, pid=pid)

        result = self.runner(parameters, on_start=on_start)
        ended = self.clock()
        outcome = result.outcome or ("failed" if result.status else "unknown")
        finished = {
            "run_id": incident_id,
            "outcome": outcome,
            "verdict": result.verdict,
            "status": result.status,
            "wall_s": round(result.wall_s, 3),
        }
        self._journal("run_finished", sync=True, **finished)
        with self._lock:
            self._count_finished({**run, "at": now.isoformat()}, finished)
            self.stats.to_end_s.append((ended - received).total_seconds())
            self.stats.to_decision_s.append((now - received).total_seconds())
        took = f"alert to end {(ended - received).total_seconds():.1f} s"
        if plan.action is Action.AUTO_ROLLBACK:
            # Stopped before recovery (inconclusive data, a refused check, a failure): a
            # person takes over, with the command that continues where the run stopped.
            handover = (
                f" A person decides from here: {command}"
                if outcome
                in (
                    "inconclusive",
                    "refused",
                    "failed",
                    "not_recovered",
                    "release_changed",
                    "unknown",
                )
                else ""
            )
            text = (
                f"runbook serve: run {incident_id} for {alert.release} ({alert.namespace}) "
                f"ended: outcome {outcome}, verdict {result.verdict or 'not reached'}, exit "
                f"{result.status}; {took}; evidence: {incident_dir}.{handover}"
            )
        else:
            advice = (
                f" The verdict is rollback: to roll back, run: {command}"
                if result.verdict == "rollback"
                else ""
            )
            text = (
                f"runbook serve: assessed {alert.release} ({alert.namespace}) without changing "
                f"anything ({plan.reason}): verdict {result.verdict or 'not reached'}, "
                f"outcome {outcome}; {took}; evidence: {incident_dir}.{advice}"
            )
        self._notify(text)
        return result.verdict or ""

    def _notify(self, text: str) -> None:
        for notifier in self.notifiers:
            # A failed notification never blocks a run; the journal has every text.
            with contextlib.suppress(AdapterError, RunbookError, OSError):
                notifier.post(text)
        self._journal("notified", text=text)


def _instant(value: object) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return _utcnow()
