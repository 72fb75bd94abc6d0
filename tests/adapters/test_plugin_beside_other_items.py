"""The plugin is active in every pytest session where the wheel is installed: a session whose
items are not test functions (nbval's notebook cells have no fixtures at all) must run as if
it were not there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat


def test_a_session_of_notebook_cells_runs_with_the_plugin_installed(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nbformat.write(notebook, tmp_path / "tiny.ipynb")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", "--rootdir", str(tmp_path), str(tmp_path / "tiny.ipynb")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
    assert "1 passed" in done.stdout
