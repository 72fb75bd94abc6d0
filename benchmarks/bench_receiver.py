#!/usr/bin/env python3
"""Benchmark of ``runbook serve``'s receiver: 1,000 Alertmanager webhook posts over HTTP.

The receiver (aiohttp on 127.0.0.1, token check, payload parsing, the journal made durable
with fsync before each answer, policy, queue) takes 1,000 posts of one firing alert each,
for 50 releases, from 10 concurrent clients, as Alertmanager's retries and repeats would
send them. Runs are a stand-in that ends at once (the notebook's own time is measured by
bench_rollback.py and the sandbox demo). Prints the wall time for all posts, the slowest
single answer, the fsync calls the journal made and the runs started (goal: under 5 s, one
run per release). The resident memory after the burst shows the queue stays bounded.

    python benchmarks/bench_receiver.py
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from alert_payloads import alert, payload
from receiver_doubles import FakeDispatch

from runbook_lib.adapters.webhook import make_app
from runbook_lib.core.alert_policy import Policy
from runbook_lib.receiver import Receiver

POSTS = 1000
RELEASES = 50
CLIENTS = 10
TOKEN = "bench-token"


class CountingJournal:
    """Counts the journal's fsync calls (os.fsync, wrapped for this process only)."""

    def __init__(self) -> None:
        self.calls = 0
        self._fsync = os.fsync

        def counted(fd: int) -> None:
            self.calls += 1
            self._fsync(fd)

        os.fsync = counted


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
    fsyncs = CountingJournal()
    # On the disk the state lives on (the current folder), not a RAM-backed /tmp.
    with tempfile.TemporaryDirectory(prefix=".bench-receiver-", dir=".") as scratch:
        runner = FakeDispatch()
        policy = Policy.from_mapping(
            {"releases": [{"release": "r*", "namespace": "default", "auto_rollback": True}]}
        )
        receiver = Receiver(
            policy,
            state_dir=Path(scratch) / "state",
            output_dir=Path(scratch) / "evidence",
            dispatch=runner,
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
    runs = len(runner.calls)
    print(
        f"journal: {fsyncs.calls} fsync calls for {POSTS} durable answers and {runs} runs; "
        f"runs started: {runs} (one per release: {runs == RELEASES}); "
        f"peak resident memory {rss_mib:.0f} MiB"
    )
    goal = wall < 5.0 and runs == RELEASES and ok == POSTS
    print(f"goal (< 5 s, one run per release): {'met' if goal else 'NOT met'}")
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
