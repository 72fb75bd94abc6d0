"""Ask the API server which of a list of permissions the current identity lacks.

Preflight uses this so a rollback never starts with a credential that would fail half-way
(say, after ``helm rollback`` but before ``kubectl exec`` into the migrator): every missing
permission is named before anything changes. It uses SelfSubjectAccessReview, which every
authenticated identity may create.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kubernetes import client

from runbook_lib.adapters.kube import Kube

__all__ = ["Permission", "missing_permissions", "preload_clients"]


def preload_clients() -> None:
    """Import the Kubernetes client's API classes now (no I/O).

    The client imports each API module on first attribute access, which takes over a second
    once per process; ``start_run`` calls this in the background so that second is not spent
    between the rollback decision and the rollout. Raises nothing of its own.
    """
    for name in ("AppsV1Api", "CoreV1Api", "CoordinationV1Api", "AuthorizationV1Api"):
        getattr(client, name)


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

    # One small request each; asked side by side so the check stays short before a rollback.
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(allowed, wanted))
    return [p for p, ok in zip(wanted, answers, strict=True) if not ok]
