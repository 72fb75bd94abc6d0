"""A rollback run as a Kubernetes Job, for ``runbook serve --dispatch job`` (pure: data out).

The Job runs the same command a person runs, ``runbook run rollback -p/-r NAME VALUE ...``,
in the runner image, as the ServiceAccount ``deploy/rbac.yaml`` grants exactly the runbook's
permissions (``runbook-rollback``), with its evidence written to a mounted volume
(a PersistentVolumeClaim) under ``/evidence/<incident_id>``. A Job is never retried
(``backoffLimit: 0``): a rollback that failed half-way is for a person, not for a retry loop.
The Job's name follows from the incident id (a readable part and a hash: unique for every
id, at most 63 characters), and the label ``runbook.io/run`` carries it, so a receiver
restarted mid-run finds the Job it created instead of starting a second one.

Credentials never appear in the Job spec: a parameter that names one (``slack_webhook_url``)
is refused here; the run reads it from the environment (``RUNBOOK_SLACK_WEBHOOK_URL``), which
the Job fills from the Secret ``JobSpec.secret_name`` (``envFrom``, optional).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runbook_lib.core import names
from runbook_lib.core.names import bounded_name
from runbook_lib.core.redact import is_credential_name
from runbook_lib.errors import ParameterError

__all__ = [
    "EVIDENCE_MOUNT",
    "MANAGED_BY",
    "RUN_LABEL",
    "JobSpec",
    "credential_env_name",
    "credential_parameters",
    "job_manifest",
    "job_name",
    "run_arguments",
]

EVIDENCE_MOUNT = "/evidence"
RUN_LABEL = "runbook.io/run"  # the Job's name: how a restarted receiver finds it
MANAGED_BY = "runbook-serve"
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$")


def run_arguments(parameters: Mapping[str, Any]) -> list[str]:
    """``-p``/``-r`` pairs for ``runbook run rollback``: flags and numbers with ``-p``, text with
    ``-r``. Both reach the settings model as the text typed, which reads them ("True", "3",
    "007" for a text setting stays "007")."""
    argv: list[str] = []
    for name, value in parameters.items():
        if isinstance(value, bool | int | float):
            argv += ["-p", name, str(value)]
        else:
            argv += ["-r", name, str(value)]
    return argv


def job_name(incident_id: str) -> str:
    """``runbook-<incident id, cut>-<hash>``: a valid name and label value (63 characters),
    different for every incident id however long or alike."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", incident_id.lower()).strip("-")
    return bounded_name("runbook-", cleaned, unique=incident_id, max_len=63)


def credential_env_name(parameter: str) -> str:
    """The environment variable ``runbook run`` reads a credential parameter from."""
    return f"RUNBOOK_{parameter.upper()}"


def credential_parameters(parameters: Mapping[str, Any]) -> list[str]:
    """The parameters that name a credential: they travel through a Secret, never the spec."""
    return sorted(name for name, value in parameters.items() if is_credential_name(name) and value)


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """Where and how runs execute: image, namespace, ServiceAccount, evidence volume."""

    image: str
    namespace: str = "default"
    service_account: str = "runbook-rollback"
    evidence_claim: str = "runbook-evidence"
    secret_name: str = "runbook-run-secrets"
    deadline_s: int = 3600
    labels: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        problems = []
        if not _IMAGE.match(self.image):
            problems.append(f"runner_image: not an image reference: {self.image!r}")
        for name in ("namespace", "service_account", "evidence_claim", "secret_name"):
            problem = names.label_name_problem(getattr(self, name))
            if problem:
                problems.append(f"{name}: {problem}")
        if self.deadline_s < 1:
            problems.append(f"deadline_s: must be positive, got {self.deadline_s}")
        if problems:
            raise ParameterError(problems)


def job_manifest(spec: JobSpec, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The Job for one run, in the release's namespace (``parameters["namespace"]``, where
    ``deploy/rbac.yaml`` is applied; else ``spec.namespace``). ``parameters`` must hold
    ``incident_id`` (it names the Job); ``output_dir`` becomes the evidence mount and
    ``kubeconfig`` is dropped (the Job uses its ServiceAccount)."""
    incident_id = str(parameters.get("incident_id") or "")
    if not incident_id:
        raise ParameterError(["incident_id: the receiver must fix it before dispatching"])
    secret = credential_parameters(parameters)
    if secret:
        raise ParameterError(
            [
                f"{name}: a credential is not written into a Job spec; put it in the Secret "
                f"{spec.secret_name} as {credential_env_name(name)}"
                for name in secret
            ]
        )
    params = {k: v for k, v in parameters.items() if k not in ("output_dir", "kubeconfig")}
    name = job_name(incident_id)
    labels = {
        "app.kubernetes.io/name": "runbook-run",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "runbook.io/release": str(parameters.get("release", "")),
        RUN_LABEL: name,
        **(spec.labels or {}),
    }
    command = ["runbook", "run", "rollback", "--quiet", "--output-dir", EVIDENCE_MOUNT]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": str(parameters.get("namespace") or spec.namespace),
            "labels": labels,
            "annotations": {"runbook.io/incident-id": incident_id},
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.deadline_s,
            "ttlSecondsAfterFinished": 7 * 24 * 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": spec.service_account,
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "runbook",
                            "image": spec.image,
                            "command": [*command, *run_arguments(params)],
                            "envFrom": [
                                {"secretRef": {"name": spec.secret_name, "optional": True}}
                            ],
                            "volumeMounts": [{"name": "evidence", "mountPath": EVIDENCE_MOUNT}],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "evidence",
                            "persistentVolumeClaim": {"claimName": spec.evidence_claim},
                        }
                    ],
                },
            },
        },
    }
