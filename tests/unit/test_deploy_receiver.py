"""``deploy/receiver.yaml`` is deployable for real: reachable only by Alertmanager, over TLS,
state on a volume that outlives the pod, probes and limits, one replica (pure: the file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from runbook_lib.cli.main import build_parser

DOCS = [
    d
    for d in yaml.safe_load_all(
        (Path(__file__).resolve().parents[2] / "deploy" / "receiver.yaml").read_text()
    )
    if d
]


def _one(kind: str) -> dict[str, Any]:
    (found,) = [d for d in DOCS if d["kind"] == kind]
    return found


def _container() -> dict[str, Any]:
    (container,) = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def test_the_command_is_a_valid_runbook_serve_over_tls_on_the_pods_address() -> None:
    command = _container()["command"]
    args = build_parser().parse_args(command[1:])
    assert (args.dispatch, args.port) == ("job", 9095)
    assert args.tls_cert
    assert args.tls_key
    assert args.host == "$(POD_IP)"
    assert "POD_IP" in {e["name"] for e in _container()["env"]}


def test_only_alertmanager_may_reach_the_receiver() -> None:
    policy = _one("NetworkPolicy")
    pods = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pods.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    (source,) = rule["from"]
    assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "alertmanager"}
    assert rule["ports"] == [{"protocol": "TCP", "port": 9095}]


def test_state_outlives_the_pod_and_one_receiver_writes_it() -> None:
    deployment = _one("Deployment")["spec"]
    volumes = {v["name"]: v for v in deployment["template"]["spec"]["volumes"]}
    claim = volumes["state"]["persistentVolumeClaim"]["claimName"]
    (pvc,) = [
        d for d in DOCS if d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == claim
    ]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "emptyDir" not in volumes["state"]
    assert deployment["replicas"] == 1
    assert deployment["strategy"] == {"type": "Recreate"}


def test_probes_limits_and_no_credential_in_the_spec() -> None:
    container = _container()
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert all("value" not in e or e["name"] == "POD_IP" for e in container.get("env", []))
    assert container["envFrom"] == [
        {"secretRef": {"name": "runbook-run-secrets", "optional": True}}
    ]
    assert "--job-secret=runbook-run-secrets" in container["command"]
    policy = yaml.safe_load(_one("ConfigMap")["data"]["policy.yaml"])
    assert "slack_webhook_url" not in str(policy)
