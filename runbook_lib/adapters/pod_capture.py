"""The Kubernetes reads behind capturing a release's pods: full status and bounded logs.

``Kube.pods`` answers "which images run"; the evidence needs more: each container's restart
count (whether a ``--previous`` log exists), the ReplicaSet hash that tells one revision's pods
from another's, and the pod object itself. Logs are read with ``limitBytes`` one above the bound,
so a huge log never crosses the wire in full and the caller still learns that more followed.
Errors are ``ApiError`` (``status`` 404: the pod is gone) through ``Kube.call``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runbook_lib.adapters.kube import Kube

__all__ = ["PodState", "list_pod_states", "read_log_bytes"]


@dataclass(frozen=True)
class PodState:
    """One pod as the capture records it."""

    name: str
    phase: str
    ready: bool
    deleting: bool
    node: str
    template_hash: str  # label pod-template-hash: one per ReplicaSet, i.e. per revision
    images: tuple[str, ...]
    containers: tuple[str, ...]
    restarts: dict[str, int] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _state(api_client: Any, pod: Any) -> PodState:
    statuses = list(pod.status.container_statuses or []) if pod.status else []
    conditions = (pod.status.conditions or []) if pod.status else []
    labels = pod.metadata.labels or {}
    return PodState(
        name=str(pod.metadata.name),
        phase=str(pod.status.phase or "") if pod.status else "",
        ready=any(c.type == "Ready" and c.status == "True" for c in conditions),
        deleting=pod.metadata.deletion_timestamp is not None,
        node=str(pod.spec.node_name or ""),
        template_hash=str(labels.get("pod-template-hash", "")),
        images=tuple(str(c.image) for c in pod.spec.containers),
        containers=tuple(str(c.name) for c in pod.spec.containers),
        restarts={str(s.name): int(s.restart_count or 0) for s in statuses},
        raw=api_client.sanitize_for_serialization(pod),
    )


def list_pod_states(kube: Kube, namespace: str, selector: str) -> list[PodState]:
    """Every pod matching ``selector``, terminating ones included, sorted by name."""
    result: Any = kube.call(
        f"list pods {namespace} -l {selector}",
        kube.core.list_namespaced_pod,
        namespace,
        label_selector=selector,
    )
    return sorted((_state(kube.api_client, p) for p in result.items), key=lambda s: s.name)


def read_log_bytes(
    kube: Kube,
    namespace: str,
    pod: str,
    container: str,
    *,
    since: datetime | None,
    limit_bytes: int,
    previous: bool = False,
) -> bytes:
    """Up to ``limit_bytes`` of a container's log (``previous``: the restarted-before one),
    from ``since`` when given. Raises ``ApiError``."""
    kwargs: dict[str, Any] = {"container": container, "previous": previous}
    if limit_bytes > 0:
        kwargs["limit_bytes"] = limit_bytes
    if since is not None:
        age = (datetime.now(UTC) - since).total_seconds()
        kwargs["since_seconds"] = max(1, math.ceil(age))
    what = f"logs {namespace}/{pod} -c {container}{' --previous' if previous else ''}"
    # Raw bytes: the client would otherwise decode and re-encode, and a cut may fall anywhere.
    response: Any = kube.call(
        what, kube.core.read_namespaced_pod_log, pod, namespace, _preload_content=False, **kwargs
    )
    try:
        data = response.data if hasattr(response, "data") else response.read()
    finally:
        release = getattr(response, "release_conn", None)
        if release is not None:
            release()
    return bytes(data)
