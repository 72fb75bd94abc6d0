"""The library's public surface is small, sorted and documented (STYLE.md, httpx-style)."""

from __future__ import annotations

import inspect

import pytest

import runbook_lib.steps as rb
from runbook_lib import errors

STEP_FUNCTIONS = sorted(name for name in rb.__all__ if inspect.isfunction(getattr(rb, name)))


@pytest.mark.parametrize("module", [rb, errors], ids=["steps", "errors"])
def test_all_is_sorted_and_every_name_exists(module: object) -> None:
    names = list(module.__all__)  # type: ignore[attr-defined]
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical.
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    missing = [n for n in names if not hasattr(module, n)]
    assert missing == []


@pytest.mark.parametrize("name", STEP_FUNCTIONS)
def test_every_step_says_what_it_does_and_raises(name: str) -> None:
    # The notebook user reads these with `rb.<step>?`; a step without a docstring is a
    # step nobody can run at 3 a.m. without reading the source.
    doc = inspect.getdoc(getattr(rb, name)) or ""
    assert len(doc) > 40, f"{name} has no real docstring"


def test_the_notebook_calls_only_public_steps() -> None:
    import json
    from pathlib import Path

    notebook = Path(__file__).resolve().parents[2] / "notebooks" / "rollback.ipynb"
    cells = json.loads(notebook.read_text())["cells"]
    source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    called = {part.split("(")[0] for part in source.split("rb.")[1:]}
    assert called <= set(rb.__all__), called - set(rb.__all__)
    assert {"preflight", "helm_rollback", "wait_for_rollout", "check_recovery"} <= called


def test_the_notebook_runs_the_steps_in_the_runbooks_order() -> None:
    import json
    import re
    from pathlib import Path

    notebook = Path(__file__).resolve().parents[2] / "notebooks" / "rollback.ipynb"
    cells = json.loads(notebook.read_text())["cells"]
    source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    called = re.findall(r"\brb\.(\w+)\(", source)
    ordered = [s.__name__ for s in (*rb.ROLLBACK_STEPS, *rb.POST_ROLLBACK_STEPS)]
    assert [name for name in called if name in ordered] == ordered
    assert called[0] == "start_run"
