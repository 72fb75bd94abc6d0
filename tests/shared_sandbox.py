"""One sandbox for one test run, however many pytest-xdist workers share it.

The first process of the run whose collected tests need the sandbox starts it in a background
thread right after collection, so the cluster boots while the pure tests run; the other
workers find it starting and wait for it when their first sandbox test asks. The run's
controller (the process without workers' input; the only process without xdist) stops it after
every worker is done, when this run started it and ``RUNBOOK_SANDBOX_KEEP`` is not ``1``.

The run is named by ``RUNBOOK_TEST_RUN``, set by the controller before the workers start; a
status file in the sandbox's state folder says which run started it and how far it got, under
an exclusive ``flock`` so two workers never start it twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox

RUN_ENV = "RUNBOOK_TEST_RUN"
# Cold start of a whole sandbox on a busy 2-core machine, with a margin (a warm one: ~1 min).
START_DEADLINE_S = 900.0
_starter: threading.Thread | None = None


def name_this_run() -> str:
    """The run's id, inherited by the workers (called by the controller before they start)."""
    return os.environ.setdefault(RUN_ENV, uuid.uuid4().hex)


def _run_id() -> str:
    return os.environ.get(RUN_ENV) or name_this_run()


def _state_dir() -> Path:
    from runbook_sandbox import paths

    return paths.state_dir()


def _status_file() -> Path:
    return _state_dir() / "pytest-sandbox.json"


def _log_file() -> Path:
    return _state_dir() / "pytest-sandbox.log"


@contextmanager
def _locked() -> Iterator[None]:
    state = _state_dir()
    state.mkdir(parents=True, exist_ok=True)
    with (state / "pytest-sandbox.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read() -> dict[str, Any]:
    try:
        status: dict[str, Any] = json.loads(_status_file().read_text())
    except (OSError, ValueError):
        return {}
    return status if status.get("run") == _run_id() else {}


def _write(**status: Any) -> None:
    path = _status_file()
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps({"run": _run_id(), **status}))
    scratch.replace(path)


def _bring_up() -> None:
    import runbook_sandbox

    with _log_file().open("a") as log:

        def progress(message: str) -> None:
            log.write(f"{message}\n")
            log.flush()

        try:
            runbook_sandbox.up(progress=progress)
        except BaseException as err:  # the waiting workers must hear of any failure
            progress(traceback.format_exc())
            _write(status="failed", started_here=True, error=f"{type(err).__name__}: {err}")
            return
    _write(status="up", started_here=True)


def begin() -> None:
    """Start the sandbox in the background unless this run already has it (idempotent)."""
    import runbook_sandbox

    with _locked():
        if _read():
            return
        if runbook_sandbox.attach() is not None:
            _write(status="up", started_here=False)  # someone's running sandbox: leave it up
            return
        _write(status="starting", started_here=True)
    # Not a daemon: a worker that runs out of tests before the cluster is up still finishes
    # starting it, and records the outcome for the others.
    global _starter
    _starter = threading.Thread(target=_bring_up, name="sandbox-up")
    _starter.start()


def wait() -> Sandbox:
    """The running sandbox of this run; starts it first if nobody has (a lone test)."""
    import runbook_sandbox

    begin()
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        status = _read()
        if status.get("status") == "up":
            handle = runbook_sandbox.attach()
            if handle is None:
                raise RuntimeError("the sandbox of this test run stopped; see its state folder")
            return handle
        if status.get("status") == "failed":
            raise RuntimeError(f"sandbox did not start: {status.get('error')} ({_log_file()})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"sandbox not up after {START_DEADLINE_S:.0f} s ({_log_file()})")
        time.sleep(0.5)  # polling a file another process writes; no event to wait on


def finish() -> None:
    """Stop the sandbox when this run started it (the controller, after every worker)."""
    import runbook_sandbox

    if _starter is not None:  # a run without xdist that started it and never waited
        _starter.join(START_DEADLINE_S)
    if os.environ.get("RUNBOOK_SANDBOX_KEEP") == "1":
        return
    with _locked():
        status = _read()
        if not status.get("started_here"):
            return
        runbook_sandbox.down(progress=lambda _message: None)
        _status_file().unlink(missing_ok=True)
