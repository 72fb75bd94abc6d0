"""Every notebook: committed without outputs, thin, and passing nbval (lax, sanitized).

Outputs in a committed notebook go stale, leak data from whoever ran it last and bury the diff;
the only outputs allowed are those of cells marked ``# NBVAL_CHECK_OUTPUT``, which nbval compares.
Notebooks whose defaults need a cluster (rollback.ipynb) get test parameters injected by
papermill (``prepare_only``: nothing runs) before nbval executes them.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SANITIZE = REPO / "tests" / "notebooks" / "nbval_sanitize.cfg"

# Parameters that let a notebook run here without a cluster; notebooks not listed run with
# their defaults.
NBVAL_PARAMETERS: dict[str, dict[str, Any]] = {
    "assess.ipynb": {
        "replay_csv": str(REPO / "notebooks" / "data" / "bad_deploy.csv"),
        "deployed_at": "2026-11-20T14:00:00+00:00",
    },
    "rollback.ipynb": {
        "replay_csv": str(REPO / "notebooks" / "data" / "healthy_deploy.csv"),
        "deployed_at": "2026-11-20T14:00:00+00:00",
        "now": "2026-11-20T14:30:00+00:00",
        "expected_cluster": "kwok-runbook",
        "incident_id": "INC-NBVAL",
    },
}


def test_there_are_notebooks() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"rollback.ipynb", "assess.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        and "NBVAL_CHECK_OUTPUT" not in cell.source
        and (cell.outputs or cell.execution_count is not None)
    ]
    assert dirty == [], f"{path.name}: cells {dirty} carry outputs; clear them before committing"
    assert "papermill" not in notebook.metadata, f"{path.name} is an executed copy"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_thin_one_parameters_cell_no_logic(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
    for cell in code:
        source = "\n".join(line for line in cell.source.splitlines() if not line.startswith("%"))
        logic = [
            type(n).__name__
            for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.FunctionDef | ast.Lambda | ast.For | ast.While | ast.Try)
        ]
        assert logic == [], f"{path.name}: {logic} in a cell; move it into runbook_lib"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_nbval_lax_with_sanitizers(path: Path, tmp_path: Path) -> None:
    target = path
    parameters = NBVAL_PARAMETERS.get(path.name)
    if parameters is not None:
        import papermill

        target = tmp_path / path.name
        parameters = {**parameters, "output_dir": str(tmp_path / "evidence")}
        papermill.execute_notebook(
            str(path), str(target), parameters=parameters, prepare_only=True, progress_bar=False
        )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-sanitize-with", str(SANITIZE), "--nbval-current-env",
         "--rootdir", str(tmp_path), str(target)],
        cwd=path.parent, capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
