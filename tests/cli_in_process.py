"""``runbook ARGS`` run inside the test's own interpreter, for commands that end before a kernel.

A fresh interpreter costs seconds (pandas, the Kubernetes client); the command's behaviour
(parsing, validation, exit status, what it prints) does not depend on it. The tests that are
about the process itself (the console script, a closed pipe, what a fresh interpreter loads,
signals) start one: tests/cli.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping
from contextlib import chdir, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from runbook_lib.cli.main import main


@dataclass(frozen=True)
class Ran:
    """What a person sees of a command: its exit status and both streams."""

    returncode: int
    stdout: str
    stderr: str


@contextmanager
def _environment(extra: Mapping[str, str] | None) -> Iterator[None]:
    if not extra:
        yield
        return
    saved = dict(os.environ)
    os.environ.update(extra)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def runbook(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Ran:
    """Run ``runbook ARGS`` in this process; ``env`` adds variables for the call only."""
    out, err = io.StringIO(), io.StringIO()
    with _environment(env), chdir(cwd or Path.cwd()), redirect_stdout(out), redirect_stderr(err):
        status = main(list(args))
    return Ran(status, out.getvalue(), err.getvalue())
