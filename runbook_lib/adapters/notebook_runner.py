"""Run the rollback notebook as ``runbook run rollback`` in a child process, for the receiver.

Used by ``runbook serve`` (local dispatch). The child is the same command a person runs
(``cli/run.py``'s ``run_rollback``: papermill, redaction, sealed evidence), in its own session
so a signal meant for the receiver does not cut a rollback in half; the receiver journals its
pid and decides what to do with it after a restart (``terminate``). The run's outcome and
verdict are its ``Ending``, which the child writes as JSON (``--ending-json``, beside the
incident folder): this module reads them from there and works nothing out itself.
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

from runbook_lib.adapters import processes

__all__ = ["RunResult", "SubprocessRunner", "is_running", "read_ending", "terminate"]

_ENTRY = "import sys; from runbook_lib.cli import main; sys.exit(main())"


@dataclass(frozen=True)
class RunResult:
    """How a notebook run ended: exit status, evidence folder, outcome/verdict of its Ending."""

    status: int
    incident_dir: Path
    outcome: str
    verdict: str
    wall_s: float
    log_tail: str = ""


def read_ending(path: Path) -> tuple[str, str]:
    """(outcome, verdict) of the Ending a run wrote to ``path``; ("", "") when it wrote none
    (killed before its end)."""
    try:
        ending = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "", ""
    if not isinstance(ending, dict):
        return "", ""
    return str(ending.get("outcome") or ""), str(ending.get("verdict") or "")


def _argv(parameters: Mapping[str, Any], ending: Path) -> list[str]:
    argv = [
        sys.executable,
        "-c",
        _ENTRY,
        "run",
        "rollback",
        "--quiet",
        "--ending-json",
        str(ending),
    ]
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
        ending = incident_dir.parent / f".{incident_dir.name}.ending.json"
        ending.unlink(missing_ok=True)  # an earlier attempt's is not this one's
        started = time.monotonic()
        # The log is the run's own output (redacted); kept 0640 like the evidence.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(log_path, flags, 0o640), "wb") as log:
            proc = subprocess.Popen(
                _argv(parameters, ending),
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
                status = _stop(proc)
        wall = time.monotonic() - started
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
        outcome, verdict = read_ending(ending)
        return RunResult(status, incident_dir, outcome, verdict, wall, tail)


def _stop(proc: subprocess.Popen[bytes], *, grace_s: float = 30.0) -> int:
    """SIGTERM to the child's group (it seals its evidence), SIGKILL after ``grace_s``; its
    status, waited for through its ``Popen`` so it is not lost."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        processes.signal_group(proc.pid, sig)
        try:
            return proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


def is_running(pid: int) -> bool:
    """The pid runs ``runbook run rollback`` started by a runner (not a reused pid)."""
    return processes.runs(pid, _ENTRY)


def terminate(pid: int, *, timeout_s: float = 30.0) -> None:
    """SIGTERM to the run's process group (the notebook seals its evidence), then SIGKILL."""
    processes.end_group(pid, grace_s=timeout_s)
