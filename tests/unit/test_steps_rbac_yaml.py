"""deploy/rbac.yaml grants exactly what preflight checks (and what the steps use)."""

from __future__ import annotations

from pathlib import Path

import yaml

from runbook_lib.steps.permissions import MUTATING, READS, REQUIRED

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml"
# Used by the post-rollback evidence steps, not by the rollback itself.
EVIDENCE = {("get", "", "pods/log"), ("list", "", "events")}


def _granted() -> set[tuple[str, str, str]]:
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    roles = [d for d in docs if d["kind"] == "Role"]
    assert len(roles) == 1, "one namespaced Role, no ClusterRole"
    assert not [d for d in docs if d["kind"] == "ClusterRole"]
    return {
        (verb, group, resource)
        for rule in roles[0]["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _wanted() -> set[tuple[str, str, str]]:
    return {
        (p.verb, p.group, f"{p.resource}/{p.subresource}" if p.subresource else p.resource)
        for p in REQUIRED
    }


def test_role_grants_every_permission_preflight_checks() -> None:
    assert _wanted() - _granted() == set()


def test_role_grants_nothing_beyond_steps_and_evidence() -> None:
    granted = _granted()
    assert granted - _wanted() == EVIDENCE
    assert not any("*" in part for grant in granted for part in grant)


def test_binding_ties_the_role_to_the_service_account() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all(RBAC.read_text()) if d}
    binding = docs["RoleBinding"]
    assert binding["roleRef"]["name"] == docs["Role"]["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": docs["ServiceAccount"]["metadata"]["name"]}
    ]


def test_dry_run_needs_no_write_permission() -> None:
    assert all(p.verb in {"get", "list", "watch"} or p.subresource == "exec" for p in READS)
    assert all(p.verb in {"create", "update", "patch", "delete"} for p in MUTATING)
