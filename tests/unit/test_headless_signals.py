"""SIGINT/SIGTERM during a headless run: the notebook is interrupted, then aborted; the
collection after it stops; the sealing never does. Real signals sent to this process."""

from __future__ import annotations

import os
import signal

import pytest

from runbook_lib.headless.signals import Aborted, Phase, Signals


class Kernel:
    def __init__(self) -> None:
        self.interrupts = 0

    def interrupt(self) -> None:
        self.interrupts += 1


def test_the_first_signal_interrupts_the_notebook_the_second_aborts_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    kernel = Kernel()
    with Signals(kernel) as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        assert (signals.received, kernel.interrupts) == (signal.SIGTERM, 1)
        with pytest.raises(Aborted, match="SIGINT received twice"):
            os.kill(os.getpid(), signal.SIGINT)
        signals.enter(Phase.SEAL)
    assert signals.received == signal.SIGTERM  # the first one is the run's
    assert "SIGTERM received: stopping the run" in capsys.readouterr().err


def test_a_signal_stops_the_collection(capsys: pytest.CaptureFixture[str]) -> None:
    kernel = Kernel()
    with Signals(kernel) as signals:
        signals.enter(Phase.COLLECT)
        with pytest.raises(Aborted):
            os.kill(os.getpid(), signal.SIGINT)
    assert kernel.interrupts == 0


def test_the_sealing_is_never_interrupted(capsys: pytest.CaptureFixture[str]) -> None:
    kernel = Kernel()
    with Signals(kernel) as signals:
        signals.enter(Phase.SEAL)
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # even twice
        sealed = True
    assert sealed
    assert signals.received == signal.SIGTERM
    assert kernel.interrupts == 0


def test_the_handlers_before_the_run_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with Signals(Kernel()):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
