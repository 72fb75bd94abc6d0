"""Stand-ins for the notebook run in the receiver's tests (the real run needs the sandbox:
tests/e2e/test_alert_driven.py).

``write_timeline`` leaves what a run leaves where the receiver reads its end: typed facts on
``timeline.jsonl``, written with the library's own timeline. ``FakeDispatch`` is an in-process
dispatcher whose "run" writes that timeline once its gate opens; everything around it (HTTP,
journal, policy, queue, notifications) is the real receiver. The fault suite uses the real
local dispatcher with ``tests/adapters/stand_in_run.py`` as the child process instead.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook_lib.adapters.notify import FileNotifier, Notifier
from runbook_lib.core.alert_policy import Policy
from runbook_lib.receiver import Receiver
from runbook_lib.receiver.dispatch import Dispatch, DispatchRefused, Liveness, RunSpec, Waited
from runbook_lib.record.facts import Decided, Finished, RolledBack, record_fact
from runbook_lib.record.timeline import EventKind, Timeline

DEPLOYED = datetime(2026, 12, 1, 11, 55, tzinfo=UTC)
AUTO_APP = {"releases": [{"release": "app", "auto_rollback": True}]}


def local_receiver(
    tmp: Path,
    dispatch: Dispatch,
    *,
    policy: Mapping[str, Any] = AUTO_APP,
    notifiers: Sequence[Notifier] = (),
    **options: Any,
) -> Receiver:
    """The real receiver (not started) with its journal in ``tmp/state``, the evidence in
    ``tmp/evidence`` and every notification appended to ``tmp/notifications.jsonl`` (and
    given to ``notifiers``); ``options`` are ``Receiver``'s own (capacity, cooldown, ...)."""
    return Receiver(
        Policy.from_mapping(policy),
        state_dir=tmp / "state",
        output_dir=tmp / "evidence",
        dispatch=dispatch,
        notifiers=[FileNotifier(tmp / "notifications.jsonl"), *notifiers],
        **options,
    )


def write_timeline(
    incident_dir: Path,
    *,
    verdict: str = "rollback",
    outcome: str = "recovered",
    dry_run: bool = False,
    finished: bool = True,
) -> Timeline:
    """The facts of a run: started, decided, rolled back when acting, finished with
    ``outcome`` (unless ``finished`` is False: a run killed before its ending)."""
    timeline = Timeline(incident_dir / "timeline.jsonl")
    timeline.record("start_run", EventKind.INFO, "run started", dry_run=dry_run)
    record_fact(
        timeline,
        "decide",
        Decided(
            verdict=verdict,
            rollback=verdict == "rollback",
            deployed_at=DEPLOYED,
            evaluated_at=DEPLOYED,
        ),
        f"verdict {verdict}",
    )
    acted = verdict == "rollback" and not dry_run and outcome != "refused"
    if acted:
        record_fact(timeline, "helm_rollback", RolledBack(2, 1, "helm rollback app 1"), "done")
    if finished:
        record_fact(timeline, "finish", Finished(outcome, None, None, 300.0), f"ended {outcome}")
    return timeline


class FakeDispatch:
    """Implements ``receiver.dispatch.Dispatch`` in-process. ``gate`` holds every run until
    the test opens it; ``calls`` are the runs' parameters, in order; ``refuse`` makes
    ``start`` refuse (as an API server refusing a Job would)."""

    kind = "local"
    hands_back = False

    def __init__(self, verdict: str = "rollback", outcome: str = "") -> None:
        self.verdict = verdict
        self.outcome = outcome
        self.refuse = ""
        self.calls: list[dict[str, Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.changed = threading.Condition()
        self.running: dict[str, int] = {}
        self.max_concurrent_per_release = 0

    def start(self, run: RunSpec) -> dict[str, Any]:
        if self.refuse:
            raise DispatchRefused(self.refuse)
        with self.changed:
            self.calls.append(dict(run.parameters))
            self.running[run.release] = self.running.get(run.release, 0) + 1
            self.max_concurrent_per_release = max(
                self.max_concurrent_per_release, self.running[run.release]
            )
            self.changed.notify_all()
        return {"pid": 999_999_999}

    def find(self, run: RunSpec) -> Liveness:
        if (run.incident_dir / "timeline.jsonl").exists():
            return Liveness.ENDED
        return Liveness.NEVER

    def wait(self, run: RunSpec, *, handed_back: threading.Event) -> Waited:
        self.gate.wait(30)
        dry_run = bool(run.parameters.get("dry_run"))
        outcome = self.outcome or (
            "dry_run" if dry_run else "recovered" if self.verdict == "rollback" else "no_rollback"
        )
        write_timeline(run.incident_dir, verdict=self.verdict, outcome=outcome, dry_run=dry_run)
        with self.changed:
            self.running[run.release] -= 1
        return Waited(True, 0, "exited")

    def stop(self, run: RunSpec) -> None:
        self.gate.set()

    def wait_calls(self, count: int, timeout_s: float = 10.0) -> bool:
        """True once ``count`` runs have started (an event, not a pause)."""
        with self.changed:
            return self.changed.wait_for(lambda: len(self.calls) >= count, timeout_s)
