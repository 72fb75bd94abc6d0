"""The life of one run the receiver starts: plan, journal, dispatch, wait, record, report.

``RunLife.start(alert)`` plans a release's run from the policy, makes its ``run_started`` line
durable, writes ``alert.json`` into the evidence, dispatches it and waits for its end;
``RunLife.reconcile(entry, alert)`` does the same for a run an earlier receiver journaled and
did not finish (see ``receiver.service``). Either returns True when no cooldown follows (the
run changed nothing: a reassessment may follow), False when one does, and None when the run
was left for the next start (stopping before dispatch, a Job handed back, a journal that
cannot be written). How a run ended is read from its timeline (``outcome.read_run_end``).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from runbook_lib.core.alert_policy import (
    Action,
    Policy,
    incident_id_for,
    plan_run,
    rollback_command,
)
from runbook_lib.core.alerts import Alert
from runbook_lib.core.escape import line
from runbook_lib.core.redact import redact_value
from runbook_lib.core.run_job import credential_parameters
from runbook_lib.evidence import files
from runbook_lib.evidence.manifest import seal
from runbook_lib.receiver import texts
from runbook_lib.receiver.dispatch import Dispatch, DispatchRefused, Liveness, RunSpec
from runbook_lib.receiver.journal import Entry, Journal
from runbook_lib.receiver.outcome import read_run_end
from runbook_lib.receiver.replay import instant
from runbook_lib.receiver.status import Ledger

__all__ = ["CHANGED_OUTCOMES", "DISPATCH_FAILED", "RunLife"]

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


@dataclass(kw_only=True, eq=False)
class RunLife:
    """Runs from start to end; ``active`` are those dispatched and being waited for."""

    policy: Policy
    output_dir: Path
    dispatch: Dispatch
    journal: Journal
    ledger: Ledger
    notify: Callable[[str], None]
    clock: Callable[[], datetime]
    # ``active`` changed, or stopping.
    changed: threading.Condition = field(default_factory=threading.Condition, init=False)
    active: dict[str, RunSpec] = field(default_factory=dict, init=False)
    # Dispatch nothing more (plans stay for the next start).
    stopping: bool = field(default=False, init=False)
    # A Job's wait returns at once.
    hand_back: threading.Event = field(default_factory=threading.Event, init=False)

    # --- a new run -----------------------------------------------------------------------

    def start(self, alert: Alert, more: int, received: datetime) -> bool | None:
        """Plan, journal and dispatch the run for ``alert`` (see the module docstring)."""
        now = self.clock()
        history = self.ledger.history((alert.namespace, alert.release))
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
            self.ledger.notified_only(plan.action.value)
            self.notify(texts.notify_only(alert, plan.reason, command))
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
        spec = RunSpec(run_id, alert.release, alert.namespace, parameters, incident_dir)
        run = _Run({**entry, "at": now.isoformat()}, spec, alert, received, more)
        self.ledger.started(run.entry, (now - received).total_seconds())
        self.notify(
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
        self.notify(
            f"runbook serve: the journal cannot be written ({err}); nothing started "
            f"for {alert.release} ({alert.namespace}) until the receiver restarts"
        )

    # --- after a restart -----------------------------------------------------------------

    def reconcile(self, entry: Entry, alert: Alert) -> bool | None:
        """A run the journal says started and did not finish: wait for it, record how it
        ended, start it if it never was, or seal it if it died without an ending."""
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
        self.ledger.started(entry)
        liveness = self.dispatch.find(spec)
        if liveness is Liveness.NEVER:
            self._resumed(run, "it had not started; starting it now")
            return self._dispatch_and_wait(run, note="started after a restart")
        if liveness is Liveness.RUNNING:
            where = {"local": "its process", "job": "its Job"}.get(self.dispatch.kind, "it")
            self._resumed(run, f"{where} is still running; waiting for it")
            return self._wait_and_finish(run, note="waited for after a restart")
        return self._wait_and_finish(run, note="ended while the receiver was down")

    def _resumed(self, run: _Run, how: str) -> None:
        self.notify(
            texts.resumed(
                run_id=run.run_id, release=run.spec.release, namespace=run.spec.namespace, how=how
            )
        )

    # --- dispatch, wait, end -------------------------------------------------------------

    def _dispatch_and_wait(self, run: _Run, note: str = "") -> bool | None:
        with self.changed:
            stopping = self.stopping
        if stopping:  # planned but not started: the next start starts it
            self.notify(
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
        with self.changed:
            self.active[run.run_id] = run.spec
        try:
            waited = self.dispatch.wait(run.spec, handed_back=self.hand_back)
        finally:
            with self.changed:
                self.active.pop(run.run_id, None)
                self.changed.notify_all()
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
        """Seal the evidence of a run that left no ending (the one seal policy); says how it
        went: "sealed" only when the bundle then verifies."""
        key = str(run.spec.parameters.get("signing_key") or "") or None
        state = seal(run.spec.incident_dir, signing_key=key)
        return f"evidence in {run.spec.incident_dir}: {state.sentence()}"

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
        counted = outcome in CHANGED_OUTCOMES if changed is None else changed
        automatic = run.entry.get("action") == Action.AUTO_ROLLBACK
        self.ledger.finished(
            run.entry,
            finished,
            rollback_at=(instant(run.entry.get("at")) or ended_at)
            if automatic and counted
            else None,
            took_s=(ended_at - run.received).total_seconds(),
        )
        self.notify(self._end_text(run, outcome, verdict, status, note, sealed, ended_at))
        return reassess

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
        where = {
            "run_id": run.run_id,
            "release": run.spec.release,
            "namespace": run.spec.namespace,
        }
        if outcome == DISPATCH_FAILED:
            return texts.dispatch_failed(**where, reason=note, command=command)
        if sealed:
            return texts.interrupted(**where, sealed=f"; {sealed}", command=command)
        # What both endings say: how it ended, how long it took, where its evidence is.
        ending = {
            "outcome": outcome,
            "verdict": verdict,
            "took": f"alert to end {(ended_at - run.received).total_seconds():.1f} s",
            "evidence": str(run.spec.incident_dir),
            "command": command,
            "note": note,
        }
        if run.entry.get("action") == Action.AUTO_ROLLBACK:
            return texts.ended(**where, status=status, **ending)
        reason = str(run.entry.get("reason") or "")
        return texts.assessed(
            release=run.spec.release, namespace=run.spec.namespace, reason=reason, **ending
        )
