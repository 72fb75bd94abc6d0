"""``runbook serve --dispatch job``: the Job a run becomes (pure manifest)."""

from __future__ import annotations

import pytest

from runbook_lib.core.run_job import (
    EVIDENCE_MOUNT,
    RUN_LABEL,
    JobSpec,
    job_manifest,
    job_name,
    run_arguments,
)
from runbook_lib.core.settings import Entry, from_flat
from runbook_lib.errors import ParameterError

PARAMS = {
    "expected_cluster": "prod-eu",
    "release": "shop",
    "namespace": "prod",
    "confirm": True,
    "sustain": "2m",
    "request_rate_rps": 200,
    "incident_id": "alert-shop-20261201T120000123456Z",
    "output_dir": "/var/lib/runbook/evidence",
    "kubeconfig": "/home/me/.kube/config",
}


def test_the_job_runs_the_same_command_a_person_runs_as_the_runbooks_service_account() -> None:
    job = job_manifest(JobSpec(image="registry.example/runbook:0.1.0"), PARAMS)
    assert job["metadata"]["name"].startswith("runbook-alert-shop-20261201t120000123456z-")
    assert job["metadata"]["labels"][RUN_LABEL] == job["metadata"]["name"]  # found by it
    assert job["metadata"]["namespace"] == "prod"  # the release's, where rbac.yaml is applied
    assert job["spec"]["backoffLimit"] == 0  # a half-done rollback is for a person
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "runbook-rollback"
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    command = container["command"]
    assert command[:6] == ["runbook", "run", "rollback", "--quiet", "--output-dir", EVIDENCE_MOUNT]
    pairs = {command[i + 1]: (command[i], command[i + 2]) for i in range(6, len(command), 3)}
    assert pairs["confirm"] == ("-p", "True")
    assert pairs["sustain"] == ("-r", "2m")
    assert "output_dir" not in pairs  # the evidence volume instead
    assert "kubeconfig" not in pairs  # the ServiceAccount instead
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "runbook-evidence"
    # Credentials come from a Secret the operator made: its name only, no value.
    assert container["envFrom"] == [
        {"secretRef": {"name": "runbook-run-secrets", "optional": True}}
    ]


def test_arguments_read_back_as_the_values_given() -> None:
    given = {"confirm": True, "migrations_to_revert": 1, "incident_id": "007"}
    argv = run_arguments(given)
    # runbook run hands -p and -r values to the settings model as text, as typed.
    read = {argv[i + 1]: argv[i + 2] for i in range(0, len(argv), 3)}
    base = {"expected_cluster": "c", "replay_csv": "x.csv"}
    assert from_flat(base | read, used_by=Entry.ROLLBACK) == from_flat(
        base | given, used_by=Entry.ROLLBACK
    )


def test_job_names_are_valid_kubernetes_names() -> None:
    name = job_name("INC_1234.Checkout" + "x" * 80)
    assert name.startswith("runbook-inc-1234-checkout")
    assert len(name) <= 63
    assert not name.endswith("-")


def test_job_names_differ_for_incident_ids_that_share_a_long_start() -> None:
    # Two 40-character releases alerting the same second: cutting alone gave one name, and
    # the second incident found the first one's Job.
    stem = "alert-" + "checkout-payments-eu-west-1-canary-v2-" + "20261201T120000Z"
    names = {job_name(f"{stem}-{suffix}") for suffix in ("a1b2c3d4e5", "f6a7b8c9d0")}
    assert len(names) == 2
    assert all(len(n) <= 63 for n in names)


def test_a_credential_never_goes_into_the_job_spec() -> None:
    with pytest.raises(ParameterError) as caught:
        job_manifest(
            JobSpec(image="r/i:1"),
            {**PARAMS, "slack_webhook_url": "https://hooks.slack.com/services/T0/B0/xyz"},
        )
    assert "RUNBOOK_SLACK_WEBHOOK_URL" in str(caught.value)
    assert "hooks.slack.com" not in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"image": "Not An Image"}, "runner_image: not an image reference"),
        ({"image": "r/i:1", "service_account": "Bad_Name"}, "service_account: not a Kubernetes"),
        ({"image": "r/i:1", "evidence_claim": ""}, "evidence_claim: not a Kubernetes name"),
    ],
)
def test_a_bad_job_spec_names_the_field(fields: dict[str, str], problem: str) -> None:
    with pytest.raises(ParameterError) as caught:
        JobSpec(**fields)  # type: ignore[arg-type]
    assert problem in str(caught.value)


def test_a_run_without_an_incident_id_cannot_become_a_job() -> None:
    with pytest.raises(ParameterError, match="incident_id"):
        job_manifest(JobSpec(image="r/i:1"), {"release": "app"})
