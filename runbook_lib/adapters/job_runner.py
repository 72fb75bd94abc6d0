"""Runs as Kubernetes Jobs: the runner of ``runbook serve --dispatch job``.

Creates the Job ``core.run_job.job_manifest`` describes and waits for it to complete or fail.
A Job of the same name already there (the receiver restarted mid-run) is waited for, not
created again. The evidence stays on the Job's volume; the result names where
(``<claim>:/<incident_id>``) and reports the Job's end as the outcome (``job_succeeded``,
``job_failed``): the incident record itself is read from the volume by whoever mounts it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from runbook_lib.adapters.notebook_runner import RunResult
from runbook_lib.core.run_job import JobSpec, job_manifest, job_name
from runbook_lib.errors import ApiError

__all__ = ["JobRunner", "job_state"]


def job_state(status: Any) -> str:
    """``succeeded``, ``failed`` or ``running`` from a Job's status (conditions first)."""
    for condition in getattr(status, "conditions", None) or []:
        if condition.status == "True" and condition.type in ("Complete", "SuccessCriteriaMet"):
            return "succeeded"
        if condition.status == "True" and condition.type in ("Failed", "FailureTarget"):
            return "failed"
    return "running"


class JobRunner:
    """``runner(parameters, on_start=...) -> RunResult`` creating one Job per run.

    ``batch`` is a ``kubernetes.client.BatchV1Api`` (the caller loads the kubeconfig or the
    in-cluster config). ``poll_s`` is how often the Job's status is read.
    """

    def __init__(
        self,
        batch: Any,
        spec: JobSpec,
        *,
        poll_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.batch = batch
        self.spec = spec
        self.poll_s = poll_s
        self.sleep = sleep

    def __call__(
        self, parameters: Mapping[str, Any], *, on_start: Callable[[int], None] = lambda _p: None
    ) -> RunResult:
        from kubernetes.client.exceptions import ApiException

        manifest = job_manifest(self.spec, parameters)
        name = job_name(str(parameters["incident_id"]))
        namespace = str(manifest["metadata"]["namespace"])
        started = time.monotonic()
        try:
            self.batch.create_namespaced_job(namespace, manifest)
        except ApiException as err:
            if err.status != 409:  # 409: already created before a restart; wait for it
                raise ApiError(
                    f"cannot create Job {name} in {namespace}: {err.reason}",
                    command=f"create job {name}",
                    stderr=str(err.body or ""),
                    retryable=err.status >= 500 or err.status == 429,
                    status=err.status,
                ) from err
        deadline = started + self.spec.deadline_s + 60
        state = "running"
        while time.monotonic() < deadline:
            try:
                job = self.batch.read_namespaced_job_status(name, namespace)
            except ApiException as err:
                if err.status == 404:  # deleted under us
                    state = "failed"
                    break
                raise ApiError(
                    f"cannot read Job {name}: {err.reason}",
                    command=f"get job {name}",
                    retryable=True,
                ) from err
            state = job_state(job.status)
            if state != "running":
                break
            self.sleep(self.poll_s)
        # The evidence is on the volume: say which claim and folder.
        where = Path(f"{self.spec.evidence_claim}:/{parameters['incident_id']}")
        outcome = {"succeeded": "job_succeeded", "failed": "job_failed"}.get(state, "job_timeout")
        status = 0 if state == "succeeded" else 1
        return RunResult(status, where, outcome, "", time.monotonic() - started)
