"""Ask the API server which of a list of permissions the current identity lacks.

Preflight uses this so a rollback never starts with a credential that would fail half-way
(say, after ``helm rollback`` but before ``kubectl exec`` into the migrator): every missing
permission is named before anything changes. It uses SelfSubjectAccessReview, which every
authenticated identity may create.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubernetes import client

from runbook_lib.adapters.kube import Kube

__all__ = ["Permission", "missing_permissions"]


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


def missing_permissions(
    kube: Kube, namespace: str, wanted: Sequence[Permission]
) -> list[Permission]:
    """The permissions in ``wanted`` that the kubeconfig's identity does not have in
    ``namespace`` (preflight). Raises ``ApiError`` when the API cannot answer."""
    api = client.AuthorizationV1Api(kube.api_client)
    missing = []
    for permission in wanted:
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
        if not (answer.status and answer.status.allowed):
            missing.append(permission)
    return missing
