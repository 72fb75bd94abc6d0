"""Post-Rollback Actions, step 2 (continued): the executed notebook of a run done by hand.

``runbook run`` writes the executed notebook and its HTML from papermill's copy. A person who
runs the notebook in Jupyter has no such copy: the kernel's recorder
(``runbook_lib.display.recorder``) kept every output it sent, and ``save_notebook`` lays them
onto the notebook file the server named (``JPY_SESSION_NAME``), then writes ``rollback.ipynb``
and ``rollback.html`` through the same redaction as ``runbook run`` and re-seals the manifest.
When a step fails (the cells after it do not run), the same happens from the error handler, so
a failed run by hand also leaves its notebook.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runbook_lib.display import recorder as recording
from runbook_lib.display.summary import ERROR_HOOKS, Summary
from runbook_lib.evidence import incident_record
from runbook_lib.record.facts import attempt_file, attempt_number
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps import collect
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.step import runbook_step

__all__ = ["NotebookSaved", "save_notebook", "write_executed_notebook"]

NAME = "rollback.ipynb"


@dataclass(frozen=True)
class NotebookSaved:
    """Where the executed notebook went, or why this run leaves it to ``runbook run``."""

    notebook: Path | None
    html: Path | None
    reason: str = ""

    def __repr__(self) -> str:
        if self.notebook is None:
            return f"Executed notebook: {self.reason}"
        return f"Executed notebook saved to the evidence: {self.notebook} and {self.html}"


def write_executed_notebook(ctx: RunContext) -> NotebookSaved:
    """The recorded run onto the notebook file, redacted, into the incident folder."""
    recorder = recording.active()
    source = recording.notebook_path()
    if recorder is None or source is None:
        return NotebookSaved(
            None, None, "not run from a Jupyter server (runbook run writes it from papermill)"
        )
    # Imported here, not at the top: only a run by hand writes its notebook, and nbformat pulls
    # in jsonschema's format checkers, which with JupyterLab installed take about 1.7 s to
    # import: time every headless run (an alert's included) would spend before its first step.
    import nbformat

    from runbook_lib.evidence.notebook import write_notebook_evidence

    # nbformat's reader joins the file's line lists into strings, as redaction expects.
    skeleton = nbformat.reads(source.read_text(encoding="utf-8"), as_version=4)  # type: ignore[no-untyped-call]
    executed = nbformat.from_dict(recorder.executed_notebook(skeleton))  # type: ignore[no-untyped-call]
    name = attempt_file(NAME, attempt_number(ctx.timeline.events, ctx.run_id))
    notebook, page = write_notebook_evidence(
        executed, ctx.incident_dir, name=name, redactor=ctx.redact
    )
    ctx.timeline.record(
        "save_notebook",
        EventKind.INFO,
        f"executed notebook recorded by the kernel, from {source.name}, saved as {name}",
        unsaved_cells=executed.metadata.get("runbook", {}).get("unsaved_cells", 0),
    )
    return NotebookSaved(notebook, page)


@runbook_step("save_notebook", only_when_rolling_back=False, seals=True)
def save_notebook(ctx: RunContext) -> NotebookSaved:
    """Post-Rollback Actions, step 2: this notebook, as run by hand, into the evidence.

    The last cell of the rollback notebook. Headless runs return without writing (papermill's
    copy is the evidence there). Raises ``OSError`` when the bundle cannot be written.

    By hand, no process outlives the kernel to write the record last (``runbook run`` does):
    it is written again here, so its steps table has every step's final state but this one.
    """
    if recording.active() is not None and recording.notebook_path() is not None:
        record = collect.build_incident_record(ctx, fetch=False)
        incident_record.write_record(record, ctx.incident_dir, redact=ctx.redact)
    return write_executed_notebook(ctx)


def _after_failure(summary: Summary | None) -> None:
    ctx = summary.run if summary is not None else None
    if isinstance(ctx, RunContext) and recording.notebook_path() is not None:
        write_executed_notebook(ctx)
        ctx.seal()  # the step frame sealed before this was written (signed with signing_key)


ERROR_HOOKS.append(_after_failure)
