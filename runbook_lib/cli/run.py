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
import errno
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from runbook_lib.cli.exit_status import EVIDENCE_LOST, INCONCLUSIVE, OK
from runbook_lib.cli.kernel import papermill_kernel_options
from runbook_lib.core.kinds import Entry
from runbook_lib.core.redact import Redactor, is_credential_name, secrets_from_kubeconfig
from runbook_lib.core.settings import Settings, to_flat, with_incident_id
from runbook_lib.errors import CommandFailed, ParameterError
from runbook_lib.evidence import files
from runbook_lib.evidence.manifest import MANIFEST_NAME, check_signing_key, write_manifest

__all__ = ["credentials_from_env", "register", "run_rollback"]

NOTEBOOKS = {"assess": "assess.ipynb", "rollback": "rollback.ipynb"}
# Credential parameters may also come from the environment: ``credentials_from_env``.
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
        help="notebook parameter (a setting; -p profile FILE reads a service profile, the "
        "other parameters override it)",
    )  # fmt: skip
    parser.add_argument(
        "-r", "--raw-parameter", nargs=2, action="append", default=[],
        metavar=("NAME", "VALUE"), help="the same as -p",
    )  # fmt: skip
    parser.add_argument("--output-dir", metavar="DIR", help="evidence root (default: evidence)")
    parser.add_argument("--notebook", metavar="PATH", help="notebook to run (default: bundled)")
    parser.add_argument("--kernel", metavar="NAME", help="Jupyter kernel (default: notebook's)")
    parser.add_argument("--quiet", action="store_true", help="do not stream cell output")
    parser.set_defaults(func=_run_command)


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
    flagged = [str(v) for k, v in parameters.items() if is_credential_name(k) and v]
    return Redactor.build(secrets=[*flagged, *_kubeconfig_secrets(parameters)], env=os.environ)


# Errors creating the evidence folder that are the parameter's fault (exit 2); others, such
# as a full disk, are the preflight's to report (it stops before any change).
_BAD_FOLDER = {errno.ENOTDIR, errno.EEXIST, errno.ELOOP, errno.EACCES, errno.EPERM, errno.EROFS}


def _incident_folder(path: Path) -> Path:
    try:
        return files.evidence_dir(path)
    except OSError as err:
        if err.errno in _BAD_FOLDER or isinstance(err, NotADirectoryError):
            raise ParameterError(
                [f"output_dir: cannot create the evidence folder {path}: {err.strerror or err}"]
            ) from err
        return path  # disk full and the like: preflight says so before anything changes


# --- the scratch folder papermill writes the unredacted notebook to --------------------------

_SCRATCH_PREFIX = "runbook-run-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_scratch() -> None:
    """Remove scratch folders of our earlier runs that died without cleaning up (SIGKILL).

    Their names carry the run's pid; only folders this user owns, of processes that are gone.
    """
    root = Path(tempfile.gettempdir())
    for folder in root.glob(f"{_SCRATCH_PREFIX}*-*"):
        pid = folder.name.removeprefix(_SCRATCH_PREFIX).split("-", 1)[0]
        try:
            owned = folder.lstat().st_uid == os.geteuid() and not folder.is_symlink()
        except OSError:
            continue
        if owned and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _scratch() -> Iterator[Path]:
    """A private folder (0700) for papermill's unredacted notebook, removed on every exit."""
    _sweep_scratch()
    folder = Path(tempfile.mkdtemp(prefix=f"{_SCRATCH_PREFIX}{os.getpid()}-"))
    try:
        os.chmod(folder, 0o700)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- SIGINT / SIGTERM during the run -------------------------------------------------------


class _Aborted(Exception):
    """Raised in the main thread when the notebook run must end now (second signal, timeout)."""


def _kernel_pids() -> list[int]:
    """Our child processes (the kernel jupyter_client started, in its own session)."""
    me = os.getpid()
    found: list[int] = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[1] == str(me):
            found.append(int(stat_file.parent.name))
    return found


def _end_kernels(pids: list[int]) -> None:
    """End the kernels (and what they started, e.g. helm): their whole session's group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [pid for pid in pids if _pid_alive(pid)]
        for pid in alive:
            with suppress(OSError):
                os.killpg(pid, sig) if os.getpgid(pid) == pid else os.kill(pid, sig)
        deadline = time.monotonic() + 3.0
        while alive and time.monotonic() < deadline:
            for pid in list(alive):
                with suppress(ChildProcessError, OSError):
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        alive.remove(pid)
            time.sleep(0.05)
        if not alive:
            return


class _Signals:
    """SIGINT/SIGTERM while the notebook runs: interrupt the kernel, then end it if needed.

    The first signal interrupts the kernel (a ``KeyboardInterrupt`` in the running step, which
    records itself as interrupted and gives the lock back) and again every ``RETRY_S`` until
    papermill returns (a signal between two cells reaches the next one); after ``GIVE_UP_S``,
    or at a second signal, the run is aborted and the kernel ended. Later, while the evidence
    is written, a signal stops only what is slow (collection), never the sealing.
    """

    RETRY_S = 2
    GIVE_UP_S = 20

    def __init__(self) -> None:
        self.received: int | None = None
        self.phase = "notebook"  # then "collect", then "seal"
        self._given_up_at = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.alarm(0)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def notebook_done(self, phase: str = "collect") -> None:
        signal.alarm(0)
        self.phase = phase

    def _interrupt_kernels(self) -> None:
        for pid in _kernel_pids():
            with suppress(OSError):
                os.kill(pid, signal.SIGINT)

    def _handle(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGALRM:
            if self.phase != "notebook":
                return
            if time.monotonic() >= self._given_up_at:
                raise _Aborted("the kernel did not stop after the interrupt; it was ended")
            self._interrupt_kernels()
            signal.alarm(self.RETRY_S)
            return
        first = self.received is None
        if first:
            self.received = signum
            print(
                f"runbook run: {signal.Signals(signum).name} received: stopping the run, "
                "writing and sealing the evidence collected so far",
                file=sys.stderr,
                flush=True,
            )
        if self.phase == "notebook":
            if not first:
                raise _Aborted(f"{signal.Signals(signum).name} received twice")
            self._given_up_at = time.monotonic() + self.GIVE_UP_S
            self._interrupt_kernels()
            signal.alarm(self.RETRY_S)
        elif self.phase == "collect":
            raise _Aborted(f"{signal.Signals(signum).name} received")

    @property
    def exit_status(self) -> int:
        return 128 + int(self.received or signal.SIGINT)


# --- the run --------------------------------------------------------------------------------


@dataclass
class _Execution:
    raw: Any  # the executed (or partial) notebook, unredacted; None if papermill wrote none
    failure: str
    wall_s: float


def _execute(
    notebook: Path,
    params: Mapping[str, Any],
    *,
    kernel: str | None,
    stream: bool,
    signals: _Signals,
) -> _Execution:
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from runbook_lib.display.progress import PROGRESS_ENV

    failure = ""
    started = time.monotonic()
    # Headless: the waits' progress as lines in the log, not widgets nobody sees.
    os.environ.setdefault(PROGRESS_ENV, "text")
    raw = None
    with _scratch() as scratch:
        raw_path = scratch / notebook.name
        options = papermill_kernel_options()
        # The kernel's connection file (its HMAC key) and IPC sockets go in the same private
        # folder, removed with it, instead of the temp folder and the notebooks' directory.
        options["config"].KernelManager.connection_file = str(scratch / "kernel.json")
        try:
            papermill.execute_notebook(
                str(notebook), str(raw_path), parameters=dict(params), kernel_name=kernel,
                progress_bar=False, log_output=False,
                stdout_file=sys.stdout if stream else None,
                stderr_file=sys.stderr if stream else None,
                cwd=str(notebook.parent), **options,
            )  # fmt: skip
        except PapermillExecutionError as err:
            failure = f"step failed in cell {err.exec_count}: {err.ename}: {err.evalue}"
        except RuntimeError as err:  # the kernel died or could not start (nbclient)
            failure = f"notebook run aborted: {type(err).__name__}: {err}"
        except _Aborted as err:
            failure = f"notebook run aborted: {err}"
        except KeyboardInterrupt:  # raised by the kernel machinery after our interrupt
            failure = "notebook run aborted: interrupted"
        finally:
            signals.notebook_done()
            _end_kernels(_kernel_pids())
        with suppress(OSError, ValueError):
            raw = nbformat.read(raw_path, as_version=4)  # type: ignore[no-untyped-call]
    return _Execution(raw, failure, time.monotonic() - started)


def _finished_in_notebook(raw: Any) -> str:
    """The outcome the run printed in its ``finish`` cell, when the timeline lost it."""
    for cell in getattr(raw, "cells", ()):
        if cell.get("cell_type") != "code" or "rb.finish(" not in cell.get("source", ""):
            continue
        for output in cell.get("outputs", ()):
            text = str(output.get("data", {}).get("text/plain", ""))
            found = re.search(r"Finished: (\w+)", text)
            if found:
                return found[1]
    return ""


def _cluster_line(facts: Any) -> str:
    """What happened to the cluster, from the run's facts, in one sentence."""
    if facts.read_back is not None:  # what the cluster said after helm was cut off
        return str(facts.read_back.sentence)
    rollback = facts.rolled_back or facts.earlier_rollback
    if facts.rolled_back is not None:
        return (
            f"rolled back by this run: revision {rollback.from_revision} -> {rollback.to_revision}"
        )
    if facts.earlier_rollback is not None:
        return (
            f"rolled back earlier in this incident: revision {rollback.from_revision} -> "
            f"{rollback.to_revision}; this run changed nothing"
        )
    if facts.target is not None and facts.target.already_rolled_back:
        return f"already on the good revision {facts.target.current_revision}; nothing changed"
    return "not changed by this run (helm rollback did not run)"


def _interrupt_event(incident_dir: Path, redactor: Redactor, signame: str, run_id: str) -> None:
    """Put the interrupt on the timeline, unless the interrupted step recorded it itself."""
    from runbook_lib.record.facts import RunFacts
    from runbook_lib.record.timeline import EventKind, Timeline

    timeline = Timeline(
        incident_dir / "timeline.jsonl",
        redact=redactor,
        append=lambda _path, text: files.append_text(incident_dir, "timeline.jsonl", text),
        run=run_id,
    )
    failure = RunFacts.read(timeline.events, run=run_id).failure
    if failure is not None and failure.kind == "interrupted":
        return
    timeline.record(
        "runbook_run", EventKind.STEP_FAILED,
        f"runbook run: interrupted by {signame}; the kernel was stopped",
        error_type=signame, error_kind="interrupted",
    )  # fmt: skip
    if timeline.lost is not None:
        raise timeline.lost


def _prepare(
    parameters: Mapping[str, Any], notebook: Path
) -> tuple[dict[str, Any], Path, bool, Settings]:
    """The settings, checked once (paths absolute, incident id fixed), papermill's parameters
    for the kernel, and the evidence folder."""
    from runbook_lib.adapters.settings_files import absolute_paths, load_settings

    given = dict(parameters)
    assess = notebook.stem == "assess"
    entry = Entry.ASSESS if assess else Entry.ROLLBACK
    # The assessment is read-only and has no incident: its output folder is named by time.
    output_dir = str(given.pop("output_dir", "evidence")) if assess else ""
    # Every problem at once, before anything runs (exit 2). Paths are made absolute: the
    # kernel runs in the notebooks' directory.
    settings = absolute_paths(load_settings(given, used_by=entry))
    if not assess:
        # A key that cannot sign is bad input now, not a failed seal after the rollback.
        check_signing_key(settings.records.manifest_key)
    started = datetime.now(UTC)
    if assess:
        if not output_dir.strip():
            raise ParameterError(["output_dir: required: the folder that receives the evidence"])
        incident_dir = Path(output_dir).expanduser().resolve() / f"assess-{started:%Y%m%dT%H%M%SZ}"
    else:
        # Fixed here, not in the kernel, so the evidence can be found after a crash.
        settings = with_incident_id(settings, started)
        incident_dir = Path(settings.records.output_dir) / settings.records.incident_id
    # The kernel gets the values that differ from the defaults, the profile's among them: it is
    # not given the profile again, which would override a value given equal to its default.
    params = {**to_flat(settings, used_by=entry, changed_only=True), "profile": ""}
    return params, _incident_folder(incident_dir), assess, settings


def run_rollback(
    parameters: Mapping[str, Any],
    *,
    notebook: Path,
    kernel: str | None = None,
    stream: bool = True,
) -> tuple[int, Path]:
    """Run a runbook notebook with papermill and leave the redacted, sealed bundle.

    Returns (exit status, incident directory): 0 done, 1 a step failed, 2 the notebook's
    validation refused the parameters, 4 stopped on an inconclusive verdict, 5 the evidence
    could not be written completely (the cluster's state is still reported), 130/143 stopped
    by SIGINT/SIGTERM (the partial notebook and the evidence so far are sealed). Raises
    ``ParameterError`` for unknown or invalid parameters (exit 2).
    """
    from runbook_lib.record.timeline import RUN_ID_ENV, new_run_id

    params, incident_dir, assess, settings = _prepare(parameters, notebook)
    redactor = _redactor(params)
    signing_key = None if assess else settings.records.manifest_key
    lost: list[str] = []  # evidence that could not be written
    # Chosen here and handed to the kernel, so this run's events are told apart from another
    # run's on a shared incident timeline, even after the kernel died.
    run_id = new_run_id()
    before = os.environ.get(RUN_ID_ENV)
    os.environ[RUN_ID_ENV] = run_id

    with _Signals() as signals:
        try:
            run = _execute(notebook, params, kernel=kernel, stream=stream, signals=signals)
        finally:
            if before is None:
                os.environ.pop(RUN_ID_ENV, None)
            else:
                os.environ[RUN_ID_ENV] = before
        # Imported once the notebook has run: they bring in the Kubernetes client, pandas and
        # nbformat (seconds on a busy machine) that the kernel loads again anyway. Before the
        # kernel starts they would only delay the rollback an alert asked for.
        from runbook_lib.display.summary import read_summary
        from runbook_lib.evidence.notebook import notebook_timings, write_notebook_evidence
        from runbook_lib.record.facts import Outcome, RunFacts
        from runbook_lib.record.timeline import Timeline
        from runbook_lib.steps.salvage import collect_after_failure

        failure = run.failure
        first: float | None = None
        if run.raw is not None:
            try:
                write_notebook_evidence(run.raw, incident_dir, name=notebook.name,
                                        redactor=redactor)  # fmt: skip
            except OSError as err:
                lost.append(f"{notebook.name}: {err}")
            first = notebook_timings(
                run.raw, first_step_marker=FIRST_STEP_MARKER
            ).kernel_to_first_step_s
        status = 1
        if signals.received is not None and not assess:
            signame = signal.Signals(signals.received).name
            try:
                _interrupt_event(incident_dir, redactor, signame, run_id)
            except OSError as err:
                lost.append(f"timeline: {err}")
        if (failure or signals.received is not None) and not assess:
            try:
                # After an interrupt only what is on disk: the person wants the run to stop.
                report = collect_after_failure(
                    settings, collect=signals.received is None, run_id=run_id
                )
            except ParameterError as err:
                # The notebook stopped at its validation cell: nothing ran, the parameters are bad.
                failure, status = f"invalid parameters: {err}", 2
            except _Aborted:
                lost.append("evidence collection stopped by a signal")
            except OSError as err:
                lost.append(f"evidence after the failure: {err}")
            else:
                for problem in report.problems:
                    print(f"evidence: could not collect {redactor(problem)}", file=sys.stderr)
                lost += [p for p in report.problems if "OSError" in p or "seal" in p]
        signals.notebook_done("seal")
        try:
            write_manifest(incident_dir, signing_key=signing_key)
        except CommandFailed as err:
            print(f"runbook run: the manifest is unsigned: {redactor(str(err))}", file=sys.stderr)
        except OSError as err:
            lost.append(f"{MANIFEST_NAME}: {err}")

    facts = None
    timeline = incident_dir / "timeline.jsonl"
    if timeline.exists():
        facts = RunFacts.read(Timeline(timeline).events, run=run_id)
    outcome = facts.outcome if facts is not None else None
    if outcome is Outcome.INCOMPLETE and lost:
        # The timeline lost its last events with the disk: the run said how it ended.
        outcome = Outcome(_finished_in_notebook(run.raw) or "incomplete")
    # The verdict: the rollback's decision fact, else what the notebook's summary ended with.
    shown = read_summary(run.raw) if run.raw is not None else None
    verdict = (facts.decided.verdict if facts and facts.decided else "") or (
        str(shown.get("verdict", "")) if shown else ""
    )
    print(f"verdict: {verdict or 'none (the run stopped before the decision)'}")
    if outcome is not None:
        print(f"outcome: {outcome.value}")
    if facts is not None and not assess:
        print(f"cluster: {_cluster_line(facts)}")
    print(f"evidence: {incident_dir}")
    print(
        f"papermill: {run.wall_s:.1f} s wall; kernel start to first step "
        + ("n/a" if first is None else f"{first:.1f} s")
    )
    if signals.received is not None:
        print(
            f"runbook run: stopped by {signal.Signals(signals.received).name}; the partial "
            "notebook and the evidence so far are sealed",
            file=sys.stderr,
        )
        return signals.exit_status, incident_dir
    if lost:
        print(
            "runbook run: EVIDENCE LOST: could not write "
            + "; ".join(redactor(item) for item in lost)
            + " -- what the run did to the cluster is above; what was written is sealed",
            file=sys.stderr,
        )
        return EVIDENCE_LOST, incident_dir
    if failure:
        step_failure = facts.failure if facts is not None else None
        if step_failure is not None and status != 2:
            failure = step_failure.message  # the step's own words (the timeline is redacted)
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


def credentials_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Credential parameters given as ``RUNBOOK_<NAME>`` (``RUNBOOK_SLACK_WEBHOOK_URL``): how
    ``runbook serve`` hands them to a run, so they are in no command line and no Job spec."""
    from runbook_lib.core.run_job import credential_env_name
    from runbook_lib.core.settings import FIELDS

    found = {}
    for spec in FIELDS:
        if is_credential_name(spec.name) and environ.get(credential_env_name(spec.name)):
            found[spec.name] = environ[credential_env_name(spec.name)]
    return found


def _run_command(args: argparse.Namespace) -> int:
    # Values stay text: the settings model reads people's text (core.settings). Given on the
    # command line wins over the environment.
    params: dict[str, Any] = (
        dict(credentials_from_env(os.environ)) if args.runbook == "rollback" else {}
    )
    params.update(dict(args.parameter))
    params.update(dict(args.raw_parameter))
    if args.output_dir:
        params["output_dir"] = args.output_dir
    notebook = Path(args.notebook) if args.notebook else _notebook_dir() / NOTEBOOKS[args.runbook]
    status, _ = run_rollback(params, notebook=notebook, kernel=args.kernel, stream=not args.quiet)
    return status
