"""Fixtures shared by every test folder: the local sandbox (docs/CONTRACTS.md, "Test fixtures"),
and the markers of each tier (docs/TESTING.md).

``sandbox`` is the sandbox named by ``RUNBOOK_SANDBOX_NAME``, one for the whole run however many
workers share it (tests/shared_sandbox.py): started in the background as soon as the collected
tests show that one will need it (or attached to when already running), stopped at the end if
this run started it, unless ``RUNBOOK_SANDBOX_KEEP=1``. Without the built binaries the tests
that need it skip, saying how to build them; under ``CI=true`` they fail instead, since CI must
run them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import shared_sandbox

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox

ENABLE_HINT = "run `make sandbox-build` (or `runbook sandbox build`) to enable"
# Pods become Ready at once on the tests' shared sandbox (kwok's own pace; `up` defaults to
# 3 s, a real cluster's): tests/e2e/test_pod_ready_delay.py checks the delay on its own sandbox.
os.environ.setdefault("RUNBOOK_SANDBOX_POD_READY_DELAY", "0")


TESTS = Path(__file__).resolve().parent
# The tier of each folder (docs/TESTING.md): markers follow from where a test lives and what it
# uses, never from a decorator, so `-m` selects what a folder is for.
FOLDER_MARKERS = {
    "unit": "pure",
    "cli": "cli",
    "adapters": "adapters",
    "notebooks": "notebook",
    "e2e": "e2e",
    "browser": "browser",
    "packaging": "packaging",
}
# Fixtures that make a test need a part of the machine: the marker says which.
FIXTURE_MARKERS = {
    "sandbox": "sandbox",
    "prometheus_binary": "prometheus",
    "promtool": "prometheus",
}
# pytest-xdist's group (`--dist loadgroup`) for the tests that need one worker at a time.
SHARED_RELEASE_GROUP = "sandbox-app"


def _folder(item: pytest.Item) -> str:
    relative = Path(str(item.path)).resolve().relative_to(TESTS)
    return relative.parts[0] if len(relative.parts) > 1 else ""


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers by folder and by the fixtures a test uses; every tier but the pure one is
    ``slow``. Browser tests last: they drive whole notebook runs by hand on the shared sandbox,
    and the breaches they cause should not be the next test's starting point."""
    for item in items:
        folder = _folder(item)
        marker = FOLDER_MARKERS.get(folder)
        if marker is None:
            raise pytest.UsageError(
                f"{item.nodeid}: tests live in one of {sorted(FOLDER_MARKERS)} (docs/TESTING.md)"
            )
        item.add_marker(marker)
        if folder != "unit":
            item.add_marker("slow")
        for fixture, needs in FIXTURE_MARKERS.items():
            if fixture in item.fixturenames:
                item.add_marker(needs)
        if "sandbox" in item.fixturenames:
            # One worker runs these, in order: they share the sandbox's release `app`.
            item.add_marker(pytest.mark.xdist_group(SHARED_RELEASE_GROUP))
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: sandbox tests must run, not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sandbox_bin_dir() -> Path:
    """The cache dir holding the pinned binaries; skips (fails in CI) when they are not built."""
    try:
        from runbook_sandbox import binaries, paths
    except ModuleNotFoundError as err:
        _unavailable(f"sandbox harness not importable ({err}); run `make install`")
        raise  # unreachable: _unavailable always raises
    missing = binaries.missing_binaries()
    if missing:
        _unavailable(f"sandbox binaries missing ({', '.join(missing)}): {ENABLE_HINT}")
    return paths.cache_bin_dir()


@pytest.fixture(scope="session")
def sandbox(sandbox_bin_dir: Path) -> Sandbox:
    """The running sandbox (``runbook_sandbox.Sandbox``), shared by the run's workers."""
    return shared_sandbox.wait()


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller, before any worker starts
        shared_sandbox.name_this_run()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Boot the sandbox while the first tests run, when any collected test will need it."""
    if session.config.option.collectonly:
        return
    _refuse_ungrouped(session)
    if not any("sandbox" in item.fixturenames for item in session.items):
        return
    try:
        from runbook_sandbox import binaries
    except ModuleNotFoundError:
        return  # the fixture says why
    if not binaries.missing_binaries():
        shared_sandbox.begin()


def _refuse_ungrouped(session: pytest.Session) -> None:
    """With ``--dist loadgroup``, pytest-xdist marks a grouped test by a suffix to its node id;
    a pytest it does not know drops the suffix, and the group's tests would run side by side
    on the shared release. Better to stop than to fail at random."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    for item in session.items:
        if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
            raise pytest.UsageError(
                f"{item.nodeid}: pytest-xdist did not apply its group (this pytest and "
                "pytest-xdist disagree on node ids; see the pin in pyproject.toml)"
            )


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # after every worker is done
        shared_sandbox.finish()


@pytest.fixture
def clean_sandbox(sandbox: Sandbox) -> Sandbox:
    """The session sandbox, reset first to one good revision v1.0.0 (schema v1.0.0)."""
    sandbox.reset()
    return sandbox
