"""What every test folder shares: the markers of each tier (docs/TESTING.md), the groups of
tests built on one expensive fixture, and a few fixtures of the project's own (``scratch``,
``tmpfs``, ``clean_sandbox``).

The sandbox comes from the pytest plugin a team uses (``runbook_sandbox.pytest_plugin``,
docs/HARNESS.md): ``runbook_sandbox``, one per pytest-xdist worker, booted in the background
after collection, and ``release``, ``deploy``, ``break_release``, ``faults``, ``run_runbook``
on a fresh release of the project's chart and profile in a namespace of its own (the
``runbook_chart`` and ``runbook_profile`` ini settings in pyproject.toml). ``sandbox`` is the
same sandbox under the name the older tests use.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox


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
# The order tests are handed to workers in: the slowest tiers first.
FOLDER_ORDER = ["packaging", "browser", "e2e", "notebooks", "adapters", "cli", "unit"]
# Session fixtures that only look something up: sharing them is no reason to share a worker.
CHEAP_SHARED_FIXTURES = {"prometheus_binary", "promtool"}
# Fixtures that make a test need a part of the machine: the marker says which.
FIXTURE_MARKERS = {
    "runbook_sandbox": "sandbox",
    "prometheus_binary": "prometheus",
    "promtool": "prometheus",
}


def _folder(item: pytest.Item) -> str:
    relative = Path(str(item.path)).resolve().relative_to(TESTS)
    return relative.parts[0] if len(relative.parts) > 1 else ""


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers by folder and by the fixtures a test uses (every tier but the pure one is
    ``slow``); a group for the tests that share an expensive fixture; the longest tiers first."""
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
        group = _shared_fixture_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    # Under pytest-xdist each worker takes the next test when it is free: the long tiers
    # first, the thousand short pure tests last, to fill the workers that finish early.
    items.sort(key=lambda item: FOLDER_ORDER.index(_folder(item)))


def _shared_fixture_group(item: pytest.Item) -> str | None:
    """The group of tests built on one expensive fixture (a wheel installed in a fresh
    virtualenv, a Prometheus, JupyterLab): on one worker it is built once, not once each.
    Module-scoped fixtures group their module; session-scoped ones defined in a folder's
    conftest group that folder. The root's (the worker's own sandbox) group nothing, nor do
    the pure tests (their fixtures cost nothing)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None or _folder(item) == "unit":
        return None
    definitions = [
        found[-1]
        for name in item.fixturenames
        if name not in CHEAP_SHARED_FIXTURES and (found := info.name2fixturedefs.get(name))
    ]
    if any(d.scope in ("module", "class", "package") for d in definitions):
        return str(Path(str(item.path)).resolve().relative_to(TESTS))
    folders = [d.baseid for d in definitions if d.scope == "session" and "/" in d.baseid]
    return folders[0] if folders else None


@pytest.fixture(scope="session")
def sandbox(runbook_sandbox: Sandbox) -> Sandbox:
    """The plugin's ``runbook_sandbox``: the running sandbox of this test process."""
    return runbook_sandbox


def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.config.option.collectonly:
        _refuse_ungrouped(session)


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


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A scratch folder with a short path, for a run's TMPDIR: a kernel's sockets live there,
    and a Unix socket's path holds at most 107 bytes (a worker's ``tmp_path`` can be longer)."""
    path = Path(tempfile.mkdtemp(prefix="rb-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def clean_sandbox(sandbox: Sandbox) -> Sandbox:
    """The sandbox's own release ``app`` (namespace ``default``), reset first to one good
    revision v1.0.0 (schema v1.0.0): for tests about that shared release (its migrations, its
    alert rules, its traces); a test about a bad deploy, a fault or a run's ending takes
    ``release`` instead (docs/TESTING.md)."""
    sandbox.reset()
    return sandbox


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``tmpfs("8m")``: a real file system of that size under ``tmp_path``, unmounted after the
    test: a disk that fills up, on demand. Mounting needs root: the test skips otherwise."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        path = tmp_path / f"tmpfs-{len(mounted)}"
        path.mkdir()
        argv = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)
