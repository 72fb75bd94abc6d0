"""The executed notebook as evidence: redacted, rendered to HTML, timed.

papermill stores the parameters twice (``metadata.papermill.parameters`` and the injected
cell's source) and outputs may echo anything, so the whole document is walked and every string
redacted before it is written anywhere the bundle lives. Images are left byte-for-byte: they
are base64 and a pattern match inside one would only corrupt it.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import nbformat

from runbook_lib.core.redact import Redactor
from runbook_lib.evidence import files

__all__ = [
    "NotebookTimings",
    "notebook_timings",
    "redact_notebook",
    "render_html",
    "write_notebook_evidence",
]

_BINARY_PREFIXES = ("image/", "application/pdf")


def _node(value: Any) -> nbformat.NotebookNode:
    node: nbformat.NotebookNode = nbformat.from_dict(value)  # type: ignore[no-untyped-call]
    return node


def _binary(mime: str) -> bool:
    # SVG is text (a plot's labels can be read from it): redacted like any text.
    return mime.startswith(_BINARY_PREFIXES) and mime != "image/svg+xml"


def _redact_output(output: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    out = dict(output)
    data = out.get("data")
    if isinstance(data, dict):
        out["data"] = {
            mime: value if _binary(mime) else redactor.redact_value(value)
            for mime, value in data.items()
        }
    for key in ("text", "traceback", "evalue", "ename", "metadata"):
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


class _WithoutAltTextNotice(logging.Filter):
    """Drops nbconvert's "Alternative text is missing on N image(s)" notice, only that one.

    Its default (lab) template has no way to take an image's alt text from the notebook, so
    the notice came on every run with plots; nbconvert gives those images a generic alt text
    itself. Everything else the exporter logs still shows.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Alternative text is missing")


_EXPORTER_LOG = logging.getLogger("runbook_lib.evidence.nbconvert")
_EXPORTER_LOG.addFilter(_WithoutAltTextNotice())


def render_html(nb: nbformat.NotebookNode, redactor: Redactor) -> str:
    """The notebook as standalone HTML (nbconvert), redacted once more after rendering."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(log=_EXPORTER_LOG)  # type: ignore[no-untyped-call]
    body, _resources = exporter.from_notebook_node(nb)
    return redactor.redact(str(body))


def write_notebook_evidence(
    nb: nbformat.NotebookNode, directory: Path, *, name: str, redactor: Redactor
) -> tuple[Path, Path]:
    """Redact an executed (or partial) notebook and write ``name`` and its ``.html`` into the
    bundle (Post-Rollback Actions, step 2), atomically, 0640, never through a symlink.

    Returns both paths. Raises ``OSError`` (the bundle cannot be written).
    """
    clean = redact_notebook(nb, redactor)
    text = nbformat.writes(clean)  # type: ignore[no-untyped-call]
    notebook = files.write_text(directory, name, text)
    page = files.write_text(
        directory, str(PurePosixPath(name).with_suffix(".html")), render_html(clean, redactor)
    )
    return notebook, page


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
