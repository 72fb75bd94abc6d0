"""Progress of the waits: what is awaited, elapsed and remaining seconds."""

from __future__ import annotations

import io

from runbook_lib.display.progress import Wait


def test_text_mode_writes_lines_with_elapsed_and_remaining_time() -> None:
    now = [100.0]
    out = io.StringIO()
    wait = Wait("rollout of deployment/app", 300.0, clock=lambda: now[0], text=True, out=out)
    wait.bar.mininterval = 0  # every tick draws (the clock is fake)
    wait.bar.miniters = 0
    now[0] = 130.0
    wait.tick("1/3 updated")
    now[0] = 145.5
    wait.done("successfully rolled out")
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert any("rollout of deployment/app" in line and "30 of 300 s" in line
               and "4 min 30 s left: 1/3 updated" in line for line in lines), lines  # fmt: skip
    assert "successfully rolled out after 46 s" in lines[-1]


def test_a_short_wait_reads_in_tenths_of_a_second_not_as_a_raw_float() -> None:
    now = [0.0]
    out = io.StringIO()
    wait = Wait("recovery", 8.0, clock=lambda: now[0], started=0.0, text=True, out=out)
    wait.bar.mininterval = 0
    wait.bar.miniters = 0
    now[0] = 1.9959000000000011
    wait.tick("not yet")
    wait.done("recovered")
    text = out.getvalue()
    assert "6.0 s left: not yet" in text
    assert text.splitlines()[-1].endswith("recovered after 2.0 s")
    assert "1.9959" not in text


def test_elapsed_never_passes_the_budget_and_failure_is_drawn() -> None:
    now = [0.0]
    out = io.StringIO()
    try:
        with Wait("recovery", 10.0, clock=lambda: now[0], started=0.0, text=True, out=out) as w:
            now[0] = 25.0
            w.tick("not yet")
            assert w.bar.n == 10.0
            raise TimeoutError
    except TimeoutError:
        pass
    assert "stopped: TimeoutError" in out.getvalue()
    assert w.bar.n == 10.0  # a wait that ran out is not drawn as full
