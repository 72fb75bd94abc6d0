"""The steps run as a ServiceAccount bound only to deploy/rbac.yaml, on an RBAC-enforcing API.

With the Role as shipped the whole rollback passes; with one permission taken away the run
stops in preflight, names the missing permission, and has changed nothing.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from runbook_lib import steps
from runbook_lib.adapters.access import Permission, caller_rules, missing_permissions
from runbook_lib.adapters.kube import Kube
from runbook_lib.core.rbac_rules import granted
from runbook_lib.errors import PreconditionFailed
from runbook_lib.record.facts import Outcome
from runbook_lib.steps.permissions import REQUIRED

from .test_steps import (
    GOOD_IMAGE,
    deploy_bad_version,
    events,
    run_all,
    run_params,
    schema_version,
    serving_pods,
    snapshot,
)
from .test_steps import history as helm_history

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox


RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml"
SA = "runbook-rollback"


def _docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(RBAC.read_text()) if d]


def _apply(sb: Sandbox, docs: list[dict[str, Any]], tmp_path: Path) -> None:
    manifest = tmp_path / "rbac.json"
    manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    sb.kubectl("apply", "-n", "default", "-f", str(manifest))


def _without(docs: list[dict[str, Any]], verb: str, resource: str) -> list[dict[str, Any]]:
    changed = copy.deepcopy(docs)
    role = next(d for d in changed if d["kind"] == "Role")
    for rule in role["rules"]:
        if resource in rule["resources"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != verb]
    return changed


def _sa_kubeconfig(sb: Sandbox, tmp_path: Path) -> tuple[Path, str]:
    """A kubeconfig for the ServiceAccount's token; returns it and the API server URL."""
    token = sb.kubectl("create", "token", SA, "-n", "default", "--duration=1h").strip()
    raw = json.loads(sb.kubectl("config", "view", "--raw", "--minify", "-o", "json"))
    cluster = raw["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sandbox", "cluster": cluster}],
        "users": [{"name": SA, "user": {"token": token}}],
        "contexts": [
            {
                "name": "runbook-sa",
                "context": {"cluster": "sandbox", "user": SA, "namespace": "default"},
            },
        ],
        "current-context": "runbook-sa",
    }
    path = tmp_path / "sa-kubeconfig"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path, str(cluster["server"])


def _as_sa(sb: Sandbox, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(sb.bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _start_as_sa(
    sb: Sandbox, tmp_path: Path, kubeconfig: Path, server: str, **over: Any
) -> steps.RunContext:
    # The guard is given the API server URL: the SA's context has its own name.
    params = run_params(sb, tmp_path, kubeconfig=str(kubeconfig), context="runbook-sa", **over)
    return steps.start_run(**(params | {"expected_cluster": server}))


@pytest.fixture
def bound(sandbox: Sandbox, tmp_path: Path) -> Iterator[tuple[Sandbox, Path, str]]:
    sb = deploy_bad_version(sandbox)
    _apply(sb, _docs(), tmp_path)
    kubeconfig, server = _sa_kubeconfig(sb, tmp_path)
    try:
        yield sb, kubeconfig, server
    finally:
        for kind in ("rolebinding", "role", "serviceaccount"):
            sb.kubectl("delete", kind, SA, "-n", "default", "--ignore-not-found")


def test_api_server_enforces_rbac_for_the_service_account(
    bound: tuple[Sandbox, Path, str],
) -> None:
    sb, kubeconfig, _ = bound
    assert _as_sa(sb, kubeconfig, "get", "deployment", "app").returncode == 0
    denied = _as_sa(sb, kubeconfig, "delete", "deployment", "app", "--dry-run=server")
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr
    assert _as_sa(sb, kubeconfig, "get", "secrets", "-n", "kube-system").returncode != 0


def test_all_steps_pass_as_the_service_account(
    bound: tuple[Sandbox, Path, str], tmp_path: Path
) -> None:
    sb, kubeconfig, server = bound
    ctx = _start_as_sa(sb, tmp_path, kubeconfig, server)
    results = run_all(ctx)
    assert results["finish"].outcome is Outcome.RECOVERED
    assert set(serving_pods(sb).values()) == {GOOD_IMAGE}
    assert schema_version(sb) == 1
    assert helm_history(sb)[-1]["description"] == "Rollback to 1"


@pytest.mark.parametrize(
    ("verb", "resource", "named"),
    [
        pytest.param("get", "pods/exec", "get pods/exec", id="no-exec"),
        pytest.param("patch", "deployments", "patch deployments.apps", id="no-patch-deployments"),
    ],
)
def test_one_permission_missing_stops_before_any_change(
    bound: tuple[Sandbox, Path, str], tmp_path: Path, verb: str, resource: str, named: str
) -> None:
    sb, kubeconfig, server = bound
    _apply(sb, _without(_docs(), verb, resource), tmp_path)
    before = snapshot(sb)
    ctx = _start_as_sa(sb, tmp_path, kubeconfig, server)
    steps.assess(ctx)
    steps.decide(ctx)
    with pytest.raises(PreconditionFailed) as caught:
        steps.preflight(ctx)
    message = str(caught.value)
    assert named in message
    assert "1 permission(s)" in message  # only the one taken away
    assert snapshot(sb) == before


def test_dry_run_needs_only_reads_and_warns_about_a_missing_write(
    bound: tuple[Sandbox, Path, str], tmp_path: Path
) -> None:
    sb, kubeconfig, server = bound
    _apply(sb, _without(_docs(), "patch", "deployments"), tmp_path)
    before = snapshot(sb)
    ctx = _start_as_sa(sb, tmp_path, kubeconfig, server, dry_run=True)
    for step in (steps.assess, steps.decide, steps.preflight):
        step(ctx)
    warnings = [
        e["message"] for e in events(ctx) if e["step"] == "preflight" and e["kind"] == "warning"
    ]
    assert any("a real run would fail" in w and "patch deployments.apps" in w for w in warnings)
    assert snapshot(sb) == before


# Permissions the Role grants, and near misses it must not: other verbs, resources, groups and
# subresources of the same objects.
_ASKED = (
    *REQUIRED,
    Permission("delete", "deployments", "apps"),
    Permission("update", "deployments", "apps"),
    Permission("create", "pods"),
    Permission("delete", "pods"),
    Permission("watch", "secrets"),
    Permission("get", "configmaps"),
    Permission("create", "pods", subresource="attach"),
    Permission("create", "pods", subresource="portforward"),
    Permission("update", "deployments", "apps", subresource="scale"),
    Permission("get", "deployments", "extensions"),
    Permission("list", "leases", "coordination.k8s.io"),
)


def test_rules_summary_grants_exactly_what_access_reviews_allow(
    bound: tuple[Sandbox, Path, str],
) -> None:
    sb, kubeconfig, _ = bound
    with Kube(kubeconfig=kubeconfig, context="runbook-sa") as kube:
        rules = caller_rules(kube, "default")
    assert rules, "the API server returned no rules for the ServiceAccount"
    for permission in _ASKED:
        p = permission
        qualified = f"{p.resource}.{p.group}" if p.group else p.resource
        extra = [f"--subresource={p.subresource}"] if p.subresource else []
        answer = _as_sa(sb, kubeconfig, "auth", "can-i", p.verb, qualified, *extra, "-n", "default")
        by_review = answer.stdout.strip() == "yes"
        by_rules = granted(
            rules, verb=p.verb, group=p.group, resource=p.resource, subresource=p.subresource
        )
        assert by_rules == by_review, str(permission)
    with Kube(kubeconfig=kubeconfig, context="runbook-sa") as kube:
        assert missing_permissions(kube, "default", _ASKED) == list(_ASKED[len(REQUIRED) :])
