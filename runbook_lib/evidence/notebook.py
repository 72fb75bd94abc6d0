"""The executed notebook as evidence: redacted, rendered to HTML, timed.

papermill stores the parameters twice (``metadata.papermill.parameters`` and the injected
cell's source) and outputs may echo anything, so the whole document is walked and every string
redacted before it is written anywhere the bundle lives. Images are left byte-for-byte: they
are base64 and a pattern match inside one would only corrupt it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nbformat

from runbook_lib.core.redact import Redactor

__all__ = ["NotebookTimings", "notebook_timings", "redact_notebook", "render_html"]

_BINARY_PREFIXES = ("image/", "application/pdf")


def _node(value: Any) -> nbformat.NotebookNode:
    node: nbformat.NotebookNode = nbformat.from_dict(value)  # type: ignore[no-untyped-call]
    return node


def _redact_output(output: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    out = dict(output)
    data = out.get("data")
    if isinstance(data, dict):
        out["data"] = {
            mime: value if mime.startswith(_BINARY_PREFIXES) else redactor.redact_json(value)
            for mime, value in data.items()
        }
    for key in ("text", "traceback", "evalue", "ename"):
        if key in out:
            out[key] = redactor.redact_json(out[key])
    return out


def redact_notebook(nb: nbformat.NotebookNode, redactor: Redactor) -> nbformat.NotebookNode:
    """A redacted copy of an executed notebook: metadata, sources and textual outputs."""
    clean = copy.deepcopy(nb)
    clean.metadata = _node(redactor.redact_json(dict(clean.metadata)))
    for cell in clean.cells:
        cell.source = redactor.redact(cell.source)
        cell.metadata = _node(redactor.redact_json(dict(cell.metadata)))
        if cell.cell_type == "code":
            cell.outputs = [_node(_redact_output(dict(o), redactor)) for o in cell.outputs]
    return clean


def render_html(nb: nbformat.NotebookNode, redactor: Redactor) -> str:
    """The notebook as standalone HTML (nbconvert), redacted once more after rendering."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()  # type: ignore[no-untyped-call]
    body, _resources = exporter.from_notebook_node(nb)
    return redactor.redact(str(body))


@dataclass(frozen=True)
class NotebookTimings:
    """papermill's clock: the whole run, and kernel start to the first step's cell."""

    total_s: float | None
    kernel_to_first_step_s: float | None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def notebook_timings(nb: nbformat.NotebookNode, *, first_step_marker: str) -> NotebookTimings:
    """Timings from papermill's metadata; ``first_step_marker`` is text in the first step's
    code cell (e.g. ``rb.start_run``). Fields are None when papermill did not record them."""
    meta = nb.metadata.get("papermill", {})
    start, end = _time(meta.get("start_time")), _time(meta.get("end_time"))
    first = next(
        (c for c in nb.cells if c.cell_type == "code" and first_step_marker in c.source), None
    )
    first_start = _time(first.metadata.get("papermill", {}).get("start_time")) if first else None
    return NotebookTimings(
        total_s=(end - start).total_seconds() if start and end else None,
        kernel_to_first_step_s=(
            (first_start - start).total_seconds() if start and first_start else None
        ),
    )
