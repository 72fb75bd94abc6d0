"""A run of the rollback notebook as a child process of the receiver (``runbook serve``).

The child is the command a person runs, ``runbook run rollback -p/-r NAME VALUE ...``, in its
own session (a signal meant for the receiver does not cut a rollback in half). Credentials
reach it through its environment (``RUNBOOK_<NAME>``), never its command line.

Which child belongs to which run, across receiver restarts, is told by a lock, not by a pid:
the receiver takes an exclusive ``flock`` on ``<run>.lock`` and hands that open file to the
child, then lets go of its own copy. The lock is held exactly as long as the child lives, so a
restarted receiver asks the lock (``holder``) whether the run is still going (a pid may have
been reused; a lock cannot outlive its holder) and reads the child's pid from the file to stop
it (``terminate``: SIGTERM to its process group, so it records the interrupt and seals its
evidence, then SIGKILL).
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from runbook_lib.adapters import processes

__all__ = ["Child", "ChildStillRunning", "holder", "start_child", "terminate", "wait_child"]


@dataclass
class Child:
    """A run's child: ``proc`` is None when it was started by an earlier receiver."""

    lock_path: Path
    pid: int
    proc: subprocess.Popen[bytes] | None = None


class ChildStillRunning(RuntimeError):
    """The run's lock is held: a child of an earlier receiver is still working on it."""


def _open_lock(path: Path, *, create: bool) -> int:
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    return os.open(path, flags, 0o600)


def start_child(
    argv: Sequence[str],
    *,
    lock_path: Path,
    log_path: Path,
    env: Mapping[str, str] | None = None,
) -> Child:
    """Start ``argv`` holding the run's lock. Raises ``ChildStillRunning`` when the lock is
    held already, ``OSError`` when the program cannot start."""
    lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = _open_lock(lock_path, create=True)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise ChildStillRunning(f"{lock_path} is held by a running child") from err
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                pass_fds=(fd,),  # the child holds the lock from here on
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{proc.pid}\n".encode(), 0)
    finally:
        os.close(fd)  # our copy only: the lock stays with the child's
    return Child(lock_path, proc.pid, proc)


def holder(lock_path: Path) -> int | None:
    """The pid of the live child holding the run's lock (0 when it has not written it yet);
    None when no process holds it (the child ended, or never started)."""
    try:
        fd = _open_lock(lock_path, create=False)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def wait_child(child: Child, *, timeout_s: float | None = None, poll_s: float = 0.2) -> int | None:
    """Until the child ends; its exit status when it is ours to reap, else None. Raises
    ``TimeoutError`` after ``timeout_s`` (the child still runs)."""
    if child.proc is not None:
        try:
            return child.proc.wait(timeout_s)
        except subprocess.TimeoutExpired as err:
            raise TimeoutError(f"pid {child.pid} still runs after {timeout_s:g} s") from err
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while holder(child.lock_path) is not None:
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"pid {child.pid} still runs after {timeout_s:g} s")
        time.sleep(poll_s)  # not our child: nothing to wait on but its lock
    return None


def terminate(lock_path: Path, *, timeout_s: float = 45.0, poll_s: float = 0.1) -> bool:
    """Stop the run's child: SIGTERM to its process group (it records the interrupt and
    seals its evidence), SIGKILL after ``timeout_s``. True when no child holds the lock."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        pid = holder(lock_path)
        if pid is None:
            return True
        if pid:
            processes.signal_group(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if holder(lock_path) is None:
                return True
            time.sleep(poll_s)
    return holder(lock_path) is None
