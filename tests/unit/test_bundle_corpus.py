"""Every planted secret, through every writer this package owns, then the whole folder grepped.

The end-to-end runs (replay, sandbox, failing, interrupted) plant the same corpus in real runs;
this test covers the writers without a cluster: timeline, Helm diffs, samples, problems,
notebook and HTML, manifest and signature.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from secret_corpus import CORPUS, leaks

from runbook_lib.core.redact import Redactor
from runbook_lib.evidence import bundle
from runbook_lib.evidence.manifest import verify_manifest, write_manifest
from runbook_lib.evidence.notebook import write_notebook_evidence
from runbook_lib.record.timeline import EventKind, Timeline

PLANTED = [p.text for p in CORPUS]
KUBECONFIG = "/work/main/sandbox/.state/kubeconfig"


class _Helm:
    def history(self, release: str) -> list[dict[str, Any]]:
        return [{"number": 1, "description": PLANTED[0]}, {"number": 2, "description": "ok"}]

    def values(self, release: str, revision: int) -> dict[str, Any]:
        return {"planted": PLANTED[revision:], "db": {"password": f"PLANTEDv{revision}"}}

    def manifest(self, release: str, revision: int) -> str:
        data = "\n".join(f"  k{i}: {p!r}" for i, p in enumerate(PLANTED[revision:]))
        return (
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n" + data + "\n"
            f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n{data}\n"
        )


def test_no_planted_secret_reaches_any_file(tmp_path: Path) -> None:
    redactor = Redactor.build(env={"PWD": "/work/main", "API_TOKEN": "PLANTEDenvValue9"})
    folder = tmp_path / "evidence" / "INC-9"
    timeline = Timeline(folder / "timeline.jsonl", redact=redactor)
    timeline.record("start_run", EventKind.INFO, f"run with {PLANTED[5]}",
                    params={"manual_reason": PLANTED, "kubeconfig": KUBECONFIG,
                            "token_from_env": "PLANTEDenvValue9"})  # fmt: skip
    bundle.collect_helm(folder, _Helm(), release="app", bad_revision=2, good_revision=1,  # type: ignore[arg-type]
                        redact=redactor)  # fmt: skip
    index = pd.DatetimeIndex([datetime(2026, 11, 27, 10, tzinfo=UTC)], name="timestamp")
    columns = {f"business:m{i}_{p.text}": [1.0] for i, p in enumerate(CORPUS)}
    bundle.write_samples_csv(folder, pd.DataFrame(columns, index=index), redact=redactor)
    bundle.write_problems(folder, bundle.BundleReport((), tuple(PLANTED)), redact=redactor)
    bundle.write_text(folder, "kubernetes/logs/app-1.log", "\n".join(PLANTED), redact=redactor)
    nb = new_notebook(cells=[new_code_cell(
        "\n".join(f"x = {p!r}" for p in PLANTED),
        outputs=[new_output("stream", name="stdout", text="\n".join(PLANTED))],
    )], metadata={"papermill": {"parameters": {"manual_reason": PLANTED}}})  # fmt: skip
    write_notebook_evidence(nb, folder, name="rollback.ipynb", redactor=redactor)
    write_manifest(folder, signing_key="")

    assert verify_manifest(folder).ok
    everything = ""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", "replace")
        assert leaks(text) == [], path.relative_to(folder)
        assert "PLANTED" not in text, path.relative_to(folder)
        everything += text
    assert KUBECONFIG in everything  # the run's paths appear as written
    assert nbformat.read(folder / "rollback.ipynb", as_version=4).cells


@pytest.mark.parametrize("planted", CORPUS[:3], ids=[p.name for p in CORPUS[:3]])
def test_corpus_values_survive_nothing_but_placeholders(planted: Any) -> None:
    assert Redactor.build().redact_value({"v": planted.text})["v"].count("[REDACTED]") >= 1
