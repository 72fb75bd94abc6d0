"""``papermill --help-notebook runbook://rollback.ipynb`` from a folder that is no checkout.

papermill reads the installed notebooks through the project's ``papermill.io`` entry point
(``runbook_lib.adapters.packaged_notebooks``); tests/packaging/test_wheel.py does the same from
an installed wheel.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from runbook_lib.core.settings import parameters_cell

pytestmark = pytest.mark.notebook

PAPERMILL = Path(sys.executable).with_name("papermill")


@pytest.mark.parametrize("runbook", ["rollback", "assess"])
def test_papermill_lists_every_parameter_of_the_installed_notebook(
    runbook: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [str(PAPERMILL), "--help-notebook", f"runbook://{runbook}.ipynb"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    names = re.findall(r"^(\w+): \w+ = ", parameters_cell(runbook), flags=re.MULTILINE)
    listed = re.findall(r"^  (\w+): \w+ \(default", done.stdout, flags=re.MULTILINE)
    assert listed == names


def test_an_unknown_notebook_names_the_installed_ones(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(PAPERMILL), "--help-notebook", "runbook://rollbak.ipynb"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "installed: runbook://assess.ipynb, runbook://rollback.ipynb" in done.stderr
