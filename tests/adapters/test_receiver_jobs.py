"""``runbook serve --dispatch job`` without a cluster: refusals and reconciliation by label.

The API server is a stand-in here (``Batch``: Jobs in a dict, answers as the Kubernetes client
raises them, ``ApiException`` with the status), so a refusal, a Job that ended while the
receiver was down and a Job never created can be made on demand; the real API server, with
the receiver's own ServiceAccount, is tests/e2e/test_job_dispatch.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from alert_payloads import alert, payload
from kubernetes.client.exceptions import ApiException
from receiver_doubles import local_receiver, write_timeline

from runbook_lib.adapters.job_runner import JobRunner
from runbook_lib.core.alerts import parse_webhook
from runbook_lib.core.run_job import RUN_LABEL, JobSpec
from runbook_lib.receiver import JobDispatch, Receiver
from runbook_lib.receiver.journal import Journal

POLICY = {
    "parameters": {"expected_cluster": "prod"},
    "releases": [{"release": "*", "namespace": "*", "auto_rollback": True}],
}


def _status(state: str) -> Any:
    kind = {"succeeded": "Complete", "failed": "Failed"}.get(state)
    conditions = [SimpleNamespace(type=kind, status="True")] if kind else []
    return SimpleNamespace(conditions=conditions, succeeded=None, failed=None)


class Batch:
    """A stand-in for ``BatchV1Api``: Jobs by (namespace, name) with a state each."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.state: dict[tuple[str, str], str] = {}
        self.refuse: dict[str, int] = {}  # namespace -> HTTP status
        self.lock = threading.Lock()

    def create_namespaced_job(self, namespace: str, body: dict[str, Any]) -> None:
        if namespace in self.refuse:
            raise ApiException(status=self.refuse[namespace], reason="Forbidden")
        key = (namespace, body["metadata"]["name"])
        with self.lock:
            if key in self.jobs:
                raise ApiException(status=409, reason="AlreadyExists")
            self.jobs[key] = body
            self.state[key] = "running"

    def list_namespaced_job(self, namespace: str, label_selector: str) -> Any:
        label, _, value = label_selector.partition("=")
        items = [
            SimpleNamespace(status=_status(self.state[key]))
            for key, body in self.jobs.items()
            if key[0] == namespace and body["metadata"]["labels"].get(label) == value
        ]
        return SimpleNamespace(items=items)

    def read_namespaced_job_status(self, name: str, namespace: str) -> Any:
        if (namespace, name) not in self.jobs:
            raise ApiException(status=404, reason="NotFound")
        return SimpleNamespace(status=_status(self.state[(namespace, name)]))


def _receiver(tmp: Path, batch: Batch) -> Receiver:
    # tmp/evidence stands for the evidence volume, as the receiver mounts it
    jobs = JobDispatch(JobRunner(batch), JobSpec(image="r.example/runbook:1"), poll_s=0.05)
    return local_receiver(tmp, jobs, policy=POLICY)


def _journal(tmp: Path, kind: str) -> list[dict[str, Any]]:
    lines = (tmp / "state" / "journal.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def test_a_refused_job_is_a_failed_dispatch_notified_not_a_rollback(tmp_path: Path) -> None:
    batch = Batch()
    batch.refuse["prod"] = 403
    receiver = _receiver(tmp_path, batch)
    receiver.start()
    receiver.accept(parse_webhook(payload(alert("shop", "prod"))))
    assert receiver.wait_idle(10)
    receiver.close()
    (end,) = _journal(tmp_path, "run_finished")
    assert (end["outcome"], end["changed"]) == ("dispatch_failed", False)
    assert "HTTP 403 Forbidden" in end["note"]
    notes = [
        json.loads(x)["text"] for x in (tmp_path / "notifications.jsonl").read_text().splitlines()
    ]
    assert any("could not start run" in n and "HTTP 403" in n for n in notes)
    assert receiver.auto_rollbacks == {}
    # After a restart it is history, not an interrupted rollback.
    again = _receiver(tmp_path, batch)
    assert again.state.running == {}
    assert again.auto_rollbacks == {}


def test_a_restarted_receiver_finds_its_job_by_label_and_records_how_it_ended(
    tmp_path: Path,
) -> None:
    batch = Batch()
    first = _receiver(tmp_path, batch)
    first.start()
    first.accept(parse_webhook(payload(alert("shop", "prod"))))
    (key,) = _wait_for(lambda: list(batch.jobs))
    assert batch.jobs[key]["metadata"]["labels"][RUN_LABEL] == key[1]
    first.close(grace_s=0)  # SIGTERM: the Job is handed back, not stopped
    assert batch.state[key] == "running"
    assert _journal(tmp_path, "run_finished") == []
    # While no receiver runs, the Job ends and leaves its timeline on the evidence volume.
    (started,) = _journal(tmp_path, "run_started")
    write_timeline(Path(started["incident_dir"]), verdict="rollback", outcome="recovered")
    batch.state[key] = "succeeded"
    second = _receiver(tmp_path, batch)
    second.start()
    assert second.wait_idle(10)
    second.close()
    (end,) = _journal(tmp_path, "run_finished")
    assert (end["outcome"], end["verdict"], end["changed"]) == ("recovered", "rollback", True)
    assert end["note"] == "ended while the receiver was down"
    assert len(batch.jobs) == 1  # found, not created again
    assert second.auto_rollbacks  # a real rollback: it counts towards the breaker


def test_a_job_planned_but_never_created_is_created_after_the_restart(tmp_path: Path) -> None:
    # What a receiver leaves when it stops between planning a run and creating its Job: the
    # run_started line, and no Job.
    run_id = "alert-shop-20261201T120000Z-0123456789"
    journal = Journal(tmp_path / "state" / "journal.jsonl")
    journal.write(
        "run_started",
        durable=True,
        run_id=run_id,
        release="shop",
        namespace="prod",
        alert_key="k@1",
        alert=parse_webhook(payload(alert("shop", "prod"))).alerts[0].to_json_dict(),
        action="auto_rollback",
        incident_dir=str(tmp_path / "evidence" / run_id),
        parameters={
            "expected_cluster": "prod",
            "release": "shop",
            "namespace": "prod",
            "confirm": True,
            "incident_id": run_id,
        },
    )
    journal.close()
    batch = Batch()
    receiver = _receiver(tmp_path, batch)
    receiver.start()
    (key,) = _wait_for(lambda: list(batch.jobs))
    assert batch.jobs[key]["metadata"]["annotations"]["runbook.io/incident-id"] == run_id
    batch.state[key] = "failed"  # and left no timeline the receiver can see
    assert receiver.wait_idle(10)
    receiver.close()
    (end,) = _journal(tmp_path, "run_finished")
    assert (end["outcome"], end["note"]) == ("job_failed", "started after a restart")


def _wait_for(found: Any, timeout_s: float = 10.0) -> Any:
    event = threading.Event()
    for _ in range(int(timeout_s / 0.05)):
        value = found()
        if value:
            return value
        event.wait(0.05)
    raise AssertionError("not within the deadline")
