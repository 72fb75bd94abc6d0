"""Run the rollback notebook as ``runbook run rollback`` in a child process, for the receiver.

Used by ``runbook serve`` (local dispatch). The child is the same command a person runs
(``cli/run.py``'s ``run_rollback``: papermill, redaction, sealed evidence), in its own session
so a signal meant for the receiver does not cut a rollback in half; the receiver journals its
pid and decides what to do with it after a restart (``terminate``). The run's outcome and
verdict come from the incident record it leaves (``record.json``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RunResult", "SubprocessRunner", "is_running", "read_outcome", "terminate"]

_ENTRY = "import sys; from runbook_lib.cli import main; sys.exit(main())"


@dataclass(frozen=True)
class RunResult:
    """How a notebook run ended: exit status, evidence folder, outcome/verdict from its record."""

    status: int
    incident_dir: Path
    outcome: str
    verdict: str
    wall_s: float
    log_tail: str = ""


def read_outcome(incident_dir: Path) -> tuple[str, str]:
    """(outcome, verdict) from ``record.json``; ("", "") when the run left no record."""
    try:
        record = json.loads((incident_dir / "record.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "", ""
    if not isinstance(record, dict):
        return "", ""
    return str(record.get("outcome") or ""), str(record.get("verdict") or "")


def _argv(parameters: Mapping[str, Any]) -> list[str]:
    argv = [sys.executable, "-c", _ENTRY, "run", "rollback", "--quiet"]
    for name, value in parameters.items():
        if isinstance(value, bool | int | float):
            argv += ["-p", name, str(value)]  # read back as True/3/0.5 (papermill's rules)
        else:
            argv += ["-r", name, str(value)]  # text stays text ("007" is not 7)
    return argv


class SubprocessRunner:
    """``runner(parameters, on_start=...) -> RunResult``; ``parameters`` must name
    ``output_dir`` and ``incident_id`` (the receiver fixes both, so it knows the folder)."""

    def __init__(self, *, timeout_s: float = 3600.0, env: Mapping[str, str] | None = None):
        self.timeout_s = timeout_s
        self.env = dict(env) if env is not None else None

    def __call__(
        self,
        parameters: Mapping[str, Any],
        *,
        on_start: Callable[[int], None] = lambda _pid: None,
    ) -> RunResult:
        incident_dir = Path(str(parameters["output_dir"])) / str(parameters["incident_id"])
        incident_dir.mkdir(parents=True, exist_ok=True)
        log_path = incident_dir.parent / f".{incident_dir.name}.runner.log"
        started = time.monotonic()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                _argv(parameters),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
            on_start(proc.pid)
            try:
                status = proc.wait(self.timeout_s)
            except subprocess.TimeoutExpired:
                terminate(proc.pid)
                status = proc.wait()
        wall = time.monotonic() - started
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
        outcome, verdict = read_outcome(incident_dir)
        return RunResult(status, incident_dir, outcome, verdict, wall, tail)


def is_running(pid: int) -> bool:
    """The pid runs ``runbook run rollback`` started by a runner (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and _ENTRY.encode() in cmdline


def terminate(pid: int, *, timeout_s: float = 30.0) -> None:
    """SIGTERM to the run's process group (the notebook seals its evidence), then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid if not is_running(pid) else 0
            if done:
                return
            time.sleep(0.1)
