"""The pytest plugin a team tests its runbook with (entry point ``pytest11``: ``runbook``).

Installed with the wheel, it is active in every pytest session; its fixtures do nothing until
a test asks for them (docs/HARNESS.md is the reference):

- ``runbook_sandbox`` (session): the local sandbox, its own name, ports and state per
  pytest-xdist worker (``runbook_sandbox.session_sandbox``); started in the background as
  soon as collection shows a test needs it (attached to when it already runs), stopped at the
  end if started here; without the built binaries the tests skip saying how to enable them,
  and fail under ``CI=true``;
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
- ``wait_for_verdict(verdict)``: until the live decision on the release says it;
- ``signing_key``: a fresh SSH key for the run's ``signing_key`` and the allowed-signers file
  ``runbook verify-evidence`` checks the signature with.

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
from runbook_sandbox import session_sandbox
from runbook_sandbox import team as team_mod
from runbook_sandbox.team import Faults, RunResult, SigningKey, Team, TeamRelease

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
        pytest.fail(f"{reason} (CI=true: sandbox tests must run, not skip)")
    pytest.skip(reason)


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


def pytest_configure(config: pytest.Config) -> None:
    # Before any test module reads the sandbox's name, state or ports.
    session_sandbox.use_worker_sandbox()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Boot the sandbox while the first tests run, when any collected test will need it."""
    if session.config.option.collectonly:
        return
    # Items other plugins collect (nbval's cells, doctests) may have no fixtures at all.
    if not any("runbook_sandbox" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    try:
        from runbook_sandbox import binaries
    except ModuleNotFoundError:  # pragma: no cover - the fixture says why
        return
    if not binaries.missing_binaries():
        session_sandbox.BOOT.begin()


def pytest_sessionfinish(session: pytest.Session) -> None:
    session_sandbox.BOOT.finish()


@pytest.fixture(scope="session")
def runbook_sandbox() -> Any:
    """The running sandbox (``runbook_sandbox.Sandbox``) of this process or xdist worker:
    started in the background after collection (or attached to), stopped at the end of the
    session if started here, unless ``RUNBOOK_SANDBOX_KEEP=1``."""
    try:
        from runbook_sandbox import binaries
    except ModuleNotFoundError as err:  # pragma: no cover - the plugin ships with it
        _unavailable(f"sandbox harness not importable ({err})")
        raise
    missing = binaries.missing_binaries()
    if missing:
        _unavailable(f"sandbox binaries missing ({', '.join(missing)}): {ENABLE_HINT}")
    return session_sandbox.BOOT.wait()


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


@pytest.fixture
def signing_key(tmp_path: Path) -> SigningKey:
    """A fresh SSH key for a run's ``signing_key`` and the allowed-signers file that names
    it: ``assert_evidence_verifies(folder, allowed_signers=signing_key.allowed_signers)``
    checks the manifest's signature too. Skips without ``ssh-keygen`` (fails under CI)."""
    try:
        return team_mod.new_signing_key(tmp_path / "signing")
    except team_mod.FaultUnavailable as err:
        _unavailable(str(err))
        raise
