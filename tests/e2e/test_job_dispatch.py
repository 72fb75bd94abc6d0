"""``runbook serve --dispatch job`` on the sandbox's API server, as the receiver's ServiceAccount.

The manifests in ``deploy/`` are applied as they are; the receiver's identity (a token for
``runbook-receiver``) creates the run's Job, which runs as ``runbook-rollback``
(``deploy/rbac.yaml``) with the evidence volume. kwok plays the kubelet: the Job's pod
"succeeds" without running the image, so what is exercised here is the Job object, the RBAC
of both identities, the receiver's wait and how it finds a Job again by its label, and a
refusal by the API server (a namespace where the receiver may not create Jobs); the runner
image itself is not (no container engine on this machine; README).
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from alert_payloads import alert, payload

from runbook_lib.adapters.job_runner import JobRunner
from runbook_lib.adapters.notify import FileNotifier
from runbook_lib.core.alert_policy import Policy
from runbook_lib.core.alerts import parse_webhook
from runbook_lib.core.run_job import RUN_LABEL, JobSpec, job_name
from runbook_lib.receiver import JobDispatch, Receiver, RunSpec
from runbook_lib.receiver.dispatch import Liveness

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
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
        sb.kubectl(
            "delete",
            "jobs",
            "-n",
            "default",
            "-l",
            "app.kubernetes.io/name=runbook-run",
            "--ignore-not-found",
            "--wait=false",
        )
        for doc in reversed(_docs("receiver.yaml")):
            sb.kubectl(
                "delete",
                doc["kind"].lower(),
                doc["metadata"]["name"],
                "-n",
                "default",
                "--ignore-not-found",
                "--wait=false",
            )
        sb.kubectl("delete", "pv", "runbook-evidence-test", "--ignore-not-found", "--wait=false")


def _spec(run_id: str, namespace: str = "default") -> RunSpec:
    params = {
        "release": "app",
        "namespace": namespace,
        "expected_cluster": "kwok-runbook",
        "confirm": True,
        "incident_id": run_id,
    }
    return RunSpec(run_id, "app", namespace, params, Path("/nonexistent") / run_id)


def test_the_receiver_creates_the_run_as_a_job_and_finds_it_again_by_label(applied: Any) -> None:
    sb = applied
    dispatch = JobDispatch(
        JobRunner(_batch_as(sb, RECEIVER_SA)),
        JobSpec(image="registry.local/runbook:test"),
        poll_s=0.5,
    )
    spec = _spec("alert-app-e2e-job")
    assert dispatch.find(spec) is Liveness.NEVER
    assert dispatch.start(spec)["created"] is True
    waited = dispatch.wait(spec, handed_back=threading.Event())
    assert waited.state == "succeeded", sb.kubectl("describe", "job", "-n", "default")
    name = job_name("alert-app-e2e-job")
    job = json.loads(sb.kubectl("get", "job", name, "-o", "json"))
    assert job["metadata"]["labels"][RUN_LABEL] == name
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "runbook-rollback"
    assert "--output-dir" in pod["containers"][0]["command"]
    assert pod["containers"][0]["envFrom"][0]["secretRef"]["name"] == "runbook-run-secrets"
    # A receiver restarted after the run finds the same Job, ended, instead of a second one.
    assert dispatch.find(spec) is Liveness.ENDED
    assert dispatch.start(spec)["created"] is False
    names = sb.kubectl("get", "jobs", "-l", "app.kubernetes.io/name=runbook-run", "-o", "name")
    assert names.split() == [f"job.batch/{name}"]


def test_a_namespace_the_receiver_may_not_create_jobs_in_is_a_failed_dispatch(
    applied: Any, tmp_path: Path
) -> None:
    sb = applied
    # A namespace where deploy/receiver.yaml's Role is not applied: the API server says 403.
    if not _exists(sb, "no-runbook"):
        sb.kubectl("create", "namespace", "no-runbook")
    receiver = Receiver(
        Policy.from_mapping(
            {"releases": [{"release": "*", "namespace": "*", "auto_rollback": True}]}
        ),
        state_dir=tmp_path / "state",
        output_dir=tmp_path / "evidence",
        dispatch=JobDispatch(
            JobRunner(_batch_as(sb, RECEIVER_SA)),
            JobSpec(image="registry.local/runbook:test"),
            poll_s=0.5,
        ),
        notifiers=[FileNotifier(tmp_path / "notes.jsonl")],
    )
    receiver.start()
    receiver.accept(parse_webhook(payload(alert("app", "no-runbook"))))
    assert receiver.wait_idle(30)
    receiver.close()
    lines = (tmp_path / "state" / "journal.jsonl").read_text().splitlines()
    (end,) = [e for e in map(json.loads, lines) if e["event"] == "run_finished"]
    assert (end["outcome"], end["changed"]) == ("dispatch_failed", False)
    assert "HTTP 403" in end["note"]
    assert receiver.auto_rollbacks == {}
    notes = (tmp_path / "notes.jsonl").read_text()
    assert "could not start run" in notes


def _exists(sb: Any, namespace: str) -> bool:
    return namespace in sb.kubectl("get", "namespaces", "-o", "name")


def test_the_receiver_identity_cannot_touch_the_release(applied: Any) -> None:
    sb = applied
    as_receiver = f"--as=system:serviceaccount:default:{RECEIVER_SA}"
    assert _can_i(sb, "create", "jobs", as_receiver) == "yes"
    for verb, resource in (("patch", "deployments"), ("get", "secrets"), ("delete", "jobs")):
        assert _can_i(sb, verb, resource, as_receiver) == "no", (verb, resource)


def _can_i(sb: Any, verb: str, resource: str, as_user: str) -> str:
    out = subprocess.run(
        [
            str(sb.bin_dir / "kubectl"),
            "--context",
            sb.context,
            "auth",
            "can-i",
            verb,
            resource,
            as_user,
            "-n",
            "default",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=sb.env,
    )
    return out.stdout.strip()
