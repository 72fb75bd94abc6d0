"""Each api pod's `kubectl logs` is its own, with its version; crash loops leave `--previous`
logs (evidence can only tell whose log is whose if the sandbox does)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from runbook_lib.errors import CommandFailed
from runbook_sandbox import Sandbox

pytestmark = pytest.mark.sandbox

_LINE = re.compile(r"version=(\S+) pod=(\S+)$")


def _pods(sb: Sandbox) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        sb.kubectl("get", "pods", "-l", "app=api", "-o", "json")
    )["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _wait(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)


def _requests(text: str) -> list[tuple[str, str]]:
    return [m.groups() for m in map(_LINE.search, text.splitlines()) if m]


def _assert_own_lines(sb: Sandbox, version: str) -> None:
    pods = [p["metadata"]["name"] for p in _pods(sb)]
    assert len(pods) == 4
    logs: dict[str, list[tuple[str, str]]] = {}

    def every_pod_logged() -> bool:
        logs.update({pod: _requests(sb.kubectl("logs", pod, "-c", "api")) for pod in pods})
        return all(logs.values())

    _wait(every_pod_logged, 20, "a request in every pod's log")
    for pod, requests in logs.items():
        assert {owner for _, owner in requests} == {pod}, pod
        assert {v for v, _ in requests} == {version}, pod


def test_each_pod_log_holds_its_own_requests_and_version(clean_sandbox: Sandbox) -> None:
    _assert_own_lines(clean_sandbox, "v1.0.0")
    clean_sandbox.deploy("v1.1.0")
    _assert_own_lines(clean_sandbox, "v1.1.0")
    # The bad version's pods log its errors.
    text = "".join(
        clean_sandbox.kubectl("logs", p["metadata"]["name"]) for p in _pods(clean_sandbox)
    )
    assert re.search(r"status=50[03] ", text)


def test_crash_looping_pod_has_a_previous_log(clean_sandbox: Sandbox) -> None:
    clean_sandbox.deploy("v1.1.0", values={"faults.crashEvery": "4s"})

    def restarted() -> list[dict[str, Any]]:
        return [
            p
            for p in _pods(clean_sandbox)
            if any(c.get("restartCount", 0) > 0 for c in p["status"].get("containerStatuses", []))
        ]

    _wait(lambda: bool(restarted()), 40, "a container restart")
    pod = restarted()[0]
    name = pod["metadata"]["name"]
    (status,) = [c for c in pod["status"]["containerStatuses"] if c["name"] == "api"]
    assert status["lastState"]["terminated"]["exitCode"] == 1
    previous = _requests(clean_sandbox.kubectl("logs", name, "-c", "api", "--previous"))
    assert previous
    assert {owner for _, owner in previous} == {name}
    assert {v for v, _ in previous} == {"v1.1.0"}
    # A pod that never restarted has no previous log, as on a real kubelet.
    clean_sandbox.reset()
    fresh = _pods(clean_sandbox)[0]["metadata"]["name"]
    with pytest.raises(CommandFailed):
        clean_sandbox.kubectl("logs", fresh, "-c", "api", "--previous")
