"""The pytest plugin a team tests its runbook with (entry point ``pytest11``: ``runbook``).

Installed with the wheel, it is active in every pytest session; its fixtures do nothing until
a test asks for them (docs/HARNESS.md is the reference):

- ``runbook_sandbox`` (session): the local sandbox, its own name, ports and state per
  pytest-xdist worker; started if it is not running, stopped at the end if started here;
- ``runbook_team`` (session): the team's chart, profile, values and notebook, from
  ``--runbook-chart``, ``--runbook-profile``, ``--runbook-values``, ``--runbook-notebook``
  or the ini settings of the same names (paths relative to the ini file);
- ``release``: a fresh release of the team's chart (revision 1, ``v1.0.0``) in a namespace of
  its own, served by the traffic model in the profile's metric dialect;
- ``deploy(version=None, values=None)``: a new revision; returns its number;
- ``break_release(error_ratio=, p99=, business_drop=)``: the current revision's pods misbehave;
- ``faults``: Prometheus down, helm hanging, the evidence disk full, the Lease held by
  someone else (``runbook_sandbox.team.Faults``);
- ``run_runbook(notebook=None, **parameters) -> Ending``: ``runbook run rollback`` on the
  release with the team's profile and notebook (``run_runbook.last``: folder, exit status,
  output);
- ``evaluate(**settings) -> Decision``: the decision with the team's profile, e.g. on a replay;
- ``wait_for_verdict(verdict)``: until the live decision on the release says it.

The assertion helpers are in ``runbook_sandbox.expect``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.core.verdict import Verdict
from runbook_lib.record.ending import Ending
from runbook_sandbox import team as team_mod
from runbook_sandbox.team import Faults, RunResult, Team, TeamRelease

_OPTIONS = {
    "chart": "the team's Helm chart (a folder)",
    "profile": "the team's service profile (YAML)",
    "values": "a values file for every install of the chart",
    "notebook": "the team's copy of the rollback notebook (default: the bundled one)",
    "evidence": "keep each test's evidence in DIR/<test> (default: the test's tmp_path)",
}
ENABLE_HINT = "run `runbook sandbox build` once (cached) to enable"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("runbook", "runbook: test a team's runbook on the local sandbox")
    for name, help_text in _OPTIONS.items():
        group.addoption(f"--runbook-{name}", default=None, metavar="PATH", help=help_text)
        parser.addini(f"runbook_{name}", f"{help_text} (relative to the ini file)", default="")


def _path(config: pytest.Config, name: str) -> Path | None:
    given = config.getoption(f"--runbook-{name}")
    if given:
        return Path(given).resolve()
    value = str(config.getini(f"runbook_{name}") or "")
    if not value:
        return None
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    return (base / value).resolve()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the game day must run, not skip)")
    pytest.skip(reason)


def worker_environment(base: dict[str, str], worker: str) -> dict[str, str]:
    """The sandbox name, state and port base of one pytest-xdist worker (``gw3``): the base
    ones for ``gw0`` and a lone process, shifted by 100 ports per further worker."""
    if not worker.startswith("gw") or worker == "gw0":
        return {}
    index = int(worker[2:])
    name = base.get("RUNBOOK_SANDBOX_NAME") or "runbook"
    env = {"RUNBOOK_SANDBOX_NAME": f"{name}-{worker}"}
    port_base = int(base.get("RUNBOOK_SANDBOX_PORT_BASE") or 19000)
    env["RUNBOOK_SANDBOX_PORT_BASE"] = str(port_base + 100 * index)
    if base.get("RUNBOOK_SANDBOX_STATE"):
        env["RUNBOOK_SANDBOX_STATE"] = str(Path(base["RUNBOOK_SANDBOX_STATE"]) / worker)
    return env


@pytest.fixture(scope="session")
def runbook_team(pytestconfig: pytest.Config) -> Team:
    """What the team brings, from the options or the ini settings."""
    chart, profile = _path(pytestconfig, "chart"), _path(pytestconfig, "profile")
    if chart is None or profile is None:
        raise pytest.UsageError("the runbook fixtures need --runbook-chart and --runbook-profile")
    return Team(
        chart=chart,
        profile=profile,
        values=_path(pytestconfig, "values"),
        notebook=_path(pytestconfig, "notebook"),
    )


@pytest.fixture(scope="session")
def runbook_sandbox() -> Iterator[Any]:
    """The running sandbox (``runbook_sandbox.Sandbox``) of this process or xdist worker."""
    try:
        import runbook_sandbox
        from runbook_sandbox import binaries
    except ModuleNotFoundError as err:  # pragma: no cover - the plugin ships with it
        _unavailable(f"sandbox harness not importable ({err})")
        raise
    missing = binaries.missing_binaries()
    if missing:
        _unavailable(f"sandbox binaries missing ({', '.join(missing)}): {ENABLE_HINT}")
    os.environ.update(
        worker_environment(dict(os.environ), os.environ.get("PYTEST_XDIST_WORKER", ""))
    )
    os.environ.setdefault("RUNBOOK_SANDBOX_POD_READY_DELAY", "0")
    handle = runbook_sandbox.attach()
    started_here = handle is None
    if handle is None:
        handle = runbook_sandbox.up()
    try:
        yield handle
    finally:
        if started_here and os.environ.get("RUNBOOK_SANDBOX_KEEP") != "1":
            runbook_sandbox.down()


@pytest.fixture
def release(runbook_sandbox: Any, runbook_team: Team) -> Iterator[TeamRelease]:
    """A fresh release of the team's chart at ``v1.0.0``, in its own namespace."""
    with team_mod.team_release(runbook_sandbox, runbook_team) as fresh:
        yield fresh


@pytest.fixture
def deploy(release: TeamRelease) -> Callable[..., int]:
    """``deploy("v1.1.0")`` or ``deploy(values={...})``: a new revision; returns its number."""
    return release.deploy


@pytest.fixture
def break_release(release: TeamRelease) -> Callable[..., str]:
    """``break_release(error_ratio=0.3, p99=2.0, business_drop=0.5)``: the pods of the current
    revision misbehave (keyed by their pod-template-hash); returns the hash."""
    return release.break_


class _Faults(Faults):
    def evidence_disk_full(self, room_mib: int = 4) -> Path:
        try:
            return super().evidence_disk_full(room_mib)
        except team_mod.FaultUnavailable as err:
            pytest.skip(str(err))
            raise


@pytest.fixture
def faults(release: TeamRelease, tmp_path: Path) -> Iterator[Faults]:
    """Faults for the next run; undone after the test."""
    made = _Faults(release, tmp_path / "faults")
    try:
        yield made
    finally:
        made.close()


class Runner:
    """``run_runbook(**parameters) -> Ending``; ``last``: the whole ``RunResult``."""

    def __init__(self, release: TeamRelease, team: Team, faults: Faults, out: Path) -> None:
        self.release, self.team, self.faults, self.out = release, team, faults, out
        self.last: RunResult | None = None

    def __call__(self, notebook: Path | str | None = None, **parameters: Any) -> Ending:
        chosen = Path(notebook) if notebook is not None else self.team.notebook
        self.last = team_mod.run_runbook(
            self.release, self.out, notebook=chosen, faults=self.faults, **parameters
        )
        return self.last.ending

    def start(self, notebook: Path | str | None = None, **parameters: Any) -> team_mod.Started:
        """The same run, started in the background (``.finish()``, ``.crash()``)."""
        chosen = Path(notebook) if notebook is not None else self.team.notebook
        return team_mod.start_runbook(
            self.release, self.out, notebook=chosen, faults=self.faults, **parameters
        )


@pytest.fixture
def run_runbook(
    request: pytest.FixtureRequest,
    release: TeamRelease,
    runbook_team: Team,
    faults: Faults,
    tmp_path: Path,
) -> Runner:
    """Run the team's rollback notebook on ``release``; returns the run's ``Ending``."""
    kept = _path(request.config, "evidence")
    out = kept / request.node.name if kept is not None else tmp_path / "evidence"
    return Runner(release, runbook_team, faults, out)


@pytest.fixture
def evaluate(runbook_team: Team) -> Callable[..., Any]:
    """``evaluate(replay_csv=..., deployed_at=...)``: the decision, with the team's profile."""

    def decide(**settings: Any) -> Any:
        return team_mod.evaluate(runbook_team.profile, **settings)

    return decide


@pytest.fixture
def wait_for_verdict(release: TeamRelease) -> Callable[..., Any]:
    """``wait_for_verdict(Verdict.ROLLBACK)``: until the live decision on the release says
    it (bounded); returns the ``Decision``."""

    def wait(verdict: Verdict, **settings: Any) -> Any:
        return team_mod.wait_for_verdict(release, verdict, **settings)

    return wait
