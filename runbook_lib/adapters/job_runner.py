"""Runs as Kubernetes Jobs: the Kubernetes side of ``runbook serve --dispatch job``.

``create`` makes the Job ``core.run_job.job_manifest`` describes (an existing Job of that
name, from before a restart, is found, not made twice); ``find`` looks a run's Job up by its
label (``runbook.io/run``), which is how a restarted receiver finds the Jobs it created;
``state`` reads how one is doing. Refusals (403, 422, a quota) raise ``ApiError`` with the
status and whether retrying may help; the receiver reports them as a failed dispatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runbook_lib.core.run_job import RUN_LABEL
from runbook_lib.errors import ApiError

__all__ = ["JobRunner", "job_state"]


def job_state(status: Any) -> str:
    """``succeeded``, ``failed`` or ``running`` from a Job's status (conditions first)."""
    for condition in getattr(status, "conditions", None) or []:
        if condition.status == "True" and condition.type in ("Complete", "SuccessCriteriaMet"):
            return "succeeded"
        if condition.status == "True" and condition.type in ("Failed", "FailureTarget"):
            return "failed"
    if getattr(status, "succeeded", None):
        return "succeeded"
    if getattr(status, "failed", None):
        return "failed"
    return "running"


def _api_error(err: Any, what: str, command: str) -> ApiError:
    status = int(getattr(err, "status", 0) or 0)
    return ApiError(
        f"{what}: HTTP {status} {getattr(err, 'reason', '')}".rstrip(),
        command=command,
        stderr=str(getattr(err, "body", "") or "")[:2000],
        retryable=status == 0 or status == 429 or status >= 500,
        status=status,
    )


class JobRunner:
    """Jobs through ``batch``, a ``kubernetes.client.BatchV1Api`` (the caller loads the
    kubeconfig or the in-cluster config)."""

    def __init__(self, batch: Any) -> None:
        self.batch = batch

    def create(self, manifest: Mapping[str, Any]) -> bool:
        """Create the Job; False when one of that name exists already. Raises ``ApiError``."""
        from kubernetes.client.exceptions import ApiException

        name = str(manifest["metadata"]["name"])
        namespace = str(manifest["metadata"]["namespace"])
        try:
            self.batch.create_namespaced_job(namespace, dict(manifest))
        except ApiException as err:
            if err.status == 409:
                return False
            raise _api_error(
                err, f"cannot create Job {name} in {namespace}", f"create job {name} -n {namespace}"
            ) from err
        return True

    def find(self, namespace: str, name: str) -> str | None:
        """The state of the run's Job found by its label; None when there is none."""
        from kubernetes.client.exceptions import ApiException

        try:
            found = self.batch.list_namespaced_job(namespace, label_selector=f"{RUN_LABEL}={name}")
        except ApiException as err:
            raise _api_error(
                err,
                f"cannot list Jobs in {namespace}",
                f"get jobs -n {namespace} -l {RUN_LABEL}={name}",
            ) from err
        items = list(getattr(found, "items", None) or [])
        return job_state(items[0].status) if items else None

    def state(self, namespace: str, name: str) -> str:
        """``running``, ``succeeded``, ``failed``, or ``gone`` (deleted). Raises ``ApiError``."""
        from kubernetes.client.exceptions import ApiException

        try:
            job = self.batch.read_namespaced_job_status(name, namespace)
        except ApiException as err:
            if err.status == 404:
                return "gone"
            raise _api_error(
                err, f"cannot read Job {name}", f"get job {name} -n {namespace}"
            ) from err
        return job_state(job.status)
