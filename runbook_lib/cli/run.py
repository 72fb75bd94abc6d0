"""Run a runbook notebook headlessly (papermill) and keep the evidence

Execute a runbook notebook with papermill. The redacted executed notebook, its HTML and the
evidence go to DIR/<incident_id>/, sealed. The last lines say the verdict, the outcome, what
happened to the cluster, the evidence folder and its seal.

example:
  runbook run rollback -p release shop -p namespace prod -p profile shop.yaml
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbook_lib.cli.main import add_command
from runbook_lib.core.exit_status import OK, RUN_STATUSES
from runbook_lib.errors import ParameterError

if TYPE_CHECKING:
    from runbook_lib.headless import Executor, HeadlessRun

__all__ = ["NOTEBOOKS", "credentials_from_env", "print_run", "register", "run_rollback"]

NOTEBOOKS = {"assess": "assess.ipynb", "rollback": "rollback.ipynb"}


def _notebook_dir() -> Path:
    # The notebooks ship inside the package (runbook_lib.notebooks, which is the top-level
    # notebooks/ directory in a checkout), so wheel and editable installs find them alike.
    # A file-system path: papermill reads it and runs the kernel in that directory.
    return Path(str(resources.files("runbook_lib.notebooks")))


def _statuses() -> str:
    return "Exit statuses: " + "; ".join(f"{status} {text}" for status, text in RUN_STATUSES) + "."


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # The run itself is runbook_lib.headless.run_notebook (papermill, signals, salvage, seal);
    # this module parses the command line and prints the run's Ending: its lines and its exit
    # status are the Ending's, never worked out here.
    parser = add_command(subparsers, "run", __doc__)
    parser.description = f"{parser.description} {_statuses()}"
    parser.add_argument("runbook", choices=sorted(NOTEBOOKS), help="which runbook")
    # -r/--raw-parameter is papermill's spelling, kept so its command lines work here; the
    # values are text either way (the settings model reads them), and the last one given wins.
    parser.add_argument(
        "-p",
        "--parameter",
        "-r",
        "--raw-parameter",
        dest="parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="notebook parameter (a setting; -p profile FILE reads a service profile, the "
        "other parameters override it)",
    )
    parser.add_argument("--output-dir", metavar="DIR", help="evidence root (default: evidence)")
    parser.add_argument("--notebook", metavar="PATH", help="notebook to run (default: bundled)")
    parser.add_argument("--kernel", metavar="NAME", help="Jupyter kernel (default: notebook's)")
    parser.add_argument("--quiet", action="store_true", help="do not stream cell output")
    parser.add_argument(
        "--list-parameters",
        action="store_true",
        help="list the runbook's parameters (default, required, meaning) and exit",
    )
    parser.set_defaults(func=_run_command)


def print_run(run: HeadlessRun) -> None:
    """What ``runbook run`` says at its end: every line read from the run's Ending."""
    from runbook_lib.record.facts import Outcome

    ending = run.ending
    verdict = ending.verdict.value if ending.verdict is not None else ""
    print(f"verdict: {verdict or 'none (the run stopped before the decision)'}")
    print(f"outcome: {ending.outcome.value}")
    if not run.assessment:
        print(f"cluster: {ending.cluster_sentence}")
    print(f"evidence: {run.incident_dir}")
    print(f"seal: {ending.seal.sentence() if ending.seal is not None else 'NOT sealed'}")
    first = run.kernel_to_first_step_s
    print(
        f"papermill: {run.wall_s:.1f} s wall; kernel start to first step "
        + ("n/a" if first is None else f"{first:.1f} s")
    )
    err = sys.stderr
    for problem in run.problems:
        print(f"evidence: could not collect {problem}", file=err)
    if ending.failure is not None and ending.failure.message:
        # The step's own words (redacted on the timeline): why the run stopped or was refused.
        print(f"runbook run: {ending.failure.message}", file=err)
    if ending.signal is not None:
        print(
            f"runbook run: stopped by {ending.signal_name}; the partial notebook and the "
            "evidence so far are " + ("sealed" if ending.sealed else "NOT sealed"),
            file=err,
        )
    if ending.evidence_lost:
        lost = "; ".join(ending.lost) or "nothing more"
        print(
            f"runbook run: EVIDENCE LOST: could not write {lost} -- what the run did to the "
            f"cluster is above; the bundle is {ending.seal.sentence() if ending.seal else ''}",
            file=err,
        )
    if ending.outcome is Outcome.INCONCLUSIVE and ending.failure is None:
        print(
            "runbook run: stopped before any change: the verdict is inconclusive (see the "
            "record); set on_inconclusive=rollback to roll back anyway",
            file=err,
        )


def run_rollback(
    parameters: Mapping[str, Any],
    *,
    notebook: Path,
    kernel: str | None = None,
    stream: bool = True,
    executor: Executor | None = None,
) -> HeadlessRun:
    """``runbook run``'s run: the notebook headless (papermill unless ``executor`` is given).

    Raises ``ParameterError`` for unknown or invalid parameters (exit 2, nothing written).
    """
    from runbook_lib.adapters.papermill_executor import PapermillExecutor
    from runbook_lib.headless import run_notebook

    chosen = executor if executor is not None else PapermillExecutor(kernel=kernel)
    return run_notebook(parameters, notebook=notebook, executor=chosen, stream=stream)


def credentials_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Credential parameters given as ``RUNBOOK_<NAME>`` (``RUNBOOK_SLACK_WEBHOOK_URL``): how
    ``runbook serve`` hands them to a run, so they are in no command line and no Job spec."""
    from runbook_lib.core.redact import is_credential_name
    from runbook_lib.core.run_job import credential_env_name
    from runbook_lib.core.settings import FIELDS

    found = {}
    for spec in FIELDS:
        if is_credential_name(spec.name) and environ.get(credential_env_name(spec.name)):
            found[spec.name] = environ[credential_env_name(spec.name)]
    return found


def _run_command(args: argparse.Namespace) -> int:
    if args.list_parameters:
        from runbook_lib.cli.setting_options import parameter_table

        print(parameter_table(args.runbook))
        return OK
    # Values stay text: the settings model reads people's text (core.settings). Given on the
    # command line wins over the environment.
    params: dict[str, Any] = (
        dict(credentials_from_env(os.environ)) if args.runbook == "rollback" else {}
    )
    params.update(dict(args.parameter))
    if args.output_dir:
        params["output_dir"] = args.output_dir
    notebook = Path(args.notebook) if args.notebook else _notebook_dir() / NOTEBOOKS[args.runbook]
    try:
        run = run_rollback(params, notebook=notebook, kernel=args.kernel, stream=not args.quiet)
    except ParameterError:
        # Every ending has its outcome line; the problems follow (`runbook` prints them).
        print("outcome: refused (bad input: nothing ran, nothing was written)")
        raise
    print_run(run)
    return run.ending.exit_status
