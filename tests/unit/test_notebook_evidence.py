"""The executed notebook and its HTML reach the bundle without any planted secret."""

from __future__ import annotations

import stat
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output
from secret_corpus import CORPUS, leaks

from runbook_lib.core.redact import Redactor
from runbook_lib.evidence.notebook import write_notebook_evidence

REPLAY = "/work/main/notebooks/data/bad-deploy.csv"


def test_planted_secrets_leave_no_trace_in_notebook_or_html(tmp_path: Path) -> None:
    planted = [p.text for p in CORPUS]
    source = "\n".join(
        [f"replay_csv = {REPLAY!r}", *(f"manual_reason = {text!r}" for text in planted)]
    )
    nb = new_notebook(
        cells=[
            new_code_cell(
                source,
                metadata={"tags": ["injected-parameters"], "papermill": {"exception": planted}},
                outputs=[
                    new_output("stream", name="stdout", text="\n".join(planted)),
                    new_output("display_data", data={
                        "text/html": "<br>".join(planted),
                        "image/svg+xml": f"<svg><text>{planted[0]}</text></svg>",
                        "image/png": "iVBORw0KGgo=",
                    }),
                    new_output("error", ename="LockHeld", evalue=planted[1], traceback=planted),
                ],
            )
        ],
        metadata={"papermill": {"parameters": {"manual_reason": planted,
                                               "slack_webhook_url": "https://x/y",
                                               "replay_csv": REPLAY}}},
    )  # fmt: skip
    notebook, page = write_notebook_evidence(
        nb, tmp_path / "INC-1", name="rollback.ipynb", redactor=Redactor.build()
    )
    assert page.name == "rollback.html"
    for path in (notebook, page):
        text = path.read_text()
        assert leaks(text) == [], path.name
        assert "PLANTED" not in text
        assert REPLAY in text  # paths stay as written
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    clean = nbformat.read(notebook, as_version=4)
    assert clean.metadata["papermill"]["parameters"]["slack_webhook_url"] == "[REDACTED]"
    assert clean.cells[0].outputs[1]["data"]["image/png"] == "iVBORw0KGgo="
