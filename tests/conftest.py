"""Fixtures shared by every test folder: the local sandbox (docs/CONTRACTS.md, "Test fixtures").

``sandbox`` brings the sandbox named by ``RUNBOOK_SANDBOX_NAME`` up once per session (or
attaches to one already running) and stops it at the end if it started it, unless
``RUNBOOK_SANDBOX_KEEP=1``. Without the built binaries the tests that need it skip, saying
how to build them; under ``CI=true`` they fail instead, since CI must run them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox

ENABLE_HINT = "run `make sandbox-build` (or `runbook sandbox build`) to enable"
# Pods become Ready at once on the tests' shared sandbox (kwok's own pace; `up` defaults to
# 3 s, a real cluster's): tests/e2e/test_pod_ready_delay.py checks the delay on its own sandbox.
os.environ.setdefault("RUNBOOK_SANDBOX_POD_READY_DELAY", "0")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: they drive whole notebook runs by hand on the shared sandbox, and
    the breaches they cause should not be the next test's starting point."""
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
def sandbox(sandbox_bin_dir: Path) -> Iterator[Sandbox]:
    """The running sandbox (``runbook_sandbox.Sandbox``), started once for the session."""
    import runbook_sandbox

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
def clean_sandbox(sandbox: Sandbox) -> Sandbox:
    """The session sandbox, reset first to one good revision v1.0.0 (schema v1.0.0)."""
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
