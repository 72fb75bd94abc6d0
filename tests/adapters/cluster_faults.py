"""Faults between a client and the sandbox's API server, for adapter tests.

The network faults (``Forwarder``, ``Blackhole``, ``kubeconfig_via``) live in the harness
(``runbook_sandbox.net_faults``), which the game-day fixtures share; here, kubeconfigs of a
limited ServiceAccount.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from runbook_sandbox.net_faults import (  # noqa: F401  (re-exported for the tests)
    Blackhole,
    Forwarder,
    api_port,
    free_port,
    kubeconfig_via,
)


def kubeconfig_for_token(kubeconfig: Path, context: str, token: str, dest: Path) -> Path:
    """Copy of ``kubeconfig`` whose ``context`` authenticates with a bearer ``token``."""
    config = yaml.safe_load(kubeconfig.read_text())
    ctx = next(c for c in config["contexts"] if c["name"] == context)["context"]
    cluster = next(c for c in config["clusters"] if c["name"] == ctx["cluster"])
    limited = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "limited", "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": cluster["name"], "user": "limited"}}],
        "current-context": context,
    }
    dest.write_text(yaml.safe_dump(limited))
    return dest


@contextlib.contextmanager
def service_account_kubeconfig(
    sandbox: Any, dest: Path, *, verbs: str, resource: str
) -> Iterator[Path]:
    """A kubeconfig for a fresh ServiceAccount allowed only ``verbs`` on ``resource``
    in namespace default (RBAC is enforced by the sandbox's API server); removed after."""
    name = f"adapters-limited-{uuid.uuid4().hex[:6]}"
    sandbox.kubectl("create", "serviceaccount", name, "-n", "default")
    try:
        sandbox.kubectl(
            "create", "role", name, "-n", "default", f"--verb={verbs}", f"--resource={resource}"
        )
        sandbox.kubectl(
            "create", "rolebinding", name, "-n", "default",
            f"--role={name}", f"--serviceaccount=default:{name}",
        )  # fmt: skip
        token = sandbox.kubectl("create", "token", name, "-n", "default", "--duration=10m")
        yield kubeconfig_for_token(sandbox.kubeconfig, sandbox.context, token.strip(), dest)
    finally:
        for kind in ("rolebinding", "role", "serviceaccount"):
            sandbox.kubectl("delete", kind, name, "-n", "default", "--ignore-not-found")
