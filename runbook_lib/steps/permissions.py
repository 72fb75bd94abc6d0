"""The Kubernetes permissions the rollback steps use, checked in preflight before any change.

``deploy/rbac.yaml`` grants exactly these (a unit test keeps the two in step). Helm keeps its
release records in Secrets, so Secrets access cannot be narrowed to names ahead of time.
"""

from __future__ import annotations

from runbook_lib.adapters.access import Permission

__all__ = ["MUTATING", "READS", "REQUIRED"]

READS: tuple[Permission, ...] = (
    Permission("get", "secrets", why="helm history/get: release records"),
    Permission("list", "secrets", why="helm history/get: release records"),
    Permission("get", "deployments", "apps", why="rollout status, helm rollback"),
    Permission("list", "deployments", "apps", why="rollout watch"),
    Permission("watch", "deployments", "apps", why="rollout watch"),
    Permission("list", "pods", why="verify images, find the migrator"),
    Permission("get", "pods", why="helm rollback reads the migrator pod"),
    Permission("get", "leases", "coordination.k8s.io", why="rollback lock"),
    # The Python client execs over a websocket, an HTTP GET: the sandbox's 1.34 API server
    # checks "get" (measured; "create" alone is refused). Servers with the
    # AuthorizePodWebsocketUpgradeCreatePermission feature check "create" too, as kubectl does.
    Permission("create", "pods", subresource="exec", why="./migrate version / down"),
    Permission("get", "pods", subresource="exec", why="./migrate over a websocket"),
)
MUTATING: tuple[Permission, ...] = (
    Permission("create", "secrets", why="helm rollback writes a release record"),
    Permission("update", "secrets", why="helm rollback supersedes the old record"),
    Permission("delete", "secrets", why="helm prunes records beyond --history-max"),
    Permission("patch", "deployments", "apps", why="helm rollback"),
    Permission("patch", "pods", why="helm rollback updates the migrator pod's image"),
    Permission("create", "leases", "coordination.k8s.io", why="rollback lock"),
    Permission("update", "leases", "coordination.k8s.io", why="take over a stale lock"),
    Permission("delete", "leases", "coordination.k8s.io", why="release the lock"),
)
REQUIRED: tuple[Permission, ...] = READS + MUTATING
