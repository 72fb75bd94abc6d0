"""The example team (examples/team-shop) on the suite's sandbox, as the team would run it.

Its own tests run with the runbook pytest plugin only, in a pytest process of their own (their
``pytest.ini`` names the chart, profile and notebook; nothing of this suite's conftest), on
this session's sandbox. And ``runbook gameday`` (started beside them) fails a scenario broken
on purpose: a copy of the team's notebook that forgot its ``helm rollback`` cannot pass "bad
deploy rolled back", and its report row says what was seen instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox

pytestmark = [pytest.mark.sandbox, pytest.mark.notebook, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "team-shop"
RUNBOOK = Path(sys.executable).parent / "runbook"


def _env(sb: Sandbox) -> dict[str, str]:
    """This session's sandbox, named for a child process (which then attaches to it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        RUNBOOK_SANDBOX_NAME=sb.name,
        RUNBOOK_SANDBOX_STATE=str(sb.state_dir),
        RUNBOOK_SANDBOX_PORT_BASE=str(sb.ports.base),
    )
    return env


def _without_helm_rollback(dest: Path) -> Path:
    """The team's notebook, but the cell that runs ``helm rollback`` is gone."""
    nb = json.loads((EXAMPLE / "rollback.ipynb").read_text())
    cells = [c for c in nb["cells"] if "".join(c["source"]).strip() != "rb.helm_rollback(ctx)"]
    assert len(cells) == len(nb["cells"]) - 1
    nb["cells"] = cells
    dest.mkdir()
    (dest / "rollback.ipynb").write_text(json.dumps(nb))
    (dest / "shop_steps.py").write_text((EXAMPLE / "shop_steps.py").read_text())
    return dest / "rollback.ipynb"


@dataclass(frozen=True)
class Gameday:
    proc: subprocess.Popen[str]
    report: Path
    junit: Path


@pytest.fixture(scope="module")
def broken_gameday(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gameday]:
    """``runbook gameday --only bad_deploy`` on the broken notebook, started in the background
    at the module's first test: it shares the sandbox (its own namespace) with the team's
    tests, and both wait mostly on the sandbox's pace, not the CPU."""
    tmp_path = tmp_path_factory.mktemp("broken-gameday")
    notebook = _without_helm_rollback(tmp_path / "broken")
    report, junit = tmp_path / "gameday.md", tmp_path / "gameday.xml"
    argv = [
        str(RUNBOOK), "gameday", "--chart", str(EXAMPLE / "chart"),
        "--profile", str(EXAMPLE / "profile.yaml"), "--notebook", str(notebook),
        "--only", "bad_deploy", "--report", str(report), "--junit", str(junit),
        "--evidence", str(tmp_path / "evidence"),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=tmp_path, env=_env(sandbox), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        yield Gameday(proc, report, junit)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_the_teams_own_tests_pass_with_the_plugin(
    sandbox: Sandbox, broken_gameday: Gameday
) -> None:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(argv, cwd=EXAMPLE, env=_env(sandbox), capture_output=True,
                          text=True, timeout=900, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "4 passed" in done.stdout


def test_gameday_fails_the_scenario_a_broken_notebook_cannot_pass(
    broken_gameday: Gameday,
) -> None:
    out, err = broken_gameday.proc.communicate(timeout=900)
    report, junit = broken_gameday.report, broken_gameday.junit
    assert broken_gameday.proc.returncode == 1, out[-4000:] + err[-2000:]
    # A progress line, then the row: not held, and what was seen instead.
    assert "[1/1] bad_deploy_rolled_back ..." in out
    (row,) = [line for line in report.read_text().splitlines() if "| bad_deploy" in line]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:2] == ["bad_deploy_rolled_back", "**no**"]
    assert "the run did not roll back" in cells[3]
    assert "helm rollback did not run" in cells[3]
    assert row in out
    # CI reads the same from the JUnit XML.
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("1", "1")
