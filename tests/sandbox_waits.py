"""Waiting for what the sandbox does, never for a number of seconds.

A test that needs "some traffic" or "the bad pods failing for a while" waits for the proof of
it (the pods' own logs have the lines, Jaeger has the traces), bounded by a deadline that only
a broken sandbox reaches; the load on the machine then changes how long a test takes, not
whether it passes.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from runbook_sandbox.pod_logs import pod_log_dir

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox
    from runbook_sandbox.team import TeamRelease

T = TypeVar("T")
POLL_S = 0.2
_5XX = re.compile(rb"status=5\d\d ")


def wait_until(check: Callable[[], T], what: str, timeout_s: float = 120.0) -> T:
    """Poll ``check`` until it returns something true; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(POLL_S)


def serving_pods(
    sb: Sandbox, version: str, *, selector: str = "app=api", namespace: str = "default"
) -> list[str]:
    """Names of the ready, non-terminating pods that run ``version`` in ``namespace``."""
    argv = ("--namespace", namespace, "get", "pods", "-l", selector, "-o", "json")
    listed = json.loads(sb.kubectl(*argv))["items"]
    return sorted(
        p["metadata"]["name"]
        for p in listed
        if not p["metadata"].get("deletionTimestamp")
        and p["spec"]["containers"][0]["image"].endswith(f":{version}")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions", [])
        )
    )


def _pod_log(sb: Sandbox, pod: str, namespace: str) -> bytes:
    try:
        return (pod_log_dir(Path(sb.state_dir), namespace) / f"{pod}.log").read_bytes()
    except FileNotFoundError:
        return b""


def pods_have_logged(
    sb: Sandbox,
    version: str,
    *,
    min_bytes: int = 1,
    failures: bool = False,
    containing: str = "",
    namespace: str = "default",
) -> list[str]:
    """Wait until every pod of ``version`` (in ``namespace``) has ``min_bytes`` in its own
    log, each of them ``containing`` that text, and (with ``failures``) a 5xx served among
    them; the pods."""

    def logged() -> list[str]:
        pods = serving_pods(sb, version, namespace=namespace)
        logs = [_pod_log(sb, pod, namespace) for pod in pods]
        if not pods or any(len(log) < min_bytes for log in logs):
            return []
        if containing and not all(containing.encode() in log for log in logs):
            return []
        if failures and not any(_5XX.search(log) for log in logs):
            return []
        return pods

    what = f"every {version} pod logging {min_bytes} bytes"
    what += f" with {containing!r}" if containing else ""
    what += " and a 5xx" if failures else ""
    return wait_until(logged, what)


def model_serves_only(sb: Sandbox, version: str) -> None:
    """Wait until the traffic model serves the release ``app`` from ``version`` pods alone."""

    def only() -> bool:
        with urllib.request.urlopen(f"{sb.traffic_url}/mix", timeout=5) as answer:
            mix = json.load(answer)["mix"]
        return set(mix) == {version}

    wait_until(only, f"the traffic model serving {version} alone")


def release_series(release: TeamRelease, window: str = "20s", since_s: float = 12.0) -> None:
    """Wait until Prometheus has had a request rate over ``window`` for the release's own
    series for ``since_s`` seconds: a fresh release has none until the traffic model served
    it and Prometheus scraped that twice, and a run's assessment reads them at steps of a
    few seconds."""
    selector = release.parameters()["prometheus_selector"]
    query = f"sum(rate(http_requests_total{{{selector}}}[{window}]))"

    def rate() -> list[object]:
        asked = {"query": query, "time": f"{time.time() - since_s:.3f}"}
        url = f"{release.sandbox.prometheus_url}/api/v1/query?" + urllib.parse.urlencode(asked)
        with urllib.request.urlopen(url, timeout=10) as answer:
            found: list[object] = json.load(answer)["data"]["result"]
        return found

    wait_until(rate, f"a request rate for {selector} in Prometheus {since_s:g} s ago")
