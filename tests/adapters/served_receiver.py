"""The real receiver served over HTTP on a free loopback port, its event loop in a thread: what
Alertmanager posts to in the tests that run a real Alertmanager (tests/adapters/
test_receiver_alertmanager.py, test_alert_chain.py)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest
from aiohttp import web
from receiver_doubles import FakeDispatch, local_receiver

from runbook_lib.adapters.webhook import make_app
from runbook_sandbox import alerting
from runbook_sandbox.prometheus_server import free_port

__all__ = ["ServedReceiver", "require_alertmanager"]


def require_alertmanager() -> None:
    """Skip without an Alertmanager binary; fail instead under CI, where it must run."""
    if alerting.alertmanager_binary() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{alerting.INSTALL_HINT} (CI=true: must run)")
        pytest.skip(alerting.INSTALL_HINT)


class ServedReceiver:
    """``local_receiver`` under ``tmp`` with ``runs`` as its dispatch, started and answering
    ``/alerts`` with the sandbox's Alertmanager token at ``url``."""

    def __init__(self, tmp: Path, runs: FakeDispatch) -> None:
        token = alerting.token_file(tmp).read_text().strip()
        self.runs = runs
        self.receiver = local_receiver(tmp, runs)
        self.receiver.start()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/alerts"
        self.loop = asyncio.new_event_loop()
        self.app_runner = web.AppRunner(make_app(self.receiver, token=token), access_log=None)
        self.loop.run_until_complete(self.app_runner.setup())
        site = web.TCPSite(self.app_runner, "127.0.0.1", self.port)
        self.loop.run_until_complete(site.start())
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.app_runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.receiver.close()
