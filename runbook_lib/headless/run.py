"""One headless run of a runbook notebook, from parameters to its ``Ending``.

``run_notebook`` checks the parameters (``prepare``), runs the notebook through an
``Executor`` under ``Signals``, then ends the run from outside the notebook, whatever happened
inside it:

1. the events the kernel could not write (a full disk) are put back on the timeline;
2. the executed notebook (redacted) goes into the bundle as ``rollback.ipynb``
   (``rollback.attempt-N.ipynb`` for a re-run of the incident) with its HTML;
3. what only this process saw goes on the timeline: a notebook that could not start, a
   kernel that died, a signal;
4. after a failure or a signal, the evidence the post-rollback steps did not write is
   collected (after a signal, only what is on disk);
5. the room reserved for the ending is released, the record written, the bundle sealed.

A run that preflight refused for lack of room writes nothing but its record and manifest.
No exception ends a run: what goes wrong while ending it is evidence lost, said in the
``Ending``, with the traceback kept in ``traceback.txt``.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook_lib.core.verdict import Verdict
from runbook_lib.errors import RunbookError
from runbook_lib.evidence import files
from runbook_lib.evidence.manifest import seal
from runbook_lib.headless.executor import Execution, Executor
from runbook_lib.headless.prepare import FIRST_STEP_MARKER, Prepared, prepare
from runbook_lib.headless.scratch import scratch
from runbook_lib.headless.signals import Aborted, Phase, Signals
from runbook_lib.record.ending import Cluster, Ending
from runbook_lib.record.facts import (
    START_STEP,
    EvidenceLost,
    Outcome,
    StepFailure,
    attempt_file,
    attempt_number,
    record_fact,
)
from runbook_lib.record.timeline import (
    RUN_ID_ENV,
    EventKind,
    FailureKind,
    Timeline,
    error_kind,
    new_run_id,
)

__all__ = ["HeadlessRun", "run_notebook"]

RUNNER_STEP = "runbook_run"  # this process's own events on the timeline


@dataclass(frozen=True)
class HeadlessRun:
    """A finished headless run: its ending, where its evidence is, and how long it took.

    ``problems``: sources the evidence could not be collected from (also in
    ``collection-errors.txt``), redacted. ``notebook``: the executed notebook's file name in
    the bundle ("" when none was written).
    """

    ending: Ending
    incident_dir: Path
    notebook: str
    wall_s: float
    kernel_to_first_step_s: float | None
    problems: tuple[str, ...] = ()
    assessment: bool = False  # the read-only assessment notebook (no cluster, no incident)


def _read_notebook(path: Path) -> Any:
    import nbformat

    try:
        return nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    except (OSError, ValueError):
        return None


def _first_step_s(raw: Any) -> float | None:
    from runbook_lib.evidence.notebook import notebook_timings

    if raw is None:
        return None
    return notebook_timings(raw, first_step_marker=FIRST_STEP_MARKER).kernel_to_first_step_s


class _Ending:
    """The evidence work after the notebook, each part guarded: what fails is lost, not
    raised."""

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.directory = prepared.incident_dir
        self.lost: list[str] = []
        self.problems: list[str] = []

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except Aborted:
            self.lost.append(f"{what}: stopped by a signal")
        except OSError as err:
            self.lost.append(f"{what}: {err.strerror or err}")
        except Exception as err:  # no traceback ends a run: it is kept as evidence instead
            self.lost.append(f"{what}: {type(err).__name__}: {err}")
            self.save_traceback(err)

    def save_traceback(self, err: BaseException) -> None:
        text = "".join(traceback.format_exception(err))
        with suppress(OSError):
            files.append_text(self.directory, "traceback.txt", self.prepared.redactor(text))

    def write_notebook(self, raw: Any, attempt: int = 1) -> str:
        from runbook_lib.evidence.notebook import write_notebook_evidence

        name = attempt_file(self.prepared.notebook.name, attempt)
        written = ""
        with self.guard(name):
            write_notebook_evidence(raw, self.directory, name=name, redactor=self.prepared.redactor)
            written = name
        return written


def _verdict(raw: Any) -> Verdict | None:
    from runbook_lib.display.summary import read_summary

    shown = read_summary(raw) if raw is not None else None
    try:
        return Verdict(str(shown.get("verdict"))) if shown else None
    except ValueError:
        return None


def _assessment(
    prepared: Prepared, raw: Any, failure: str, signal: int | None, wall_s: float
) -> HeadlessRun:
    """The read-only assessment's ending: its verdict (from its summary: it keeps no
    timeline), the notebook written, the folder sealed."""
    end = _Ending(prepared)
    name = end.write_notebook(raw) if raw is not None else ""
    state = seal(prepared.incident_dir, signing_key=prepared.signing_key)
    stopped = StepFailure(
        step="assess",
        error_type="" if signal is None else "interrupted",
        message=failure,
        at=datetime.now(UTC),
        kind=FailureKind.INTERRUPTED if signal is not None else FailureKind.OTHER,
    )
    if signal is not None:
        outcome = Outcome.INTERRUPTED
    else:
        outcome = Outcome.FAILED if failure else Outcome.ASSESSED
    ending = Ending(
        outcome=outcome,
        verdict=_verdict(raw),
        failure=stopped if failure or signal is not None else None,
        cluster=Cluster.NOT_CHANGED,
        cluster_sentence="not changed: the assessment only reads",
        changed_cluster=False,
        lost=tuple(end.lost),
        seal=state,
        signal=signal,
    )
    return HeadlessRun(
        ending, prepared.incident_dir, name, wall_s, _first_step_s(raw), assessment=True
    )


def _record_stop(
    timeline: Timeline, started: bool, message: str, kind: FailureKind, error_type: str
) -> None:
    """A failure only this process saw (the notebook never started its first step, the
    kernel died, a signal), as the step it belongs to: ``start_run`` when the attempt had not
    begun (so it is an attempt of its own), else this runner's."""
    step = RUNNER_STEP if started else START_STEP
    timeline.record(
        step, EventKind.STEP_FAILED, message, error_type=error_type, error_kind=kind.value
    )


def _end_rollback(
    prepared: Prepared,
    run_id: str,
    raw: Any,
    failure: str,
    before_start: RunbookError | None,
    signals: Signals,
) -> tuple[Ending, str, tuple[str, ...]]:
    from runbook_lib.display.summary import take_unwritten
    from runbook_lib.steps.read_back import read_back_if_cut_off
    from runbook_lib.steps.salvage import (
        collect_after_failure,
        open_failed_run,
        record_after_failure,
    )

    end = _Ending(prepared)
    ctx = open_failed_run(prepared.settings, run_id=run_id)
    timeline = ctx.timeline
    # 1. What the kernel kept in memory because the disk refused it.
    restored = timeline.restore(take_unwritten(raw)) if raw is not None else 0
    # This run's facts (its events carry its id; other runs of the incident may share the
    # timeline); none when its first step never ran.
    facts = ctx.facts
    started = facts.started_at is not None
    no_room = Ending.read(facts).room_problem != ""
    # 2. The executed notebook, unless there is no room for it.
    name = ""
    if raw is not None and no_room:
        end.problems.append(
            "the executed notebook was not kept: the evidence folder has no room for it "
            "(only the record and the manifest are written)"
        )
    elif raw is not None:
        name = end.write_notebook(raw, attempt_number(timeline.events, run_id))
    # 3. What only this process saw.
    received = signals.received
    appended = len(timeline.events)
    if before_start is not None:
        message = f"the run could not start: {type(before_start).__name__}: {before_start}"
        kind = error_kind(before_start)
        _record_stop(timeline, False, message, kind, type(before_start).__name__)
    elif failure and facts.failure is None and received is None:
        _record_stop(timeline, started, f"runbook run: {failure}", FailureKind.OTHER, "Notebook")
    if received is not None:
        stopped_itself = facts.failure is not None and facts.failure.kind is FailureKind.INTERRUPTED
        if not stopped_itself:
            signame = signal.Signals(received).name
            message = f"runbook run: interrupted by {signame}; the kernel was stopped"
            _record_stop(timeline, started, message, FailureKind.INTERRUPTED, signame)
    stopped = bool(failure) or received is not None or before_start is not None
    # helm rollback cut off (the kernel died or was stopped mid-rollback): what is so is read
    # from the cluster, never inferred, also after a signal.
    if stopped:
        with end.guard("the cluster read back"):
            read_back_if_cut_off(ctx)
    # 4. The evidence the notebook did not get to; after a signal, nothing more is read (the
    # person wants the run to stop), and a second signal stops the collection itself.
    if stopped and not no_room and received is None and before_start is None:
        signals.enter(Phase.COLLECT)
        with end.guard("evidence after the failure"):
            _written, problems = collect_after_failure(ctx)
            end.problems += problems
            end.lost += [p for p in problems if "OSError" in p]
        signals.enter(Phase.SEAL)
    # 5. The reserve's room is for what follows: the record and the manifest.
    files.release_room(prepared.incident_dir)
    if end.lost:
        record_fact(
            timeline, RUNNER_STEP, EvidenceLost(tuple(end.lost)), "evidence lost: see the list"
        )
    # The record is written last, from the whole timeline: the notebook wrote it before its
    # last steps ran, so its steps table ended at the step writing it. Metrics are read again
    # only when the run stopped before it could save them.
    grew = bool(stopped or restored or len(timeline.events) > appended)
    fetch = grew and received is None and not no_room and before_start is None
    with end.guard("incident record"):
        end.lost += record_after_failure(ctx, fetch=fetch)
    if timeline.lost is not None:
        end.lost.append(f"timeline: {timeline.lost.strerror or timeline.lost}")

    def unsigned(why: str) -> None:
        timeline.record("seal", EventKind.WARNING, f"the manifest is unsigned: {why}")

    state = seal(prepared.incident_dir, signing_key=prepared.signing_key, on_unsigned=unsigned)
    # A signal during the collection stopped it: the run was stopped by that signal too.
    stopped_by = signals.received
    # This run's facts: with one incident id, another run's rollback is not this run's.
    ending = Ending.read(ctx.facts, signal=stopped_by, lost=end.lost, seal=state)
    return ending, name, tuple(prepared.redactor(p) for p in end.problems)


@contextmanager
def _run_id_for_the_kernel(run_id: str) -> Iterator[None]:
    """``RUNBOOK_RUN_ID`` while the notebook runs (the kernel inherits it; ``start_run`` reads
    it), then as it was."""
    before = os.environ.get(RUN_ID_ENV)
    os.environ[RUN_ID_ENV] = run_id
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(RUN_ID_ENV, None)
        else:
            os.environ[RUN_ID_ENV] = before


def run_notebook(
    parameters: Mapping[str, Any],
    *,
    notebook: Path,
    executor: Executor,
    stream: bool = True,
) -> HeadlessRun:
    """Run ``notebook`` headless with ``parameters`` and leave its redacted, sealed bundle.

    Raises ``ParameterError`` for invalid parameters (before anything is written). Every
    other way the run goes wrong is in the returned ``HeadlessRun.ending``: its outcome,
    failure, what happened to the cluster, evidence lost, the seal, the exit status.
    """
    from runbook_lib.display.progress import PROGRESS_ENV

    prepared = prepare(parameters, notebook)
    # Headless: the waits' progress as lines in the log, not widgets nobody sees.
    os.environ.setdefault(PROGRESS_ENV, "text")
    began = time.monotonic()
    raw: Any = None
    failure = ""
    before_start: RunbookError | None = prepared.unreadable
    # Chosen here and handed to the kernel, so this run's events are told apart from another
    # run's on a shared incident timeline, even after the kernel died.
    run_id = new_run_id()
    with Signals(executor) as signals:
        if before_start is None:
            with scratch() as folder, _run_id_for_the_kernel(run_id):
                output = folder / notebook.name
                try:
                    failure = executor.execute(
                        Execution(notebook, output, prepared.params, folder, stream)
                    )
                except Aborted as err:
                    failure = f"notebook run aborted: {err}"
                except KeyboardInterrupt:  # raised by the kernel machinery after an interrupt
                    failure = "notebook run aborted: interrupted"
                except Exception as err:  # papermill on a notebook it cannot run, and the like
                    failure = f"notebook run aborted: {type(err).__name__}: {err}"
                finally:
                    signals.enter(Phase.SEAL)
                    executor.stop()
                raw = _read_notebook(output)
        wall_s = time.monotonic() - began
        if prepared.assess:
            return _assessment(prepared, raw, failure, signals.received, wall_s)
        ending, name, problems = _end_rollback(
            prepared, run_id, raw, failure, before_start, signals
        )
    return HeadlessRun(ending, prepared.incident_dir, name, wall_s, _first_step_s(raw), problems)
