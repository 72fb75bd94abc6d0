"""The sandbox of one pytest process: its own per pytest-xdist worker, booted in the background.

The pytest plugin (``runbook_sandbox.pytest_plugin``) gives every test session one sandbox
through this module:

- ``worker_environment`` / ``use_worker_sandbox``: worker ``gwN`` (N > 0) runs the sandbox
  ``<name>-gwN`` with its state in ``<state>/gwN`` and its ports at
  ``RUNBOOK_SANDBOX_PORT_BASE + 100 * N``; ``gw0`` and a lone process use the sandbox the
  environment names (docs/CONTRACTS.md, "Several sandboxes at once");
- ``BOOT``: right after collection, a process whose tests will need the sandbox starts it in
  a thread (or attaches to it when it already runs), so the cluster boots while the first
  tests run; ``wait`` returns it; ``finish`` stops it if this process started it, unless
  ``RUNBOOK_SANDBOX_KEEP=1``;
- ``spare_port_base``: ports no sandbox of this run uses, for a test that starts one of its own.

No pytest here: the plugin says skip or fail; this module only starts and stops.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runbook_sandbox.sandbox import Sandbox

__all__ = [
    "BOOT",
    "PORTS_PER_SANDBOX",
    "Boot",
    "spare_port_base",
    "use_worker_sandbox",
    "worker_environment",
]

DEFAULT_PORT_BASE = 19000  # runbook_sandbox.paths' default
PORTS_PER_SANDBOX = 100
# A cold start on a busy 2-core machine, with a margin (a warm one takes well under a minute).
START_DEADLINE_S = 900.0


def _slot(worker: str) -> int | None:
    return int(worker.removeprefix("gw")) if worker.startswith("gw") else None


def worker_environment(base: Mapping[str, str], worker: str) -> dict[str, str]:
    """The sandbox name, state and port base of one pytest-xdist worker (``gw3``): the base
    ones for ``gw0`` and a lone process, shifted by 100 ports per further worker."""
    slot = _slot(worker)
    if not slot:
        return {}
    from runbook_sandbox import paths

    name = base.get("RUNBOOK_SANDBOX_NAME") or paths.DEFAULT_NAME
    port_base = int(base.get("RUNBOOK_SANDBOX_PORT_BASE") or DEFAULT_PORT_BASE)
    state = base.get("RUNBOOK_SANDBOX_STATE") or str(paths.state_dir())
    return {
        "RUNBOOK_SANDBOX_NAME": f"{name}-{worker}",
        "RUNBOOK_SANDBOX_PORT_BASE": str(port_base + PORTS_PER_SANDBOX * slot),
        "RUNBOOK_SANDBOX_STATE": str(Path(state) / worker),
    }


def use_worker_sandbox() -> None:
    """Point this process' environment at its own sandbox, before anything reads it. Pods
    become Ready at once on a test sandbox (kwok's own pace; ``up`` defaults to a real
    cluster's 3 s) unless the environment says otherwise."""
    os.environ.update(worker_environment(os.environ, os.environ.get("PYTEST_XDIST_WORKER", "")))
    os.environ.setdefault("RUNBOOK_SANDBOX_POD_READY_DELAY", "0")


def spare_port_base() -> int:
    """A port base no sandbox of this run uses, for a test that starts a sandbox of its own
    (one such test at a time per worker): past the last worker's."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    slot = _slot(os.environ.get("PYTEST_XDIST_WORKER", "")) or 0
    mine = int(os.environ.get("RUNBOOK_SANDBOX_PORT_BASE") or DEFAULT_PORT_BASE)
    run_base = mine - PORTS_PER_SANDBOX * slot  # before this worker's shift
    return run_base + PORTS_PER_SANDBOX * (workers + slot)


class Boot:
    """The background start of this process' sandbox and what came of it."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._handle: Sandbox | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.started_here = False

    def begin(self) -> None:
        """Start the sandbox in a thread, or attach to it when it already runs."""
        import runbook_sandbox

        if self._thread is not None or self._done.is_set():
            return
        running = runbook_sandbox.attach()
        if running is not None:
            self._handle = running
            self._done.set()
            return
        self.started_here = True
        self._thread = threading.Thread(target=self._bring_up, name="sandbox-up", daemon=True)
        self._thread.start()

    def _bring_up(self) -> None:
        import runbook_sandbox
        from runbook_sandbox import paths

        log = paths.state_dir() / "pytest-sandbox.log"
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a") as out:

                def progress(message: str) -> None:
                    out.write(f"{message}\n")
                    out.flush()

                self._handle = runbook_sandbox.up(progress=progress)
        except BaseException as err:  # ``wait`` reports it to the test that needs it
            self._error = err
        finally:
            self._done.set()

    def wait(self) -> Sandbox:
        """The running sandbox (started now if collection did not start it)."""
        self.begin()
        if not self._done.wait(START_DEADLINE_S):
            raise RuntimeError(f"the sandbox did not start within {START_DEADLINE_S:.0f} s")
        if self._error is not None:
            raise RuntimeError(f"the sandbox did not start: {self._error}") from self._error
        assert self._handle is not None
        return self._handle

    def finish(self) -> None:
        """Stop the sandbox this process started (after its last test)."""
        import runbook_sandbox

        if self._thread is not None:
            self._thread.join(START_DEADLINE_S)
        if self.started_here and os.environ.get("RUNBOOK_SANDBOX_KEEP") != "1":
            runbook_sandbox.down(progress=lambda _message: None)


BOOT = Boot()
