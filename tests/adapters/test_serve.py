"""``runbook serve``: the webhook receiver over real HTTP (aiohttp on loopback).

The notebook runs are an in-process stand-in that writes the timeline a run leaves
(``tests/receiver_doubles.py``; the real notebook runs on the sandbox:
tests/e2e/test_alert_driven.py; real child processes, restarts and signals:
test_receiver_faults.py); everything else is real: HTTP, token check, size limit, journal,
policy, breaker, queue, notifications to a file.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from alert_payloads import alert, payload
from receiver_doubles import FakeDispatch, local_receiver

from runbook_lib.adapters.webhook import MAX_BODY, make_app
from runbook_lib.cli.main import main
from runbook_lib.core.alerts import parse_webhook
from runbook_lib.receiver import Receiver

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POLICY = {
    "parameters": {"expected_cluster": "kwok-test"},
    "releases": [
        {"release": "app", "namespace": "default", "auto_rollback": True},
        {"release": "r*", "namespace": "default", "auto_rollback": True},
        {"release": "shop", "namespace": "default", "auto_rollback": False},
    ],
    "circuit_breaker": {"max_rollbacks": 2, "period": "1h"},
}


def _started(tmp_path: Path, runner: FakeDispatch, **options: Any) -> Receiver:
    """``_receiver``, its workers started."""
    receiver = _receiver(tmp_path, runner, **options)
    receiver.start()
    return receiver


def _receiver(
    tmp_path: Path,
    runner: FakeDispatch,
    *,
    policy: Any = POLICY,
    capacity: int = 100,
    cooldown: float = 300.0,
) -> Receiver:
    return local_receiver(tmp_path, runner, policy=policy, capacity=capacity, cooldown=cooldown)


def _journal(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "state" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _notes(tmp_path: Path) -> list[str]:
    path = tmp_path / "notifications.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["text"] for line in path.read_text().splitlines()]


async def _client(receiver: Receiver) -> TestClient:  # type: ignore[type-arg]
    client = TestClient(TestServer(make_app(receiver, token=TOKEN), host="127.0.0.1"))
    await client.start_server()
    return client


Conversation = Callable[[TestClient], Awaitable[Any]]  # type: ignore[type-arg]


def _talk(receiver: Receiver, conversation: Conversation) -> Any:
    """``conversation`` with the receiver's app on a loopback test server, closed after."""

    async def go() -> Any:
        client = await _client(receiver)
        try:
            return await conversation(client)
        finally:
            await client.close()

    return asyncio.run(go())


def test_a_firing_alert_for_an_allowed_release_runs_the_rollback_and_reports(
    tmp_path: Path,
) -> None:
    runner = FakeDispatch()
    receiver = _started(tmp_path, runner)

    async def go(client: TestClient) -> tuple[int, Any]:
        resp = await client.post("/alerts", json=payload(alert()), headers=AUTH)
        return resp.status, await resp.json()

    status, body = _talk(receiver, go)
    assert (status, body) == (200, {"alerts": ["queued"]})
    assert receiver.wait_idle(10)
    receiver.close()
    (call,) = runner.calls
    assert call["confirm"] is True
    assert call["release"] == "app"
    assert call["expected_cluster"] == "kwok-test"
    incident = Path(call["output_dir"]) / call["incident_id"]
    started_by = json.loads((incident / "alert.json").read_text())
    assert started_by["alert"]["labels"]["alertname"] == "RunbookErrorRatioHigh"
    start, end = _notes(tmp_path)
    assert "RunbookErrorRatioHigh fired for release app" in start
    assert "started by Alertmanager via runbook serve on kwok-test" in start
    assert "outcome recovered, verdict rollback" in end
    assert str(incident) in end


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}]
)
def test_a_missing_or_wrong_token_is_401_and_starts_nothing(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    runner = FakeDispatch()
    receiver = _started(tmp_path, runner)

    async def go(client: TestClient) -> int:
        resp = await client.post("/alerts", json=payload(alert()), headers=headers)
        return resp.status

    assert _talk(receiver, go) == 401
    assert receiver.wait_idle(5)
    receiver.close()
    assert runner.calls == []
    assert [e for e in _journal(tmp_path) if e["event"] == "alert"] == []


def test_malformed_json_and_oversized_bodies_are_refused(tmp_path: Path) -> None:
    runner = FakeDispatch()
    receiver = _receiver(tmp_path, runner)

    async def go(client: TestClient) -> list[tuple[int, Any]]:
        out = []
        for data in (b"{oops", b"x" * (MAX_BODY + 1)):
            resp = await client.post("/alerts", data=data, headers=AUTH)
            out.append((resp.status, await resp.json()))
        resp = await client.post("/alerts", json={**payload(alert()), "version": "2"}, headers=AUTH)
        out.append((resp.status, await resp.json()))
        return out

    (bad_json, too_big, old_version) = _talk(receiver, go)
    assert bad_json[0] == 400
    assert bad_json[1]["problems"][0].startswith("body: not JSON")
    assert too_big[0] == 413
    assert old_version[0] == 400
    assert "version" in old_version[1]["problems"][0]
    assert runner.calls == []


def test_unknown_release_labels_resolved_and_duplicate_alerts_start_nothing(
    tmp_path: Path,
) -> None:
    runner = FakeDispatch()
    receiver = _started(tmp_path, runner)

    async def go(client: TestClient) -> list[Any]:
        out = []
        for body in (
            payload(alert(release="", namespace="")),
            payload(alert(status="resolved")),
            payload(alert()),
            payload(alert()),  # the same alert delivered again
        ):
            resp = await client.post("/alerts", json=body, headers=AUTH)
            out.append((await resp.json())["alerts"])
        return out

    assert _talk(receiver, go) == [["ignored"], ["resolved"], ["queued"], ["duplicate"]]
    assert receiver.wait_idle(10)
    receiver.close()
    assert len(runner.calls) == 1


def test_a_release_the_policy_does_not_allow_is_assessed_and_notified_with_the_command(
    tmp_path: Path,
) -> None:
    runner = FakeDispatch()
    receiver = _started(tmp_path, runner)
    receiver.accept(_notification(alert("shop")))
    receiver.accept(_notification(alert("stranger")))
    assert receiver.wait_idle(10)
    receiver.close()
    (call,) = runner.calls  # the stranger's release is in no entry: nothing runs
    assert call["dry_run"] is True
    assert "confirm" not in call
    notes = _notes(tmp_path)
    assert any(
        "verdict rollback" in n
        and "to roll back, run: runbook run rollback -p expected_cluster kwok-test "
        "-p release shop -p namespace default -p confirm True"
        in n
        for n in notes
    ), notes
    assert any("stranger" in n and "nothing run" in n for n in notes)


def test_the_circuit_breaker_turns_the_third_rollback_into_a_notification(
    tmp_path: Path,
) -> None:
    runner = FakeDispatch()
    receiver = _started(tmp_path, runner, cooldown=0)
    for minute in range(3):
        receiver.accept(_notification(alert(starts_at=f"2026-12-01T12:0{minute}:00Z")))
        assert receiver.wait_idle(10)
    receiver.close()
    assert [("confirm" in c, "dry_run" in c) for c in runner.calls] == [
        (True, False),
        (True, False),
        (False, True),
    ]
    assert any("circuit breaker open: 2 automatic rollback(s)" in n for n in _notes(tmp_path))


def test_a_burst_of_1000_alerts_for_50_releases_runs_each_release_once(tmp_path: Path) -> None:
    runner = FakeDispatch()
    runner.gate.clear()  # runs hold until every post is answered
    receiver = _started(tmp_path, runner, capacity=100)

    async def go(client: TestClient) -> list[int]:
        statuses = []
        for i in range(1000):
            body = payload(alert(f"r{i % 50}", name=f"A{i // 50}"))
            resp = await client.post("/alerts", json=body, headers=AUTH)
            statuses.append(resp.status)
        return statuses

    statuses = _talk(receiver, go)
    runner.gate.set()
    assert receiver.wait_idle(30)
    receiver.close()
    assert set(statuses) == {200}
    assert sorted(c["release"] for c in runner.calls) == sorted(f"r{i}" for i in range(50))
    assert runner.max_concurrent_per_release == 1


def test_an_alert_during_a_run_that_found_nothing_is_assessed_again(tmp_path: Path) -> None:
    runner = FakeDispatch(verdict="no_rollback")
    runner.gate.clear()  # the first run holds until the second alert has arrived
    receiver = _started(tmp_path, runner)

    async def go(client: TestClient) -> list[Any]:
        early = await client.post(
            "/alerts", json=payload(alert(name="RunbookBusinessDrop")), headers=AUTH
        )
        assert await asyncio.to_thread(runner.wait_calls, 1)
        during = await client.post("/alerts", json=payload(alert()), headers=AUTH)
        return [await early.json(), await during.json()]

    answers = _talk(receiver, go)
    runner.gate.set()
    assert receiver.wait_idle(10)
    receiver.close()
    assert answers == [{"alerts": ["queued"]}, {"alerts": ["coalesced"]}]
    first, second = runner.calls
    started_by = [
        json.loads((Path(c["output_dir"]) / c["incident_id"] / "alert.json").read_text())
        for c in (first, second)
    ]
    names = [s["alert"]["labels"]["alertname"] for s in started_by]
    assert names == ["RunbookBusinessDrop", "RunbookErrorRatioHigh"]
    journal = _journal(tmp_path)
    (reassess,) = [e for e in journal if e["event"] == "reassess"]
    assert reassess["alertname"] == "RunbookErrorRatioHigh"
    (first_end, _) = [e for e in journal if e["event"] == "run_finished"]
    assert (first_end["verdict"], first_end["reassess"]) == ("no_rollback", True)


def test_a_full_queue_answers_503_with_retry_after(tmp_path: Path) -> None:
    runner = FakeDispatch()
    runner.gate.clear()
    receiver = _started(tmp_path, runner, capacity=2)

    async def go(client: TestClient) -> list[tuple[int, str | None]]:
        out = []
        for release in ("r1", "r2", "r3", "r4", "r5"):
            resp = await client.post("/alerts", json=payload(alert(release)), headers=AUTH)
            out.append((resp.status, resp.headers.get("Retry-After")))
            if release in ("r1", "r2"):
                # The two workers have taken r1 and r2 (their runs started) before r3
                # and r4 fill the queue: waited for, not assumed.
                assert await asyncio.to_thread(runner.wait_calls, int(release[1]))
        return out

    answers = _talk(receiver, go)
    runner.gate.set()
    assert receiver.wait_idle(10)
    receiver.close()
    assert answers[-1] == (503, "10")
    assert all(status == 200 for status, _ in answers[:-1])
    assert sorted(c["release"] for c in runner.calls) == ["r1", "r2", "r3", "r4"]


def test_a_refused_dispatch_is_reported_and_not_counted_as_a_rollback(tmp_path: Path) -> None:
    runner = FakeDispatch()
    runner.refuse = "cannot create Job runbook-x in default: HTTP 403 Forbidden"
    receiver = _started(tmp_path, runner, cooldown=0)
    for minute in range(3):
        receiver.accept(_notification(alert(starts_at=f"2026-12-01T12:0{minute}:00Z")))
        assert receiver.wait_idle(10)
    receiver.close()
    notes = _notes(tmp_path)
    refused = [n for n in notes if "could not start run" in n]
    assert len(refused) == 3
    assert "HTTP 403 Forbidden" in refused[0]
    assert "a person decides: runbook run rollback" in refused[0]
    # Three refusals are no rollbacks: the breaker (2 per hour) stays closed.
    assert not any("circuit breaker open" in n for n in notes)
    ends = [e for e in _journal(tmp_path) if e["event"] == "run_finished"]
    assert [(e["outcome"], e["changed"]) for e in ends] == [("dispatch_failed", False)] * 3
    assert receiver.auto_rollbacks == {}


def test_health_metrics_and_runs_pages(tmp_path: Path) -> None:
    runner = FakeDispatch()
    receiver = _started(tmp_path, runner)
    receiver.accept(_notification(alert()))
    assert receiver.wait_idle(10)

    async def go(client: TestClient) -> tuple[str, str, str, Any]:
        health = await (await client.get("/healthz")).text()
        metrics = await (await client.get("/metrics")).text()
        page = await (await client.get("/runs")).text()
        rows = await (await client.get("/runs?format=json")).json()
        return health, metrics, page, rows

    health, metrics, page, rows = _talk(receiver, go)
    receiver.close()
    assert health == "ok\n"
    assert 'runbook_runs_total{action="auto_rollback",outcome="recovered"} 1' in metrics
    assert 'runbook_alerts_received_total{disposition="queued"} 1' in metrics
    assert "runbook_queue_depth 0" in metrics
    assert "runbook_alert_to_end_seconds_count 1" in metrics
    assert "<td>app</td>" in page
    assert "recovered" in page
    assert rows[0]["outcome"] == "recovered"
    assert rows[0]["evidence"].endswith(rows[0]["run_id"])


def test_serve_refuses_a_bad_policy_or_an_empty_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("releases: [{namespace: x}]\n")
    token = tmp_path / "token"
    token.write_text("tok\n")
    assert main(["serve", "--policy", str(policy), "--token-file", str(token)]) == 2
    assert "policy.releases[0].release" in capsys.readouterr().err
    policy.write_text("releases: []\n")
    token.write_text("\n")
    assert main(["serve", "--policy", str(policy), "--token-file", str(token)]) == 2
    assert "--token-file:" in capsys.readouterr().err


def _notification(*alerts: dict[str, Any]):  # type: ignore[no-untyped-def]
    return parse_webhook(payload(*alerts))


def test_an_automatic_run_stopped_on_inconclusive_data_hands_over_with_the_command(
    tmp_path: Path,
) -> None:
    runner = FakeDispatch(verdict="inconclusive", outcome="inconclusive")
    receiver = _started(tmp_path, runner)
    receiver.accept(_notification(alert()))
    assert receiver.wait_idle(10)
    receiver.close()
    end = _notes(tmp_path)[-1]
    assert "outcome inconclusive" in end
    assert "A person decides from here: runbook run rollback" in end


def test_the_journal_is_compacted_and_a_restart_still_knows_what_it_needs(
    tmp_path: Path,
) -> None:
    runner = FakeDispatch(verdict="no_rollback")  # runs that change nothing: no breaker
    receiver = local_receiver(tmp_path, runner, policy=POLICY, cooldown=0, compact_bytes=64 * 1024)
    receiver.start()
    for i in range(400):  # each run writes ~3 KiB of journal: 1.2 MiB without compaction
        receiver.accept(_notification(alert(f"r{i}", starts_at=f"2026-12-01T12:00:{i % 60:02d}Z")))
        assert receiver.wait_idle(10)
    runner.gate.clear()
    receiver.accept(_notification(alert("app")))  # its run holds
    assert runner.wait_calls(401)
    receiver.accept(_notification(alert("shop")))  # the second worker's
    assert runner.wait_calls(402)
    receiver.accept(_notification(alert("r-late")))  # both workers busy: it waits
    # The last 200 runs (for /runs) and the keys stay, plus what came since the last
    # compaction.
    size = (tmp_path / "state" / "journal.jsonl").stat().st_size
    assert size < 256 * 1024
    # A restart (no close: a crash) from the compacted journal: the key of run 0 is still
    # known, r-late still waits, app and shop are still running.
    again = FakeDispatch()
    restarted = local_receiver(tmp_path, again, policy=POLICY, cooldown=0)
    assert [w.first.release for w in restarted.state.waiting.values()] == ["r-late"]
    assert sorted(r for _, r in restarted.state.running) == ["app", "shop"]
    assert restarted.accept(
        _notification(alert("r0", starts_at="2026-12-01T12:00:00Z"))
    ).dispositions == ("duplicate",)
    runner.gate.set()
    receiver.close()
