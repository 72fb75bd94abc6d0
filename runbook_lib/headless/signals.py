"""SIGINT and SIGTERM while a headless run goes on: stop the notebook, never the sealing.

The first signal interrupts the executor (a ``KeyboardInterrupt`` in the running step, which
records itself as interrupted and gives the lock back) and again every ``RETRY_S`` until the
notebook returns (a signal between two cells reaches the next one). After ``GIVE_UP_S``, or at
a second signal, the notebook is aborted (``Aborted``). While the evidence is collected a
signal stops the collection; while it is sealed, a signal is noted and nothing else.
"""

from __future__ import annotations

import signal
import sys
import time
from enum import StrEnum
from typing import Any, Protocol

__all__ = ["Aborted", "Phase", "Signals"]


class Aborted(KeyboardInterrupt):
    """Raised in the main thread when the notebook or the collection must end now."""


class Phase(StrEnum):
    NOTEBOOK = "notebook"  # the executor runs the notebook: interrupt it
    COLLECT = "collect"  # the evidence is gathered from outside: stop that
    SEAL = "seal"  # the record and the manifest are written: let them finish


class _Interruptible(Protocol):
    def interrupt(self) -> None: ...


class Signals:
    """Installed for the length of a headless run (``with Signals(executor) as signals``)."""

    RETRY_S = 2
    GIVE_UP_S = 20

    def __init__(self, executor: _Interruptible, *, name: str = "runbook run") -> None:
        self.executor = executor
        self.name = name
        self.received: int | None = None
        self.phase = Phase.NOTEBOOK
        self._given_up_at = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.alarm(0)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def enter(self, phase: Phase) -> None:
        """The run moved on to ``phase`` (the notebook's retries stop)."""
        signal.alarm(0)
        self.phase = phase

    def _handle(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGALRM:
            if self.phase is not Phase.NOTEBOOK:
                return
            if time.monotonic() >= self._given_up_at:
                raise Aborted("the notebook did not stop after the interrupt; it was ended")
            signal.alarm(self.RETRY_S)
            self.executor.interrupt()
            return
        first = self.received is None
        name = signal.Signals(signum).name
        if first:
            self.received = signum
            print(
                f"{self.name}: {name} received: stopping the run, writing and sealing the "
                "evidence collected so far",
                file=sys.stderr,
                flush=True,
            )
        if self.phase is Phase.NOTEBOOK:
            if not first:
                raise Aborted(f"{name} received twice")
            self._given_up_at = time.monotonic() + self.GIVE_UP_S
            signal.alarm(self.RETRY_S)
            self.executor.interrupt()
        elif self.phase is Phase.COLLECT:
            raise Aborted(f"{name} received")
