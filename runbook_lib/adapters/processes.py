"""This machine's processes, in one place: who this process is, whether a pid still names the
process that took a lock, and the processes a run started and must stop.

psutil reads the start time the same way on Linux and macOS (an engineer's laptop), so a pid
reused by another process is told apart from the one that took the lock. Finding a process's
children and ending a process with everything it started (SIGTERM, a grace period, then
SIGKILL) go through psutil too, rather than reading ``/proc`` by hand. A process that leads its
own process group (a kernel, a ``runbook run`` child started in its own session) is signalled
as a group, so what it started (helm, kubectl) stops with it.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterable
from contextlib import suppress

import psutil

__all__ = [
    "alive",
    "children",
    "end",
    "host_name",
    "interrupt",
    "process_started",
    "signal_group",
    "this_process",
]


def host_name() -> str:
    """This machine's host name, as the Lease records it."""
    return socket.gethostname()


def process_started(pid: int) -> float | None:
    """When the process ``pid`` started (Unix seconds), or None when there is no such process.

    A zombie (exited, not yet reaped: common in a container whose first process reaps
    nothing) is gone too. A process of another user still exists (if its start time cannot be
    read it counts as existing with an unknown start, 0.0).
    """
    if pid <= 0:
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(process.create_time())
    except psutil.NoSuchProcess:  # ZombieProcess included
        return None
    except (psutil.AccessDenied, OSError):
        return 0.0


def this_process() -> tuple[str, int, float]:
    """(host, pid, start time) of the calling process."""
    pid = os.getpid()
    return host_name(), pid, process_started(pid) or 0.0


_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, ProcessLookupError)


def children(pid: int | None = None) -> list[psutil.Process]:
    """The direct children of ``pid`` (default: this process); [] when it is gone."""
    try:
        return psutil.Process(pid).children(recursive=False)
    except _GONE:
        return []


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an unreaped process has ended)."""
    return process_started(pid) is not None


def _leads_group(process: psutil.Process) -> bool:
    try:
        return os.getpgid(process.pid) == process.pid
    except OSError:
        return False


def _signal(process: psutil.Process, sig: int) -> None:
    """``sig`` to the process and what it started (its group when it leads one)."""
    with suppress(*_GONE, psutil.AccessDenied, OSError):
        targets = [process, *process.children(recursive=True)]
        if _leads_group(process):
            os.killpg(process.pid, sig)
        for target in targets:
            with suppress(*_GONE, psutil.AccessDenied):
                target.send_signal(sig)


def interrupt(processes: Iterable[psutil.Process]) -> None:
    """SIGINT to each (a kernel turns it into a ``KeyboardInterrupt`` in the running cell)."""
    for process in processes:
        with suppress(*_GONE, psutil.AccessDenied):
            process.send_signal(signal.SIGINT)


def end(processes: Iterable[psutil.Process], *, grace_s: float = 3.0) -> None:
    """End each process and everything it started: SIGTERM, ``grace_s``, then SIGKILL.

    Children of this process are reaped. Returns when all of them and what they started are
    gone (or SIGKILL was sent and waited for ``grace_s`` once more).
    """
    pending: list[psutil.Process] = []
    for process in processes:
        with suppress(*_GONE, psutil.AccessDenied):
            pending += [process, *process.children(recursive=True)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not pending:
            return
        for process in pending:
            _signal(process, sig)
        _gone, pending = psutil.wait_procs(pending, timeout=grace_s)


def signal_group(pid: int, sig: int) -> bool:
    """``sig`` to the process group ``pid`` leads; False when there is none (or not ours)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
