"""Headless runs to their ``Ending``, the notebook's cells run in this interpreter.

``InProcessExecutor`` stands in for papermill's kernel where the kernel process is not the
point: the steps, the evidence and the ending are the same code. Each test asserts on the
``HeadlessRun`` (what ``runbook run`` prints and exits with comes from it) and on the bundle a
person would open. The papermill runs of the same endings are in
``tests/notebooks/test_run_endings.py``.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import nbformat
import pytest
from headless_runs import BAD, HEALTHY, NOTEBOOK, headless_run, read_record, verifies

from runbook_lib.errors import InputFileError
from runbook_lib.evidence import files
from runbook_lib.headless import HeadlessRun, InProcessExecutor, run_notebook
from runbook_lib.record.facts import Outcome
from runbook_lib.record.timeline import FailureKind


def test_a_healthy_release_ends_done_and_sealed(tmp_path: Path) -> None:
    run = headless_run(tmp_path, HEALTHY)
    ending = run.ending
    assert (ending.outcome, ending.exit_status) == (Outcome.NO_ROLLBACK, 0)
    assert ending.cluster_sentence == "not changed by this run (helm rollback did not run)"
    assert ending.sealed
    assert run.notebook == "rollback.ipynb"
    executed = nbformat.read(run.incident_dir / "rollback.ipynb", as_version=4)
    decide = next(c for c in executed.cells if c.source == "rb.decide(ctx)")
    assert "Verdict: no rollback" in decide.outputs[-1]["data"]["text/plain"]
    assert not (run.incident_dir / files.RESERVE_NAME).exists()  # its room was given back
    assert read_record(run.incident_dir)["outcome"] == "no_rollback"
    assert verifies(run.incident_dir)
    # The sealed record was written after the last step: every step in its final state.
    md = (run.incident_dir / "record.md").read_text()
    assert "**Not rolled back: healthy**" in md
    steps = md.split("## Steps")[1].split("##")[0]
    rows = [r.split("|") for r in steps.splitlines() if r.startswith("| ") and "---" not in r]
    states = {row[1].strip(): row[4].strip() for row in rows}
    assert states["write_record"] == "done"
    assert states["save_notebook"] == "done"
    assert "in progress" not in steps
    assert "running" not in steps


def test_attempts_of_one_incident_are_kept_side_by_side(tmp_path: Path) -> None:
    first = headless_run(tmp_path, HEALTHY)
    again = headless_run(tmp_path, HEALTHY)
    assert (first.notebook, again.notebook) == ("rollback.ipynb", "rollback.attempt-2.ipynb")
    folder = again.incident_dir
    assert (folder / "rollback.ipynb").exists()
    assert (folder / "rollback.attempt-2.html").exists()
    attempts = read_record(folder)["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert [a["notebook"] for a in attempts] == ["rollback.ipynb", "rollback.attempt-2.ipynb"]
    assert [a["outcome"] for a in attempts] == ["no_rollback", "no_rollback"]
    assert "Attempts of this incident: 2" in (folder / "record.md").read_text()
    assert verifies(folder)


def _bad_input(run: HeadlessRun, *, step: str, error: str, says: str) -> None:
    """A corrupt input: a typed error, exit 2, the reason said, a record and a seal."""
    ending = run.ending
    assert ending.failure is not None
    assert (ending.failure.step, ending.failure.error_type) == (step, error)
    assert ending.failure.kind is FailureKind.PARAMETER
    assert says in ending.failure.message
    assert "Traceback" not in ending.failure.message
    assert (ending.outcome, ending.exit_status) == (Outcome.REFUSED, 2)
    assert ending.changed_cluster is False
    record = read_record(run.incident_dir)
    assert (record["outcome"], record["rolled_back"]) == ("refused", False)
    assert ending.sealed
    assert verifies(run.incident_dir)


def test_a_kubeconfig_that_is_not_yaml(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nclusters: [ {{{ not yaml\n\t:")
    run = headless_run(tmp_path / "ev", BAD, kubeconfig=str(kubeconfig))
    _bad_input(run, step="preflight", error="ParameterError", says="kubeconfig: cannot load")
    # The evidence after the refusal names the same cause, not a traceback of its own.
    assert "kubernetes: ParameterError" in (run.incident_dir / "collection-errors.txt").read_text()
    assert not (run.incident_dir / "traceback.txt").exists()


def test_a_replay_that_is_not_csv(tmp_path: Path) -> None:
    replay = tmp_path / "replay.csv"
    replay.write_bytes(b"\x00\x01\x02 not a replay \xff\n\x00")
    run = headless_run(tmp_path / "ev", replay)
    _bad_input(run, step="assess", error="InputFileError", says=str(replay))


def test_a_notebook_file_that_is_corrupt(tmp_path: Path) -> None:
    notebook = tmp_path / "rollback.ipynb"
    notebook.write_text('{"cells": [{"cell_type": "code", "sour')
    run = headless_run(tmp_path / "ev", HEALTHY, notebook=notebook)
    _bad_input(run, step="start_run", error="InputFileError", says="not a notebook")
    assert run.notebook == ""


def _outputs(run: HeadlessRun) -> str:
    """Everything the executed notebook's cells printed."""
    executed = nbformat.read(run.incident_dir / run.notebook, as_version=4)
    return json.dumps([c.get("outputs", []) for c in executed.cells])


def _notebook_with(tmp_path: Path, *cells: str) -> Path:
    """The rollback notebook up to its first step, then ``cells``."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if "rb.start_run(" in c.source)
    nb.cells = nb.cells[: first + 1] + [nbformat.v4.new_code_cell(c) for c in cells]
    path = tmp_path / "notebooks" / "rollback.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    return path


# A step that receives SIGTERM while it works (a runner stopping the run).
_STOPPED_STEP = """\
import os, signal
from runbook_lib.steps.step import runbook_step

@runbook_step("long_step", only_when_rolling_back=False)
def long_step(ctx):
    os.kill(os.getpid(), signal.SIGTERM)
    return "not reached"

long_step(ctx)
"""


def test_the_first_signal_interrupts_the_step_and_the_run_is_sealed(tmp_path: Path) -> None:
    notebook = _notebook_with(tmp_path, _STOPPED_STEP, "print('the next cell ran')")
    run = headless_run(tmp_path / "ev", HEALTHY, notebook=notebook)
    ending = run.ending
    assert ending.signal == signal.SIGTERM
    assert (ending.outcome, ending.exit_status) == (Outcome.INTERRUPTED, 143)
    assert ending.failure is not None
    assert (ending.failure.step, ending.failure.kind) == ("long_step", FailureKind.INTERRUPTED)
    assert "the next cell ran" not in _outputs(run)
    assert read_record(run.incident_dir)["outcome"] == "interrupted"
    assert ending.sealed
    assert verifies(run.incident_dir)


def test_a_second_signal_aborts_a_notebook_that_ignored_the_first(tmp_path: Path) -> None:
    stubborn = """\
import os, signal
try:
    os.kill(os.getpid(), signal.SIGTERM)
except KeyboardInterrupt:  # a cell that swallows the interrupt: the second signal ends it
    os.kill(os.getpid(), signal.SIGTERM)
print('still running')
"""
    notebook = _notebook_with(tmp_path, stubborn)
    run = headless_run(tmp_path / "ev", HEALTHY, notebook=notebook)
    ending = run.ending
    assert ending.exit_status == 143
    assert ending.failure is not None
    assert ending.failure.step == "runbook_run"  # no step recorded it: the runner did
    assert "interrupted by SIGTERM" in ending.failure.message
    assert "still running" not in _outputs(run)
    assert ending.sealed


def test_a_notebook_that_fails_before_its_first_step_is_an_attempt_of_its_own(
    tmp_path: Path,
) -> None:
    headless_run(tmp_path, HEALTHY)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if "rb.start_run(" in c.source)
    nb.cells[first].source = "raise RuntimeError('the library could not be imported')"
    broken = tmp_path / "broken" / "rollback.ipynb"
    broken.parent.mkdir()
    nbformat.write(nb, broken)
    run = headless_run(tmp_path, HEALTHY, notebook=broken)
    ending = run.ending
    assert (ending.outcome, ending.exit_status) == (Outcome.FAILED, 1)
    assert ending.failure is not None
    assert ending.failure.step == "start_run"
    assert "the library could not be imported" in ending.failure.message
    # The first attempt keeps its own ending.
    attempts = read_record(run.incident_dir)["attempts"]
    assert [a["outcome"] for a in attempts] == ["no_rollback", "failed"]
    assert run.notebook == "rollback.attempt-2.ipynb"


def test_a_notebook_that_cannot_be_read_is_refused_like_bad_input_for_an_assessment(
    tmp_path: Path,
) -> None:
    notebook = tmp_path / "assess.ipynb"
    notebook.write_text("not json")
    with pytest.raises(InputFileError, match="not a notebook"):
        run_notebook({"output_dir": str(tmp_path)}, notebook=notebook, executor=InProcessExecutor())


def test_a_profile_that_is_not_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Settings, not a file of the run: refused with the other bad parameters, before the
    # evidence folder (which a profile may name) is trusted with anything.
    from runbook_lib.cli.main import main

    profile = tmp_path / "shop.yaml"
    profile.write_text("release: [unclosed\n  : : :\n\tbad")
    status = main(
        [
            "run",
            "rollback",
            "-p",
            "profile",
            str(profile),
            "-p",
            "expected_cluster",
            "x",
            "--output-dir",
            str(tmp_path / "ev"),
            "--quiet",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 2
    assert out.startswith("outcome: refused")
    assert f"profile: not YAML ({profile}, line 2)" in err
    assert "Traceback" not in err
    assert not (tmp_path / "ev").exists()
