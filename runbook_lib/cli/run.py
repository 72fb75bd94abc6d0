"""``runbook run rollback``: the rollback notebook, headless, leaving a sealed evidence bundle.

    runbook run rollback -p NAME VALUE ... [--output-dir DIR] [--kernel NAME]

papermill executes ``notebooks/rollback.ipynb`` with the parameters; the executed notebook and
its HTML rendering are redacted and written to ``DIR/<incident_id>/`` with the rest of the
evidence. When a step fails, papermill still leaves the partial notebook (failing cell marked);
this command then collects the evidence from outside the kernel, using the incident timeline,
re-seals the manifest and exits 1. Exit 2: unknown or invalid parameters. Exit 4: the run
stopped before any change because the verdict was inconclusive (``on_inconclusive=stop``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from runbook_lib.cli.exit_status import INCONCLUSIVE, OK
from runbook_lib.cli.kernel import papermill_kernel_options
from runbook_lib.core.redact import SECRET_NAME, Redactor, secrets_from_kubeconfig
from runbook_lib.errors import ParameterError
from runbook_lib.evidence.manifest import write_manifest

__all__ = ["parse_value", "register", "run_rollback"]

NOTEBOOKS = {"assess": "assess.ipynb", "rollback": "rollback.ipynb"}
# Paths given on the command line are relative to where the command runs, but the kernel runs
# in the notebooks directory; these are made absolute before papermill sees them.
PATH_PARAMETERS = ("replay_csv", "kubeconfig", "notify_file", "fix_forward_repo", "output_dir")
FIRST_STEP_MARKER = "rb.start_run("


def _notebook_dir() -> Path:
    # The notebooks ship inside the package (runbook_lib.notebooks, which is the top-level
    # notebooks/ directory in a checkout), so wheel and editable installs find them alike.
    # A file-system path: papermill reads it and runs the kernel in that directory.
    return Path(str(resources.files("runbook_lib.notebooks")))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a runbook notebook headlessly (papermill) and keep the evidence",
        description=(
            "Execute a runbook notebook with papermill. The redacted executed notebook, its "
            "HTML and the evidence go to DIR/<incident_id>/. Exit 0 done, 1 a step failed "
            "(partial notebook and evidence still written), 2 bad parameters, 4 stopped "
            "before any change on an inconclusive verdict."
        ),
    )
    parser.add_argument("runbook", choices=sorted(NOTEBOOKS), help="which runbook")
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="notebook parameter; VALUE is read like papermill -p (True, 3, 0.5, text)",
    )  # fmt: skip
    parser.add_argument(
        "-r", "--raw-parameter", nargs=2, action="append", default=[],
        metavar=("NAME", "VALUE"), help="notebook parameter kept as text",
    )  # fmt: skip
    parser.add_argument("--output-dir", metavar="DIR", help="evidence root (default: evidence)")
    parser.add_argument("--notebook", metavar="PATH", help="notebook to run (default: bundled)")
    parser.add_argument("--kernel", metavar="NAME", help="Jupyter kernel (default: notebook's)")
    parser.add_argument("--quiet", action="store_true", help="do not stream cell output")
    parser.set_defaults(func=_run_command)


def parse_value(text: str) -> Any:
    """A ``-p`` value the way papermill reads it: True/False/None, int, float, else text."""
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    if text in ("None", "none"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _kubeconfig_secrets(parameters: Mapping[str, Any]) -> tuple[str, ...]:
    paths = [str(parameters.get("kubeconfig") or "")]
    paths += os.environ.get("KUBECONFIG", "").split(os.pathsep)
    found: list[str] = []
    for path in filter(None, paths):
        try:
            config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(config, Mapping):
            found += secrets_from_kubeconfig(config)
    return tuple(found)


def _redactor(parameters: Mapping[str, Any]) -> Redactor:
    flagged = [str(v) for k, v in parameters.items() if SECRET_NAME.search(k) and v]
    return Redactor.build(secrets=[*flagged, *_kubeconfig_secrets(parameters)], env=os.environ)


def _check_names(notebook: Path, parameters: Mapping[str, Any]) -> None:
    import papermill

    known = papermill.inspect_notebook(str(notebook))
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ParameterError(
            [f"{name}: not a parameter of {notebook.name} (see papermill --help-notebook)"
             for name in unknown]
        )  # fmt: skip


def run_rollback(
    parameters: Mapping[str, Any],
    *,
    notebook: Path,
    kernel: str | None = None,
    stream: bool = True,
) -> tuple[int, Path]:
    """Run the rollback notebook with papermill and leave the redacted, sealed bundle.

    Returns (exit status, incident directory): 1 when a step failed, 2 when the notebook's
    validation refused the parameters. Raises ``ParameterError`` for unknown parameters.
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from runbook_lib.assessment import check_params
    from runbook_lib.evidence.notebook import notebook_timings, redact_notebook, render_html
    from runbook_lib.facts import Outcome, RunFacts
    from runbook_lib.run.context import check_paths
    from runbook_lib.run.params import build_params
    from runbook_lib.run.progress import PROGRESS_ENV
    from runbook_lib.run.salvage import collect_after_failure
    from runbook_lib.summary import read_summary
    from runbook_lib.timeline import Timeline

    params = dict(parameters)
    assess = notebook.stem == "assess"
    # The assessment is read-only and has no incident: its output folder is named by time.
    output_dir = str(params.pop("output_dir", "evidence")) if assess else ""
    _check_names(notebook, params)
    # Every problem at once, before anything runs (exit 2).
    if assess:
        check_params(params)
    else:
        check_paths(build_params(params))
    for name in PATH_PARAMETERS:
        if isinstance(params.get(name), str | Path) and str(params[name]):
            params[name] = str(Path(str(params[name])).expanduser().resolve())
    started_at = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    if assess:
        incident_dir = Path(output_dir).expanduser().resolve() / f"assess-{started_at}"
    else:
        release = str(params.get("release") or "app")
        # Fixed here, not in the kernel, so the evidence can be found after a crash.
        params["incident_id"] = params.get("incident_id") or f"rollback-{release}-{started_at}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", str(params["incident_id"])):
            raise ParameterError([f"incident_id: letters, digits, '.', '_', '-' only: "
                                  f"{params['incident_id']!r}"])  # fmt: skip
        params.setdefault("output_dir", str(Path("evidence").resolve()))
        incident_dir = Path(params["output_dir"]) / str(params["incident_id"])
    incident_dir.mkdir(parents=True, exist_ok=True)
    redactor = _redactor(params)

    failure = ""
    started = time.monotonic()
    # Headless: the waits' progress as lines in the log, not widgets nobody sees.
    os.environ.setdefault(PROGRESS_ENV, "text")
    # papermill writes the unredacted notebook as it goes; keep that copy out of the bundle.
    with tempfile.TemporaryDirectory(prefix="runbook-run-") as scratch:
        raw_path = Path(scratch) / notebook.name
        try:
            papermill.execute_notebook(
                str(notebook), str(raw_path), parameters=params, kernel_name=kernel,
                progress_bar=False, log_output=False,
                stdout_file=sys.stdout if stream else None,
                stderr_file=sys.stderr if stream else None,
                cwd=str(notebook.parent), **papermill_kernel_options(),
            )  # fmt: skip
        except PapermillExecutionError as err:
            failure = f"step failed in cell {err.exec_count}: {err.ename}: {err.evalue}"
        except RuntimeError as err:  # the kernel died or could not start (nbclient)
            failure = f"notebook run aborted: {type(err).__name__}: {err}"
        raw = (
            nbformat.read(raw_path, as_version=4)  # type: ignore[no-untyped-call]
            if raw_path.exists()
            else None
        )
    wall_s = time.monotonic() - started
    first: float | None = None
    if raw is not None:
        clean = redact_notebook(raw, redactor)
        nbformat.write(clean, incident_dir / notebook.name)  # type: ignore[no-untyped-call]
        (incident_dir / notebook.with_suffix(".html").name).write_text(
            render_html(clean, redactor), encoding="utf-8"
        )
        first = notebook_timings(clean, first_step_marker=FIRST_STEP_MARKER).kernel_to_first_step_s
    status = 1
    if failure:
        try:
            report = collect_after_failure(params)
        except ParameterError as err:
            # The notebook stopped at its validation cell: nothing ran, the parameters are bad.
            failure, status = f"invalid parameters: {err}", 2
        else:
            for problem in report.problems:
                print(f"evidence: could not collect {redactor(problem)}", file=sys.stderr)
    write_manifest(incident_dir)
    timeline = incident_dir / "timeline.jsonl"
    facts = RunFacts.read(Timeline(timeline).events) if timeline.exists() else None
    outcome = facts.outcome if facts is not None else None
    # The verdict: the rollback's decision fact, else what the notebook's summary ended with.
    shown = read_summary(raw) if raw is not None else None
    verdict = (facts.decided.verdict if facts and facts.decided else "") or (
        str(shown.get("verdict", "")) if shown else ""
    )
    print(f"verdict: {verdict or 'none (the run stopped before the decision)'}")
    if outcome is not None:
        print(f"outcome: {outcome.value}")
    print(f"evidence: {incident_dir}")
    print(
        f"papermill: {wall_s:.1f} s wall; kernel start to first step "
        + ("n/a" if first is None else f"{first:.1f} s")
    )
    if failure:
        print(f"runbook run: {redactor(failure)}", file=sys.stderr)
        return status, incident_dir
    if outcome is Outcome.INCONCLUSIVE:
        print(
            "runbook run: stopped before any change: the verdict is inconclusive (see the "
            "record); set on_inconclusive=rollback to roll back anyway",
            file=sys.stderr,
        )
        return INCONCLUSIVE, incident_dir
    return OK, incident_dir


def _run_command(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {name: parse_value(value) for name, value in args.parameter}
    params.update({name: value for name, value in args.raw_parameter})
    if args.output_dir:
        params["output_dir"] = args.output_dir
    notebook = Path(args.notebook) if args.notebook else _notebook_dir() / NOTEBOOKS[args.runbook]
    status, _ = run_rollback(params, notebook=notebook, kernel=args.kernel, stream=not args.quiet)
    return status
