"""RBAC rule matching, as preflight uses it to settle permissions from one rules review.

tests/e2e/test_rbac.py checks the same function against a real API server's access reviews.
"""

from __future__ import annotations

import pytest

from runbook_lib.core.rbac_rules import Rule, granted

PODS_READ = Rule(verbs=("get", "list"), api_groups=("",), resources=("pods",))


@pytest.mark.parametrize(
    ("rules", "verb", "group", "resource", "subresource", "expected"),
    [
        pytest.param([PODS_READ], "get", "", "pods", "", True, id="exact"),
        pytest.param([PODS_READ], "watch", "", "pods", "", False, id="other-verb"),
        pytest.param([PODS_READ], "get", "apps", "pods", "", False, id="other-group"),
        pytest.param([PODS_READ], "get", "", "secrets", "", False, id="other-resource"),
        pytest.param([PODS_READ], "get", "", "pods", "log", False, id="parent-not-subresource"),
        pytest.param(
            [Rule(("get",), ("",), ("pods/log",))], "get", "", "pods", "", False,
            id="subresource-not-parent",
        ),
        pytest.param(
            [Rule(("create",), ("",), ("pods/exec",))], "create", "", "pods", "exec", True,
            id="subresource",
        ),
        pytest.param(
            [Rule(("create",), ("",), ("*/exec",))], "create", "", "pods", "exec", True,
            id="any-resource-subresource",
        ),
        pytest.param(
            [Rule(("create",), ("",), ("*/exec",))], "create", "", "pods", "", False,
            id="star-sub-not-parent",
        ),
        pytest.param(
            [Rule(("*",), ("*",), ("*",))], "delete", "coordination.k8s.io", "leases", "", True,
            id="cluster-admin",
        ),
        pytest.param(
            [Rule(("*",), ("*",), ("*",))], "create", "", "pods", "exec", True,
            id="star-covers-subresources",
        ),
        pytest.param(
            [Rule(("get",), ("",), ("pods",), resource_names=("migrator",))], "get", "", "pods",
            "", False, id="named-objects-only",
        ),
        pytest.param(
            [Rule(("update",), ("coordination.k8s.io",), ("leases",))], "update",
            "coordination.k8s.io", "leases", "", True, id="group",
        ),
        pytest.param([], "get", "", "pods", "", False, id="no-rules"),
        pytest.param(
            [PODS_READ, Rule(("patch",), ("apps",), ("deployments",))], "patch", "apps",
            "deployments", "", True, id="second-rule",
        ),
    ],
)  # fmt: skip
def test_granted(
    rules: list[Rule], verb: str, group: str, resource: str, subresource: str, expected: bool
) -> None:
    assert (
        granted(rules, verb=verb, group=group, resource=resource, subresource=subresource)
        is expected
    )
