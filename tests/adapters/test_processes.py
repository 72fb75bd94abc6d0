"""``adapters.processes``: finding and ending the processes a run started.

Real processes: a child in its own session that starts a grandchild (a kernel and the helm it
runs), one that ignores SIGTERM (a kernel stuck in a call).
"""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

from runbook_lib.adapters import processes

MARKER = "runbook-test-marker"
# Starts a grandchild, says its pid, then waits for its parent to end it.
PARENT = f"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "{MARKER}"])
print(child.pid, flush=True)
time.sleep(120)
"""
STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(120)
"""


def _start(code: str, *, session: bool) -> tuple[subprocess.Popen[str], str]:
    argv = [sys.executable, "-c", code, MARKER]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=session)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()  # the child is set up once it says so


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    proc, ready = _start(STUBBORN, session=False)
    assert ready == "ready"
    try:
        processes.end([psutil.Process(proc.pid)], grace_s=0.5)
        assert not processes.alive(proc.pid)  # killed and reaped: not even a zombie
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_kernel_and_what_it_started_end_together() -> None:
    proc, grandchild = _start(PARENT, session=True)
    try:
        assert proc.pid in {p.pid for p in processes.children()}
        processes.end([psutil.Process(proc.pid)], grace_s=5)
        assert not processes.alive(proc.pid)
        assert not processes.alive(int(grandchild))
    finally:
        if proc.poll() is None:
            proc.kill()


def test_gone_processes_are_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    assert not processes.alive(proc.pid)
    assert processes.children(proc.pid) == []
    assert not processes.signal_group(proc.pid, 0)
    assert processes.alive(os.getpid())
