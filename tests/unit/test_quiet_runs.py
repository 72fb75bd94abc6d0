"""Every ``runbook run`` used to print two notices nobody could act on:
ipykernel's "Kernel is running over TCP without encryption" and nbconvert's "Alternative text
is missing on N image(s)". Each test shows the notice without our setting, and its absence
with it, so the setting is what silences it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nbformat
import pytest

from runbook_lib.adapters.papermill_executor import papermill_kernel_options
from runbook_lib.core.redact import Redactor
from runbook_lib.evidence.notebook import render_html

TCP_NOTICE = "Kernel is running over TCP without encryption"
ALT_NOTICE = "Alternative text is missing"


def _notebook_with_a_plot() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    cell = nbformat.v4.new_code_cell("plot()")  # type: ignore[no-untyped-call]
    cell.outputs = [
        nbformat.v4.new_output(  # type: ignore[no-untyped-call]
            "display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}
        )
    ]
    nb.cells = [cell]
    return nb


def test_evidence_html_does_not_report_missing_alt_text(caplog: pytest.LogCaptureFixture) -> None:
    from nbconvert import HTMLExporter

    nb = _notebook_with_a_plot()
    with caplog.at_level(logging.DEBUG):
        HTMLExporter().from_notebook_node(nb)
    assert any(ALT_NOTICE in r.getMessage() for r in caplog.records)  # nbconvert's own logger
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        html = render_html(nb, Redactor.build())
    assert not [r for r in caplog.records if ALT_NOTICE in r.getMessage()]
    assert "<img" in html
    assert "alt=" in html  # nbconvert still gives the image an alt text


def test_only_that_notice_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("runbook_lib.evidence.nbconvert")
    with caplog.at_level(logging.WARNING):
        render_html(_notebook_with_a_plot(), Redactor.build())
        log.warning("template %s not found", "x")
    assert [r.getMessage() for r in caplog.records] == ["template x not found"]


def _run_tiny_notebook(tmp_path: Path, **options: object) -> None:
    import papermill

    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]  # type: ignore[no-untyped-call]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    source = tmp_path / "tiny.ipynb"
    nbformat.write(nb, source)  # type: ignore[no-untyped-call]
    out = papermill.execute_notebook(
        str(source), str(tmp_path / "out.ipynb"), progress_bar=False, **options
    )
    assert out.cells[0].outputs[0]["text"] == "42\n"


@pytest.mark.notebook
def test_runbook_runs_kernels_without_the_tcp_notice(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    _run_tiny_notebook(tmp_path)
    assert TCP_NOTICE in capfd.readouterr().err  # papermill's default transport
    _run_tiny_notebook(tmp_path, **papermill_kernel_options())
    assert TCP_NOTICE not in capfd.readouterr().err
