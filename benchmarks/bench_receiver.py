#!/usr/bin/env python3
"""Benchmark of ``runbook serve``'s receiver: 1,000 Alertmanager webhook posts over HTTP.

The receiver (aiohttp on 127.0.0.1, token check, payload parsing, journal, policy, queue)
takes 1,000 posts of one firing alert each, for 50 releases, from 10 concurrent clients, as
Alertmanager's retries and repeats would send them. Runs are a stand-in that returns at once
(the notebook's own time is measured by bench_rollback.py and the sandbox demo). Prints the
wall time for all posts, the slowest single answer and the runs started (goal: under 5 s,
one run per release). The resident memory after the burst shows the queue stays bounded.

    python benchmarks/bench_receiver.py
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from alert_payloads import alert, payload

from runbook_lib.adapters.notebook_runner import RunResult
from runbook_lib.adapters.webhook import make_app
from runbook_lib.cli.receiver import Receiver
from runbook_lib.core.alert_policy import Policy

POSTS = 1000
RELEASES = 50
CLIENTS = 10
TOKEN = "bench-token"


class InstantRunner:
    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(
        self, parameters: Mapping[str, Any], *, on_start: Callable[[int], None]
    ) -> RunResult:
        with self.lock:
            self.calls += 1
        directory = Path(parameters["output_dir"]) / str(parameters["incident_id"])
        (directory / "record.json").write_text(
            json.dumps({"outcome": "recovered", "verdict": "rollback"})
        )
        return RunResult(0, directory, "recovered", "rollback", 0.0)


async def burst(url: str) -> tuple[float, float, list[int]]:
    bodies = [payload(alert(f"r{i % RELEASES}", name=f"A{i // RELEASES}")) for i in range(POSTS)]
    statuses: list[int] = []
    slowest = 0.0
    headers = {"Authorization": f"Bearer {TOKEN}"}
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal slowest
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(url, json=body, headers=headers) as resp:
                await resp.read()
                statuses.append(resp.status)
            slowest = max(slowest, time.perf_counter() - started)

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))
    return time.perf_counter() - started, slowest, statuses


async def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-receiver-") as scratch:
        runner = InstantRunner()
        policy = Policy.from_mapping(
            {"releases": [{"release": "r*", "namespace": "default", "auto_rollback": True}]}
        )
        receiver = Receiver(
            policy,
            state_dir=Path(scratch) / "state",
            output_dir=Path(scratch) / "evidence",
            runner=runner,
            capacity=100,
        )
        receiver.start()
        app_runner = web.AppRunner(make_app(receiver, token=TOKEN), access_log=None)
        await app_runner.setup()
        site = web.TCPSite(app_runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        wall, slowest, statuses = await burst(f"http://127.0.0.1:{port}/alerts")
        await asyncio.to_thread(receiver.wait_idle, 30)
        await app_runner.cleanup()
        receiver.close()
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ok = statuses.count(200)
    print(
        f"receiver: {POSTS} posts ({RELEASES} releases, {CLIENTS} clients) in {wall:.2f} s "
        f"({POSTS / wall:.0f}/s); slowest answer {slowest * 1000:.0f} ms; {ok} answered 200"
    )
    print(
        f"runs started: {runner.calls} (one per release: {runner.calls == RELEASES}); "
        f"peak resident memory {rss_mib:.0f} MiB"
    )
    goal = wall < 5.0 and runner.calls == RELEASES and ok == POSTS
    print(f"goal (< 5 s, one run per release): {'met' if goal else 'NOT met'}")
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
