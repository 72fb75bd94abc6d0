"""The private folder a headless run keeps what must never reach the evidence unredacted.

papermill writes the executed notebook there before it is redacted into the bundle, and the
kernel keeps its connection file (with its key) and IPC sockets there. The folder is 0700,
named with the run's pid, removed on every exit; one left by a run killed with SIGKILL is
removed by the next run once that pid is gone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runbook_lib.adapters import processes

__all__ = ["PREFIX", "scratch", "sweep"]

PREFIX = "runbook-run-"


def sweep() -> None:
    """Remove scratch folders of earlier runs that died without cleaning up (SIGKILL).

    Only folders this user owns, not symlinks, of processes that are gone.
    """
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = folder.name.removeprefix(PREFIX).split("-", 1)[0]
        try:
            owned = folder.lstat().st_uid == os.geteuid() and not folder.is_symlink()
        except OSError:
            continue
        if owned and pid.isdigit() and not processes.alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def scratch() -> Iterator[Path]:
    """A private folder (0700) for the run, removed on every exit."""
    sweep()
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    try:
        os.chmod(folder, 0o700)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
