"""The receiver's fault suite: restarts at every point of a run's life, stopping with a full
queue, a second signal. Real processes on loopback: the receiver (``receiver_proc.py``, the
service of ``runbook serve``), its children (``stand_in_run.py`` in place of the notebook,
which needs the sandbox), SIGKILL and SIGTERM. Each case checks what the operator sees (the
answers, the notifications, the journal), that nothing accepted is lost, and that nothing runs
twice. Every wait is for an event (a file, a journal line, an answer), bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from alert_payloads import alert, payload

from runbook_lib.adapters import notebook_runner

HERE = Path(__file__).resolve().parent
TOKEN = "fault-suite-token"
SLACK = "https://hooks.slack.com/services/T000/B000/fault-suite-secret"
POLICY = {
    "parameters": {"expected_cluster": "kwok-test", "slack_webhook_url": SLACK},
    "releases": [{"release": "*", "namespace": "default", "auto_rollback": True}],
}


def _until(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s:g} s: {what}")


class Receiver:
    """One receiver process on a state folder shared by its restarts."""

    def __init__(self, tmp: Path, **options: Any) -> None:
        self.tmp = tmp
        self.hold = tmp / "hold"
        self.hold.mkdir(exist_ok=True)
        (tmp / "policy.yaml").write_text(yaml.safe_dump(POLICY))
        (tmp / "token").write_text(TOKEN)
        port_file = tmp / "port"
        port_file.unlink(missing_ok=True)
        argv = [
            sys.executable,
            str(HERE / "receiver_proc.py"),
            str(tmp / "state"),
            str(tmp / "evidence"),
            str(tmp / "policy.yaml"),
            str(tmp / "token"),
            "--port-file",
            str(port_file),
        ]
        for name, value in options.items():
            argv += [f"--{name}"] if value is True else [f"--{name}", str(value)]
        self.log = (tmp / "receiver.log").open("ab")
        self.proc = subprocess.Popen(
            argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "STAND_IN_HOLD": str(self.hold)},
        )
        self.port = int(_until(lambda: port_file.exists() and port_file.read_text(), 30, "port"))

    def post(self, *alerts: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/alerts",
            data=json.dumps(payload(*alerts)).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as err:
            return err.code, json.load(err)

    def health(self) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


class Suite:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.receivers: list[Receiver] = []
        (tmp / "hold").mkdir()

    def receiver(self, **options: Any) -> Receiver:
        started = Receiver(self.tmp, **options)
        self.receivers.append(started)
        return started

    def journal(self) -> list[dict[str, Any]]:
        path = self.tmp / "state" / "journal.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.journal() if e["event"] == kind]

    def children(self) -> list[str]:
        """The incident id of every child started, in order (one line each)."""
        path = self.tmp / "hold" / "children.log"
        return [x.split()[0] for x in path.read_text().splitlines()] if path.exists() else []

    def child_holding(self, **options: Any) -> tuple[Receiver, str]:
        """A receiver (started with ``options``) that took an alert for ``app`` and whose
        child run now holds (before it changes anything), and that run's incident id."""
        receiver = self.receiver(**options)
        assert receiver.post(alert("app"))[0] == 200
        (run_id,) = _until(self.children, 30, "child started")
        _until(lambda: (self.tmp / "hold" / f"{run_id}.running").exists(), 30, "child holding")
        return receiver, run_id

    def child_pid(self, run_id: str) -> int:
        path = self.tmp / "hold" / "children.log"
        return next(
            int(x.split()[1]) for x in path.read_text().splitlines() if x.startswith(run_id)
        )

    def notes(self) -> list[str]:
        path = self.tmp / "notifications.jsonl"
        return (
            [json.loads(x)["text"] for x in path.read_text().splitlines()] if path.exists() else []
        )

    def held(self, point: str) -> str:
        """Wait until a receiver pauses at ``point``; the run's incident id."""
        found = _until(lambda: sorted(self.tmp.joinpath("hold").glob(f"{point}-*")), 30, point)
        return found[0].name.removeprefix(f"{point}-")

    def finished(self, count: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        return _until(
            lambda: len(self.events("run_finished")) >= count and self.events("run_finished"),
            timeout_s,
            f"{count} run(s) finished",
        )

    def go(self, release: str = "") -> None:
        (self.tmp / "hold" / (f"{release}.go" if release else "go")).touch()

    def close(self) -> None:
        for receiver in self.receivers:
            receiver.close()
        # Children left holding (a failed test): stopped through their locks, as the
        # receiver would.
        for lock in (self.tmp / "state" / "runs").glob("*.lock"):
            notebook_runner.terminate(lock, timeout_s=5)


@pytest.fixture
def suite(tmp_path: Path) -> Iterator[Suite]:
    built = Suite(tmp_path)
    try:
        yield built
    finally:
        built.close()


def _started_once_each(suite: Suite) -> dict[str, int]:
    started = suite.events("run_started")
    by_release: dict[str, int] = {}
    for run_id in suite.children():
        release = next(e["release"] for e in started if e["run_id"] == run_id)
        by_release[release] = by_release.get(release, 0) + 1
    return by_release


def test_killed_before_dispatch_with_alerts_queued_every_release_runs_once(suite: Suite) -> None:
    first = suite.receiver(hold="dispatch", workers=1)
    answers = [first.post(alert(f"r{i}"))[1]["alerts"] for i in range(1, 4)]
    assert answers == [["queued"]] * 3  # answered 200: durable from here on
    held = suite.held("dispatch")  # r1 planned and journaled, its child not started
    first.kill()
    assert suite.children() == []
    suite.go()
    second = suite.receiver()
    ends = suite.finished(3)
    assert _started_once_each(suite) == {"r1": 1, "r2": 1, "r3": 1}
    assert sorted(e["outcome"] for e in ends) == ["recovered"] * 3
    (resumed,) = [e for e in ends if e["run_id"] == held]
    assert resumed["note"] == "started after a restart"
    assert any(f"{held}" in n and "had not started; starting it now" in n for n in suite.notes())
    # Alertmanager's re-send of an alert already run is a duplicate, not a second run.
    assert second.post(alert("r2"))[1]["alerts"] == ["duplicate"]


def test_killed_while_the_child_runs_the_restarted_receiver_waits_for_it(suite: Suite) -> None:
    first, run_id = suite.child_holding()
    # What `ps` shows of the child: the policy's Slack webhook is not on its command line;
    # it is in its environment, which only its owner can read.
    pid = suite.child_pid(run_id)
    assert SLACK.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert (
        f"RUNBOOK_SLACK_WEBHOOK_URL={SLACK}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
    )
    first.kill()
    assert notebook_runner.holder(suite.tmp / "state" / "runs" / f"{run_id}.lock") == pid
    second = suite.receiver()
    _until(lambda: any("still running; waiting for it" in n for n in suite.notes()), 30, "note")
    assert suite.events("run_finished") == []
    assert second.post(alert("app"))[1]["alerts"] == ["duplicate"]
    suite.go()
    (end,) = suite.finished(1)
    assert (end["outcome"], end["verdict"], end["changed"]) == ("recovered", "rollback", True)
    assert end["note"] == "waited for after a restart"
    assert suite.children() == [run_id]


def test_killed_after_the_child_ended_before_its_journal_line(suite: Suite) -> None:
    suite.go()
    first = suite.receiver(hold="ended")
    assert first.post(alert("app"))[0] == 200
    run_id = suite.held("ended")
    first.kill()
    assert suite.events("run_finished") == []
    suite.receiver()
    (end,) = suite.finished(1)
    assert (end["run_id"], end["outcome"]) == (run_id, "recovered")
    assert end["note"] == "ended while the receiver was down"
    assert suite.children() == [run_id]
    # The note follows the journal line: waited for, not assumed.
    _until(
        lambda: any(
            "ended (ended while the receiver was down): outcome recovered" in n
            for n in suite.notes()
        ),
        10,
        "the end's notification",
    )


def test_a_child_killed_with_the_receiver_is_sealed_as_interrupted_not_rerun(suite: Suite) -> None:
    first, run_id = suite.child_holding()
    # The machine (or the pod) went away: the receiver and its child die together.
    pid = suite.child_pid(run_id)
    os.killpg(pid, signal.SIGKILL)
    first.kill()
    suite.receiver()
    (end,) = suite.finished(1)
    assert end["outcome"] == "interrupted"
    incident = suite.tmp / "evidence" / run_id
    manifest = (incident / "MANIFEST.sha256").read_text()
    assert "timeline.jsonl" in manifest
    assert "alert.json" in manifest
    _until(
        lambda: any("left no ending" in n and "not started again" in n for n in suite.notes()),
        10,
        "the end's notification",
    )
    assert suite.children() == [run_id]


def test_sigterm_with_a_full_queue_starts_nothing_new_and_loses_nothing(suite: Suite) -> None:
    first = suite.receiver(workers=1, capacity=3)
    assert first.post(alert("r1"))[0] == 200
    (r1,) = _until(suite.children, 30, "r1's child started")
    answers = [first.post(alert(f"r{i}")) for i in range(2, 6)]
    assert [a[1]["alerts"] for a in answers[:3]] == [["queued"]] * 3
    assert answers[3][0] == 503  # the queue is full: Alertmanager retries
    first.signal(signal.SIGTERM)
    _until(lambda: first.health() == (503, "the receiver is stopping\n"), 10, "stopping")
    status, body = first.post(alert("r6"))
    assert (status, body["error"]) == (503, "the receiver is stopping")
    suite.go("r1")  # r1 ends within the grace
    assert first.proc.wait(30) == 0
    assert suite.children() == [r1]  # nothing started after SIGTERM
    assert [e["outcome"] for e in suite.events("run_finished")] == ["recovered"]
    suite.go()
    suite.receiver(workers=1)
    suite.finished(4)
    assert _started_once_each(suite) == {"r1": 1, "r2": 1, "r3": 1, "r4": 1}


def test_a_second_signal_stops_the_running_child_at_once_sealed(suite: Suite) -> None:
    first, run_id = suite.child_holding(grace=300)
    first.signal(signal.SIGTERM)
    _until(lambda: suite.events("stopping"), 10, "stopping")
    first.signal(signal.SIGTERM)
    assert first.proc.wait(30) == 0  # long before the 300 s grace
    (end,) = suite.events("run_finished")
    assert end["outcome"] == "interrupted"
    assert "timeline.jsonl" in (suite.tmp / "evidence" / run_id / "MANIFEST.sha256").read_text()
    suite.go()
    second = suite.receiver()
    _until(lambda: second.health() == (200, "ok\n"), 30, "second start")
    assert suite.children() == [run_id]  # interrupted and reported: not started again
    assert len(suite.events("run_started")) == 1


def test_the_grace_ends_then_the_run_is_stopped_and_sealed(suite: Suite) -> None:
    first, run_id = suite.child_holding(grace=1)
    first.signal(signal.SIGTERM)
    assert first.proc.wait(30) == 0
    (end,) = suite.events("run_finished")
    assert end["outcome"] == "interrupted"
    assert (suite.tmp / "evidence" / run_id / "MANIFEST.sha256").exists()


def test_a_journal_that_cannot_be_written_answers_503_and_runs_nothing(suite: Suite) -> None:
    full = suite.receiver(**{"full-disk": True})
    status, body = full.post(alert("app"))
    assert status == 503  # Alertmanager retries 5xx: the alert is not lost
    assert body["error"].startswith("the journal cannot be written")
    assert full.health()[0] == 503
    assert full.post(alert("app"))[0] == 503  # not "duplicate": nothing was remembered
    full.kill()
    assert suite.children() == []
    suite.go()
    healthy = suite.receiver()
    assert healthy.post(alert("app"))[1]["alerts"] == ["queued"]  # Alertmanager's retry
    (end,) = suite.finished(1)
    assert end["outcome"] == "recovered"
    assert len(suite.children()) == 1
