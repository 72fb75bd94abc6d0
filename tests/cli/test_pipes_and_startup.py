"""The ``runbook`` process as a person meets it: a closed pipe, and how fast it answers.

A reader that closes the pipe early (``runbook ... | head -1``) gets no traceback on stderr
and the command's own status; ``--help`` and the check of a run's parameters load none of the
notebook machinery. Both are about the process (its stdout file descriptor, a fresh
interpreter's imports), so each starts one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REPLAY = REPO / "notebooks" / "data" / "bad_deploy.csv"
# The console script's own code (pyproject [project.scripts]), run in a fresh interpreter.
RUNBOOK = [sys.executable, "-c", "import sys; from runbook_lib.cli import main; sys.exit(main())"]


def _with_closed_stdout(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run with a stdout pipe whose reader is gone before the command writes anything."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, stdin=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()  # like `| head -0`: every write gets EPIPE
    err = proc.stderr.read()
    proc.stderr.close()
    return subprocess.CompletedProcess(argv, proc.wait(timeout=120), b"", err)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["sandbox", "--help"],
        ["--version"],
        [
            "evaluate",
            "--replay-csv",
            str(REPLAY),
            "--deployed-at",
            "2026-11-20T14:00:00Z",
            "--json",
        ],
    ],
    ids=["help", "sandbox-help", "version", "evaluate-json"],
)
def test_a_closed_pipe_ends_quietly_with_the_commands_status(args: list[str]) -> None:
    # The JSON decision is larger than a pipe's buffer, so its write fails while the command
    # runs; it must still finish and exit 0, not stop with BrokenPipeError.
    done = _with_closed_stdout([*RUNBOOK, *args])
    assert done.stderr.decode() == ""
    assert done.returncode == 0


def test_head_after_runbook_prints_one_line_and_no_traceback() -> None:
    command = " ".join([*(f"'{a}'" for a in RUNBOOK), "--help", "|", "head", "-1"])
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.stdout.startswith("usage: runbook")
    assert len(done.stdout.splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert "BrokenPipeError" not in done.stderr


def test_help_does_not_load_the_notebook_machinery() -> None:
    # `runbook --help` and argument errors should answer at once: the heavy libraries
    # (nbformat's schema validation alone took seconds) load inside the commands.
    heavy = (
        "pandas", "matplotlib", "nbformat", "nbconvert", "papermill", "kubernetes", "aiohttp",
    )  # fmt: skip
    code = (
        "import sys; from runbook_lib.cli.main import build_parser; build_parser(); "
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == []


# A run's parameters, the least `runbook run` accepts (checked, never run here).
RUN = {"expected_cluster": "kwok-runbook", "prometheus_url": "http://127.0.0.1:19090"}


def test_runbook_run_checks_its_parameters_without_loading_the_heavy_libraries(
    tmp_path: Path,
) -> None:
    # The alert that starts a run waits for this: pandas, matplotlib, the Kubernetes client and
    # papermill are for the kernel and after it.
    code = (
        "import sys; from pathlib import Path; from runbook_lib.cli import run; "
        "from runbook_lib.headless.prepare import prepare; "
        f"prepare({RUN | {'output_dir': str(tmp_path)}!r}, Path('rollback.ipynb')); "
        "print(' '.join(m for m in ('pandas', 'matplotlib', 'kubernetes', 'papermill', "
        "'nbformat', 'pydantic') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []
