"""A kernel started the way ``runbook run`` starts it prints no "Kernel is running over TCP
without encryption" notice: shown with papermill's default transport, absent with ours, so the
setting is what silences it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from runbook_lib.adapters.papermill_executor import papermill_kernel_options

TCP_NOTICE = "Kernel is running over TCP without encryption"


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


def test_runbook_runs_kernels_without_the_tcp_notice(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    _run_tiny_notebook(tmp_path)
    assert TCP_NOTICE in capfd.readouterr().err  # papermill's default transport
    _run_tiny_notebook(tmp_path, **papermill_kernel_options())
    assert TCP_NOTICE not in capfd.readouterr().err
