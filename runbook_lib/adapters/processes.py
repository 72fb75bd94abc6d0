"""This machine's processes, as the lock needs them: who this process is, and whether a pid
still names the process that took a lock.

psutil reads the start time the same way on Linux and macOS (an engineer's laptop), so a pid
reused by another process is told apart from the one that took the lock.
"""

from __future__ import annotations

import os
import socket

import psutil

__all__ = ["host_name", "process_started", "this_process"]


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
