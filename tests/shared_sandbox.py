"""The sandbox of one test process: each pytest-xdist worker has its own, booted in the background.

The tests that use the sandbox assume they are alone on it (they reset the release ``app``,
stop its Jaeger, take its lock), so workers never share one: worker ``gwN`` runs the sandbox
``<name>-gwN`` with its state in ``<state>/workers/gwN`` and its ports at
``RUNBOOK_SANDBOX_PORT_BASE + 100 * N`` (docs/CONTRACTS.md, "Several sandboxes at once").
A run without workers uses the sandbox the environment names, as before, and attaches to it
when it is already up.

Right after collection, a process whose tests will need the sandbox starts it in a thread,
so the cluster boots while the process runs its first tests; the ``sandbox`` fixture waits
for it. At the end the process stops the sandbox it started, unless
``RUNBOOK_SANDBOX_KEEP=1``. Tests that need a sandbox of their own take a spare port base
from ``spare_port_base``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox

DEFAULT_PORT_BASE = 19000  # runbook_sandbox.paths' default
PORTS_PER_SANDBOX = 100
# A cold start on a busy 2-core machine, with a margin (a warm one takes well under a minute).
START_DEADLINE_S = 900.0


class _Start:
    """The background start of this process' sandbox and what came of it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.handle: Sandbox | None = None
        self.error: BaseException | None = None
        self.started_here = False
        self.thread: threading.Thread | None = None


_START = _Start()


def _worker_slot() -> int | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker.removeprefix("gw")) if worker.startswith("gw") else None


def _base_port() -> int:
    return int(os.environ.get("RUNBOOK_SANDBOX_PORT_BASE") or DEFAULT_PORT_BASE)


def own_sandbox_per_worker() -> None:
    """Point this worker's environment at its own sandbox (before anything reads it)."""
    slot = _worker_slot()
    if slot is None:
        return
    from runbook_sandbox import paths

    worker = f"gw{slot}"
    os.environ["RUNBOOK_SANDBOX_STATE"] = str(paths.state_dir() / "workers" / worker)
    os.environ["RUNBOOK_SANDBOX_NAME"] = f"{paths.cluster_name()}-{worker}"
    os.environ["RUNBOOK_SANDBOX_PORT_BASE"] = str(_base_port() + PORTS_PER_SANDBOX * slot)


def spare_port_base() -> int:
    """A port base no sandbox of this run uses, for a test that starts a sandbox of its own
    (one such test at a time per worker)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    slot = _worker_slot() or 0
    own = _base_port() - PORTS_PER_SANDBOX * slot  # the run's base, before the worker's shift
    return own + PORTS_PER_SANDBOX * (workers + slot)


def _bring_up(log: Path) -> None:
    import runbook_sandbox

    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as out:

            def progress(message: str) -> None:
                out.write(f"{message}\n")
                out.flush()

            _START.handle = runbook_sandbox.up(progress=progress)
    except BaseException as err:  # the waiting fixture reports it
        _START.error = err
    finally:
        _START.done.set()


def begin() -> None:
    """Start this process' sandbox in the background, or attach to it if it already runs."""
    import runbook_sandbox
    from runbook_sandbox import paths

    if _START.thread is not None or _START.done.is_set():
        return
    running = runbook_sandbox.attach()
    if running is not None:
        _START.handle = running
        _START.done.set()
        return
    _START.started_here = True
    log = paths.state_dir() / "pytest-sandbox.log"
    _START.thread = threading.Thread(target=_bring_up, args=(log,), name="sandbox-up")
    _START.thread.start()


def wait() -> Sandbox:
    """This process' running sandbox (started now if collection did not start it)."""
    begin()
    if not _START.done.wait(START_DEADLINE_S):
        raise RuntimeError(f"the sandbox did not start within {START_DEADLINE_S:.0f} s")
    if _START.error is not None:
        raise RuntimeError(f"the sandbox did not start: {_START.error}") from _START.error
    assert _START.handle is not None
    return _START.handle


def finish() -> None:
    """Stop the sandbox this process started (after its last test)."""
    import runbook_sandbox

    if _START.thread is not None:
        _START.thread.join(START_DEADLINE_S)
    if _START.started_here and os.environ.get("RUNBOOK_SANDBOX_KEEP") != "1":
        runbook_sandbox.down(progress=lambda _message: None)
