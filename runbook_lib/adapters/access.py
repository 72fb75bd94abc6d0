"""Ask the API server which of a list of permissions the current identity lacks.

Preflight uses this so a rollback never starts with a credential that would fail half-way
(say, after ``helm rollback`` but before ``kubectl exec`` into the migrator): every missing
permission is named before anything changes. Every authenticated identity may create both
reviews it uses: one SelfSubjectRulesReview lists the caller's rules in the namespace, and
whatever those rules do not clearly grant is asked again, one SelfSubjectAccessReview each,
one after the other.

Why both: the rules answer every permission in one request, but Kubernetes documents them as a
summary that may be incomplete (webhook authorizers), so they may only say yes; every "no"
comes from an access review. A yes that a later webhook would overrule costs nothing that
skipping preflight would not: the API server still checks each real call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client import AuthorizationV1Api  # loaded at import, as in adapters.kube

from runbook_lib.adapters.kube import Kube
from runbook_lib.core.rbac_rules import Rule, granted

__all__ = ["Permission", "caller_rules", "missing_permissions"]


@dataclass(frozen=True)
class Permission:
    """One RBAC permission: ``verb`` on ``resource[/subresource]`` in API ``group``."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    why: str = ""

    def __str__(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        qualified = f"{resource}.{self.group}" if self.group else resource
        return f"{self.verb} {qualified}"


def caller_rules(kube: Kube, namespace: str) -> list[Rule]:
    """The caller's resource rules in ``namespace`` (one SelfSubjectRulesReview); empty when
    the summary is incomplete. Raises ``ApiError``."""
    api = AuthorizationV1Api(kube.api_client)
    review = client.V1SelfSubjectRulesReview(
        spec=client.V1SelfSubjectRulesReviewSpec(namespace=namespace)
    )
    answer = kube.call(f"rules -n {namespace}", api.create_self_subject_rules_review, review)
    status = answer.status
    if status is None or status.incomplete:
        return []  # only a complete summary may settle anything
    return [
        Rule(
            verbs=tuple(rule.verbs or ()),
            api_groups=tuple(rule.api_groups or ()),
            resources=tuple(rule.resources or ()),
            resource_names=tuple(rule.resource_names or ()),
        )
        for rule in status.resource_rules or ()
    ]


def missing_permissions(
    kube: Kube, namespace: str, wanted: Sequence[Permission]
) -> list[Permission]:
    """The permissions in ``wanted`` that the kubeconfig's identity does not have in
    ``namespace`` (preflight). Raises ``ApiError`` when the API cannot answer."""
    rules = caller_rules(kube, namespace)
    unsettled = [
        p
        for p in wanted
        if not granted(
            rules, verb=p.verb, group=p.group, resource=p.resource, subresource=p.subresource
        )
    ]
    if not unsettled:
        return []
    api = AuthorizationV1Api(kube.api_client)

    def allowed(permission: Permission) -> bool:
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace,
                    verb=permission.verb,
                    group=permission.group,
                    resource=permission.resource,
                    subresource=permission.subresource or None,
                )
            )
        )
        answer = kube.call(
            f"can-i {permission} -n {namespace}", api.create_self_subject_access_review, review
        )
        return bool(answer.status and answer.status.allowed)

    return [p for p in unsettled if not allowed(p)]
