"""Processes this tool started and must stop: the kernels of a headless run, a receiver's runs.

One place for finding a process's children, telling a live process from a gone one (or a
reused pid) and ending a process with everything it started (SIGTERM, a grace period, then
SIGKILL), through psutil rather than reading ``/proc`` by hand. A process that leads its own
process group (a kernel, a ``runbook run`` child started in its own session) is signalled as a
group, so what it started (helm, kubectl) stops with it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from contextlib import suppress

import psutil

__all__ = ["alive", "children", "end", "end_group", "interrupt", "runs", "signal_group"]

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, ProcessLookupError)


def children(pid: int | None = None) -> list[psutil.Process]:
    """The direct children of ``pid`` (default: this process); [] when it is gone."""
    try:
        return psutil.Process(pid).children(recursive=False)
    except _GONE:
        return []


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an unreaped process has ended)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except _GONE:
        return False
    except psutil.AccessDenied:
        return True  # someone else's process: it exists


def runs(pid: int, marker: str) -> bool:
    """``pid`` is alive and ``marker`` is one of its arguments (so not a reused pid)."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and marker in process.cmdline()
    except (*_GONE, psutil.AccessDenied):
        return False


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

    Children of this process are reaped. Returns when all are gone (or SIGKILL was sent and
    waited for ``grace_s`` once more).
    """
    pending = list(processes)
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


def end_group(pid: int, *, grace_s: float = 30.0) -> None:
    """End the process group ``pid`` leads (a run started in its own session): SIGTERM, up to
    ``grace_s`` for it to finish (a run seals its evidence), then SIGKILL. A child of this
    process is reaped (its ``Popen`` then knows no status: use ``signal_group`` there)."""
    try:
        process = psutil.Process(pid)
    except _GONE:
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        if not signal_group(pid, sig):
            return
        try:
            process.wait(timeout=wait_s)
        except psutil.TimeoutExpired:
            continue
        except _GONE:
            return
        return
