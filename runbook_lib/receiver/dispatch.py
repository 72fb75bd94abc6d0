"""Where a run executes: a child process on this machine, or a Kubernetes Job.

Both dispatchers answer the same four questions for the receiver (``Dispatch``):

- ``start``: make the run exist; returns what the journal records of it (a pid, a Job).
  ``DispatchRefused`` when it cannot (the program is missing, the API refuses the Job): a
  failed dispatch, reported and never counted as a rollback.
- ``find``: after a restart, does the run exist? ``RUNNING`` (a child holding the run's lock,
  a Job found by its label and not ended), ``ENDED`` (it ran while the receiver was down), or
  ``NEVER`` (the receiver stopped between planning the run and starting it).
- ``wait``: until it ends. A Job is *handed back* instead when the receiver stops (it runs on
  in the cluster and the next receiver finds it); a local child is waited for or stopped.
- ``stop``: a local child gets SIGTERM (it records the interrupt and seals its evidence);
  a Job is left alone.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from runbook_lib.adapters import notebook_runner
from runbook_lib.adapters.job_runner import JobRunner
from runbook_lib.core.run_job import (
    JobSpec,
    credential_env_name,
    credential_parameters,
    job_manifest,
    job_name,
    run_arguments,
)
from runbook_lib.errors import ApiError, ParameterError

__all__ = [
    "RUN_ENTRY",
    "Dispatch",
    "DispatchRefused",
    "JobDispatch",
    "Liveness",
    "LocalDispatch",
    "RunSpec",
    "Waited",
]

# The child: `runbook run` through this interpreter, whatever is on PATH.
RUN_ENTRY = (sys.executable, "-c", "import sys; from runbook_lib.cli import main; sys.exit(main())")


class Liveness(StrEnum):
    RUNNING = "running"
    ENDED = "ended"
    NEVER = "never"  # planned, never started: safe to start now


@dataclass(frozen=True)
class RunSpec:
    """One run: its incident id, release, full parameters (credentials included: they go to
    the child's environment or the Job's Secret, never the journal) and evidence folder."""

    run_id: str
    release: str
    namespace: str
    parameters: Mapping[str, Any]
    incident_dir: Path


@dataclass(frozen=True)
class Waited:
    """``ended`` False: handed back (a Job still running when the receiver stopped)."""

    ended: bool
    status: int | None = None  # exit status when known
    state: str = ""  # "exited", "succeeded", "failed", "gone", "timeout", "handed_back"


class DispatchRefused(Exception):
    """The run could not be started; ``reason`` says why in one line."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class Dispatch(Protocol):
    kind: str
    hands_back: bool  # runs go on without the receiver (Jobs)

    def start(self, run: RunSpec) -> dict[str, Any]: ...

    def find(self, run: RunSpec) -> Liveness: ...

    def wait(self, run: RunSpec, *, handed_back: threading.Event) -> Waited: ...

    def stop(self, run: RunSpec) -> None: ...


def _split_credentials(parameters: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    secret = set(credential_parameters(parameters))
    plain = {k: v for k, v in parameters.items() if k not in secret}
    env = {credential_env_name(k): str(parameters[k]) for k in secret}
    return plain, env


class LocalDispatch:
    """Each run a child process (``runbook run rollback``) holding ``<state>/runs/<id>.lock``
    while it lives; its output goes to ``<state>/runs/<id>.log``."""

    kind = "local"
    hands_back = False

    def __init__(
        self,
        state_dir: Path,
        *,
        command: Sequence[str] = RUN_ENTRY,
        env: Mapping[str, str] | None = None,
        timeout_s: float = 3600.0,
        stop_timeout_s: float = 45.0,
    ) -> None:
        self.folder = Path(state_dir) / "runs"
        self.command = tuple(command)
        self.env = dict(os.environ if env is None else env)
        self.timeout_s = timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._children: dict[str, notebook_runner.Child] = {}
        self._lock = threading.Lock()

    def _lock_path(self, run: RunSpec) -> Path:
        return self.folder / f"{run.run_id}.lock"

    def start(self, run: RunSpec) -> dict[str, Any]:
        plain, secret_env = _split_credentials(run.parameters)
        argv = [*self.command, "run", "rollback", "--quiet", *run_arguments(plain)]
        try:
            child = notebook_runner.start_child(
                argv,
                lock_path=self._lock_path(run),
                log_path=self.folder / f"{run.run_id}.log",
                env={**self.env, **secret_env},
            )
        except notebook_runner.ChildStillRunning:
            if self.find(run) is Liveness.RUNNING:  # an earlier receiver's child: adopt it
                return {"pid": self._children[run.run_id].pid, "adopted": True}
            raise DispatchRefused("the run's lock is held but no child holds it") from None
        except OSError as err:
            raise DispatchRefused(f"cannot start {self.command[0]}: {err.strerror or err}") from err
        with self._lock:
            self._children[run.run_id] = child
        return {"pid": child.pid}

    def find(self, run: RunSpec) -> Liveness:
        pid = notebook_runner.holder(self._lock_path(run))
        if pid is not None:
            with self._lock:
                self._children[run.run_id] = notebook_runner.Child(self._lock_path(run), pid)
            return Liveness.RUNNING
        if (run.incident_dir / "timeline.jsonl").exists():
            return Liveness.ENDED
        return Liveness.NEVER

    def wait(self, run: RunSpec, *, handed_back: threading.Event) -> Waited:
        with self._lock:
            child = self._children.get(run.run_id)
        if child is None:
            return Waited(True, None, "exited")
        state = "exited"
        try:
            status = notebook_runner.wait_child(child, timeout_s=self.timeout_s)
        except TimeoutError:
            self.stop(run)  # a run longer than any rollback: stopped, sealed, reported
            status, state = notebook_runner.wait_child(child, timeout_s=10.0), "timeout"
        with self._lock:
            self._children.pop(run.run_id, None)
        # Nobody holds it any more; the run's log stays beside it for people.
        self._lock_path(run).unlink(missing_ok=True)
        return Waited(True, status, state)

    def stop(self, run: RunSpec) -> None:
        notebook_runner.terminate(self._lock_path(run), timeout_s=self.stop_timeout_s)


class JobDispatch:
    """Each run a Job (``core.run_job``), found again by its label after a restart."""

    kind = "job"
    hands_back = True

    def __init__(
        self,
        runner: JobRunner,
        spec: JobSpec,
        *,
        poll_s: float = 2.0,
        attempts: int = 3,
    ) -> None:
        self.runner = runner
        self.spec = spec
        self.poll_s = poll_s
        self.attempts = attempts

    def _where(self, run: RunSpec) -> tuple[str, str]:
        return run.namespace or self.spec.namespace, job_name(run.run_id)

    def start(self, run: RunSpec) -> dict[str, Any]:
        try:
            manifest = job_manifest(self.spec, run.parameters)
        except ParameterError as err:
            raise DispatchRefused("; ".join(err.problems)) from err
        namespace, name = self._where(run)
        for attempt in range(1, self.attempts + 1):
            try:
                created = self.runner.create(manifest)
            except ApiError as err:
                if not err.retryable or attempt == self.attempts:
                    first = str(err).splitlines()[0]
                    raise DispatchRefused(first, retryable=err.retryable) from err
                time.sleep(attempt)  # a busy API server: 1 s, then 2 s
            else:
                return {"job": {"namespace": namespace, "name": name}, "created": created}
        raise AssertionError("unreachable")

    def find(self, run: RunSpec) -> Liveness:
        namespace, name = self._where(run)
        try:
            state = self.runner.find(namespace, name)
        except ApiError:
            return Liveness.RUNNING  # cannot tell now: wait, which reads it again
        if state is None:
            return Liveness.NEVER
        return Liveness.RUNNING if state == "running" else Liveness.ENDED

    def wait(self, run: RunSpec, *, handed_back: threading.Event) -> Waited:
        namespace, name = self._where(run)
        deadline = time.monotonic() + self.spec.deadline_s + 60
        while time.monotonic() < deadline:
            try:
                state = self.runner.state(namespace, name)
            except ApiError:
                state = "running"  # the API is busy or down: ask again
            if state != "running":
                return Waited(True, 0 if state == "succeeded" else 1, state)
            if handed_back.wait(self.poll_s):
                return Waited(False, None, "handed_back")
        return Waited(True, None, "timeout")

    def stop(self, run: RunSpec) -> None:
        """Nothing: the Job runs on in the cluster; the next receiver finds it."""
