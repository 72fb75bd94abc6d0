"""A disk that fills up during the run: the events the timeline file refused travel in the
executed notebook's summary, and ``runbook run`` puts them back before it reads the Ending.

This is how a run whose timeline lost its last events (the rollback, recovery, ``finish``)
still ends with its true outcome, with no reading of the notebook's printed text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from clocks import TickingClock

from runbook_lib.display.summary import METADATA_KEY, Summary, take_unwritten
from runbook_lib.record.ending import Ending
from runbook_lib.record.facts import Finished, Outcome, Recovered, RolledBack, record_fact
from runbook_lib.record.timeline import EventKind, Timeline

T0 = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


class FillingDisk:
    """Appends like the evidence writer: ``lines`` whole lines, then half of the next one
    (as a real disk that fills up mid-write), then nothing, each refusal ENOSPC."""

    def __init__(self, lines: int) -> None:
        self.lines = lines

    def __call__(self, path: Path, text: str) -> None:
        self.lines -= 1
        if self.lines >= 0:
            with path.open("a") as fh:
                fh.write(text)
            return
        if self.lines == -1:
            with path.open("a") as fh:
                fh.write(text[: len(text) // 2])
        raise OSError(28, "No space left on device")


def _kernel_run(path: Path) -> tuple[Timeline, Summary]:
    timeline = Timeline(path, clock=TickingClock(T0), append=FillingDisk(2))
    summary = Summary(title="Rollback", timeline=timeline)
    timeline.record("start_run", EventKind.INFO, "run started", params={}, dry_run=False)
    record_fact(timeline, "helm_rollback", RolledBack(2, 1, "helm rollback app 1"), "ran")
    # The disk is full from here on: these stay in the kernel's memory.
    record_fact(timeline, "check_recovery", Recovered(T0, T0, 0.0), "recovered")
    record_fact(timeline, "finish", Finished(Outcome.RECOVERED, 40.0, 100.0, 300.0), "done")
    return timeline, summary


def test_the_events_the_disk_refused_are_put_back_and_the_ending_is_true(tmp_path: Path) -> None:
    path = tmp_path / "timeline.jsonl"
    kernel, summary = _kernel_run(path)
    assert kernel.lost is not None
    assert [e.step for e in kernel.unwritten][-2:] == ["check_recovery", "finish"]
    # What the runner reads from disk alone: the rollback, and no ending.
    on_disk = Timeline(path)
    assert Ending.of(on_disk.events).outcome is Outcome.INCOMPLETE
    assert len(on_disk.damaged) == 1  # the line the disk cut short
    # The executed notebook carries the summary's metadata: the runner takes them from there.
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "outputs": [
                    {"output_type": "display_data", "metadata": {METADATA_KEY: summary.data()}}
                ],
            }
        ]
    }
    unwritten = take_unwritten(notebook)
    assert unwritten == kernel.unwritten
    assert take_unwritten(notebook) == []  # taken: the evidence notebook does not carry them
    runner = Timeline(path)
    assert runner.restore(unwritten) == len(unwritten)
    assert runner.restore(unwritten) == 0  # never twice
    ending = Ending.of(runner.events)
    assert ending.outcome is Outcome.RECOVERED
    assert ending.cluster_sentence == "rolled back by this run: revision 2 -> 1"
    # And they are on disk now, in time order.
    again = Timeline(path)
    assert Ending.of(again.events).outcome is Outcome.RECOVERED


def test_a_run_that_lost_nothing_carries_nothing(tmp_path: Path) -> None:
    timeline = Timeline(tmp_path / "timeline.jsonl", clock=TickingClock(T0))
    timeline.record("start_run", EventKind.INFO, "run started")
    assert "unwritten_events" not in Summary(title="Rollback", timeline=timeline).data()
