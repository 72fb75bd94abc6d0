"""notebooks/assess.ipynb run headlessly by papermill with injected parameters.

The notebook's last cell records its results as JSON (``rb.record``); these tests read that
record from the executed notebook, the way CI and the evidence bundle do.
"""

from __future__ import annotations

import ast
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
import pytest
from replay_files import write_replay as replay

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "assess.ipynb"
DEPLOY = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def _python3_kernel_or_skip() -> None:
    from jupyter_client.kernelspec import find_kernel_specs

    if "python3" in find_kernel_specs():
        return
    reason = "no 'python3' Jupyter kernel: run `make install` to register it"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def run_notebook(tmp_path: Path, **parameters: Any) -> nbformat.NotebookNode:
    _python3_kernel_or_skip()
    import papermill

    output = tmp_path / "assess-out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(output),
        parameters=parameters,
        cwd=str(NOTEBOOK.parent),
        progress_bar=False,
        kernel_name="python3",
    )
    return nbformat.read(output, as_version=4)


def recorded(notebook: nbformat.NotebookNode) -> dict[str, Any]:
    last = [c for c in notebook.cells if c.cell_type == "code"][-1]
    document: dict[str, Any] = last.outputs[0]["data"]["application/json"]
    return document


def write_replay(tmp_path: Path, errors: dict[int, float]) -> Path:
    return replay(tmp_path / "replay.csv", DEPLOY, range(-1800, 1801, 15), errors, orders=100)


def test_the_bundled_bad_deploy_is_assessed(tmp_path: Path) -> None:
    notebook = run_notebook(
        tmp_path, replay_csv="data/bad_deploy.csv", deployed_at="2026-11-20T14:00:00+00:00"
    )
    result = recorded(notebook)
    assert result["rollback"] is True
    assert [(t["rule"], t["fired_at"]) for t in result["triggers"]] == [
        ("business", "2026-11-20T14:04:45+00:00"),
        ("error_rate", "2026-11-20T14:05:15+00:00"),
        ("latency_p99", "2026-11-20T14:06:15+00:00"),
    ]
    assert (result["samples"], result["now"]) == (301, "2026-11-20T14:30:00+00:00")
    images = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert len(images) == 2, "both evidence plots are rendered"


@pytest.mark.parametrize(
    ("errors", "sustain", "expected_fired"),
    [
        ({o: 0.05 for o in range(60, 181, 15)}, "2m", []),
        ({o: 0.05 for o in range(60, 196, 15)}, "2m", ["2026-11-20T14:03:15+00:00"]),
        ({o: 0.05 for o in range(60, 181, 15)}, "90s", ["2026-11-20T14:02:45+00:00"]),
    ],
    ids=["exactly-120s", "120s-plus-one-step", "shorter-sustain-parameter"],
)
def test_injected_replay_and_thresholds(
    tmp_path: Path, errors: dict[int, float], sustain: str, expected_fired: list[str]
) -> None:
    path = write_replay(tmp_path, errors)
    result = recorded(
        run_notebook(
            tmp_path, replay_csv=str(path), deployed_at=DEPLOY.isoformat(), sustain=sustain
        )
    )
    assert [t["fired_at"] for t in result["triggers"]] == expected_fired
    assert result["rollback"] is bool(expected_fired)
    assert result["thresholds"]["sustain"] == {"2m": 120.0, "90s": 90.0}[sustain]


def test_manual_call_is_recorded(tmp_path: Path) -> None:
    path = write_replay(tmp_path, {})
    result = recorded(
        run_notebook(
            tmp_path,
            replay_csv=str(path),
            deployed_at=DEPLOY.isoformat(),
            manual_reason="IC: checkout complaints",
        )
    )
    assert result["rollback"] is True
    assert result["manual_reason"] == "IC: checkout complaints"
    assert [t["rule"] for t in result["triggers"]] == ["manual"]


_BURST = {o: 0.05 for o in range(60, 181, 15)}  # 120 s above 1%: fires only under 2 minutes


@pytest.mark.parametrize(
    ("given", "expected_fired"),
    [
        ({}, ["2026-11-20T14:02:45+00:00"]),  # the profile's 90s sustain
        ({"sustain": "3m"}, []),  # a parameter given overrides the profile
    ],
    ids=["profile", "parameter-overrides-profile"],
)
def test_the_notebooks_profile_sets_what_is_left_at_its_default(
    tmp_path: Path, given: dict[str, str], expected_fired: list[str]
) -> None:
    profile = tmp_path / "service.yaml"
    profile.write_text("sustain: 90s\nbusiness_drop: 50%\n", encoding="utf-8")
    result = recorded(
        run_notebook(
            tmp_path,
            profile=str(profile),
            replay_csv=str(write_replay(tmp_path, _BURST)),
            deployed_at=DEPLOY.isoformat(),
            **given,
        )
    )
    assert [t["fired_at"] for t in result["triggers"]] == expected_fired
    assert result["thresholds"]["business_drop"] == 0.5


def test_runbook_run_assess_reads_the_profile_and_hands_the_kernel_its_values(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    _python3_kernel_or_skip()
    profile = tmp_path / "service.yaml"
    profile.write_text("sustain: 90s\n", encoding="utf-8")
    replay = write_replay(tmp_path, _BURST)
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from runbook_lib.cli import main; sys.exit(main())",
         "run", "assess", "--quiet", "--output-dir", str(tmp_path / "out"),
         "-p", "profile", str(profile), "-p", "replay_csv", str(replay),
         "-p", "deployed_at", DEPLOY.isoformat()],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (executed,) = (tmp_path / "out").glob("assess-*/assess.ipynb")
    result = recorded(nbformat.read(executed, as_version=4))
    assert [t["fired_at"] for t in result["triggers"]] == ["2026-11-20T14:02:45+00:00"]
    assert result["thresholds"]["sustain"] == 90.0


def test_bad_parameters_stop_at_the_validation_cell_listing_all(tmp_path: Path) -> None:
    import papermill

    with pytest.raises(papermill.PapermillExecutionError) as caught:
        run_notebook(
            tmp_path,
            replay_csv=str(tmp_path / "missing.csv"),
            deployed_at="2026-11-20T14:00:00",
            sustain="2 fortnights",
        )
    message = str(caught.value)
    assert "3 invalid parameter(s)" in message
    assert "replay_csv: no such file" in message
    assert "deployed_at: '2026-11-20T14:00:00' has no UTC offset" in message
    assert "sustain: unknown unit 'fortnights'" in message
    executed = nbformat.read(tmp_path / "assess-out.ipynb", as_version=4)
    assert not any(
        "application/json" in o.get("data", {})
        for c in executed.cells
        for o in c.get("outputs", [])
    )


def test_notebook_is_thin_and_committed_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert [c for c in code if "parameters" in c.metadata.get("tags", [])], "parameters cell"
    for cell in code:
        source = "\n".join(line for line in cell.source.splitlines() if not line.startswith("%"))
        nodes = list(ast.walk(ast.parse(source)))
        assert not [
            n for n in nodes if isinstance(n, ast.FunctionDef | ast.For | ast.While | ast.Try)
        ]
        checked = "NBVAL_CHECK_OUTPUT" in cell.source
        assert bool(cell.outputs) is checked, "only the nbval-checked cell keeps its output"
