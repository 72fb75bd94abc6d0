"""``runbook serve --dispatch job`` on the sandbox's API server, as the receiver's ServiceAccount.

The manifests in ``deploy/`` are applied as they are; the receiver's identity (a token for
``runbook-receiver``) creates the run's Job, which runs as ``runbook-rollback``
(``deploy/rbac.yaml``) with the evidence volume. kwok plays the kubelet: the Job's pod
"succeeds" without running the image, so what is exercised here is the Job object, the RBAC
of both identities and the receiver's wait; the runner image itself is not (no container
engine on this machine; README).
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook_lib.adapters.job_runner import JobRunner
from runbook_lib.core.run_job import JobSpec, job_name

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RECEIVER_SA = "runbook-receiver"


def _apply(sb: Any, docs: list[dict[str, Any]], tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    sb.kubectl("apply", "-n", "default", "-f", str(path))


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _batch_as(sb: Any, sa: str) -> Any:
    """A BatchV1Api authenticated with a token of ServiceAccount ``sa`` (nothing else)."""
    from kubernetes import client

    token = sb.kubectl("create", "token", sa, "-n", "default", "--duration=1h").strip()
    raw = json.loads(sb.kubectl("config", "view", "--raw", "--minify", "-o", "json"))
    cluster = raw["clusters"][0]["cluster"]
    configuration = client.Configuration()
    configuration.host = cluster["server"]
    if "certificate-authority-data" in cluster:
        ca = Path(sb.state_dir) / "receiver-test-ca.crt"
        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        configuration.ssl_ca_cert = str(ca)
    else:
        configuration.ssl_ca_cert = cluster["certificate-authority"]
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.BatchV1Api(client.ApiClient(configuration))


@pytest.fixture
def applied(clean_sandbox: Any, tmp_path: Path) -> Iterator[Any]:
    sb = clean_sandbox
    _apply(sb, _docs("rbac.yaml") + _docs("receiver.yaml"), tmp_path, "deploy")
    # No storage provisioner in the sandbox: a volume of our own for the evidence claim.
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "runbook-evidence-test"},
        "spec": {
            "capacity": {"storage": "5Gi"},
            "accessModes": ["ReadWriteMany"],
            "hostPath": {"path": str(tmp_path / "evidence")},
            "claimRef": {"namespace": "default", "name": "runbook-evidence"},
        },
    }
    _apply(sb, [pv], tmp_path, "pv")
    try:
        yield sb
    finally:
        sb.kubectl("delete", "jobs", "-n", "default", "-l", "app.kubernetes.io/name=runbook-run",
                   "--ignore-not-found", "--wait=false")  # fmt: skip
        for doc in reversed(_docs("receiver.yaml")):
            sb.kubectl("delete", doc["kind"].lower(), doc["metadata"]["name"], "-n", "default",
                       "--ignore-not-found", "--wait=false")  # fmt: skip
        sb.kubectl("delete", "pv", "runbook-evidence-test", "--ignore-not-found", "--wait=false")


def test_the_receiver_creates_the_run_as_a_job_and_waits_for_it(applied: Any) -> None:
    sb = applied
    batch = _batch_as(sb, RECEIVER_SA)
    runner = JobRunner(batch, JobSpec(image="registry.local/runbook:test"), poll_s=0.5)
    params = {
        "release": "app",
        "namespace": "default",
        "expected_cluster": sb.context,
        "confirm": True,
        "incident_id": "alert-app-e2e-job",
        "output_dir": "/ignored",
    }
    result = runner(params)
    assert result.outcome == "job_succeeded", sb.kubectl("describe", "job", "-n", "default")
    assert str(result.incident_dir) == "runbook-evidence:/alert-app-e2e-job"
    job = json.loads(sb.kubectl("get", "job", job_name("alert-app-e2e-job"), "-o", "json"))
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "runbook-rollback"
    assert "--output-dir" in pod["containers"][0]["command"]
    # A receiver restarted mid-run finds the same Job instead of creating a second one.
    again = runner(params)
    assert again.outcome == "job_succeeded"
    names = sb.kubectl("get", "jobs", "-l", "app.kubernetes.io/name=runbook-run", "-o", "name")
    assert names.split() == [f"job.batch/{job_name('alert-app-e2e-job')}"]


def test_the_receiver_identity_cannot_touch_the_release(applied: Any) -> None:
    sb = applied
    as_receiver = f"--as=system:serviceaccount:default:{RECEIVER_SA}"
    assert _can_i(sb, "create", "jobs", as_receiver) == "yes"
    for verb, resource in (("patch", "deployments"), ("get", "secrets"), ("delete", "jobs")):
        assert _can_i(sb, verb, resource, as_receiver) == "no", (verb, resource)


def _can_i(sb: Any, verb: str, resource: str, as_user: str) -> str:
    out = subprocess.run(
        [str(sb.bin_dir / "kubectl"), "--context", sb.context, "auth", "can-i", verb, resource,
         as_user, "-n", "default"],
        capture_output=True, text=True, timeout=30, check=False, env=sb.env,
    )  # fmt: skip
    return out.stdout.strip()
