"""The Kubernetes API through the official Python client.

Every ``Kube`` owns its own ``ApiClient`` loaded from an explicit kubeconfig and context; the
client library's process-wide default configuration is never read or written, so one process
can hold clients for two clusters and the target guard compares the cluster actually used.

Errors become ``ApiError`` with the HTTP status and ``retryable`` set for 5xx, 429 and
connection-level failures (API server down, reset, timed out).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import urllib3
import yaml
from kubernetes import client, config, watch

# Named here, not reached as ``client.CoreV1Api``: the client loads each API module on first
# access (over a second for these), so importing the names makes ``import runbook_lib.steps``
# pay for it when the run starts, not preflight after the rollback decision.
from kubernetes.client import AppsV1Api, CoordinationV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from runbook_lib.core.images import PodImages
from runbook_lib.core.rollout import Condition, DeploymentStatus
from runbook_lib.errors import ApiError, ParameterError

__all__ = ["Kube", "KubeEvent"]

T = TypeVar("T")

# Per-request bounds: connecting to a live API server on a LAN takes milliseconds; a request
# that has not answered in these times is treated as the server being unavailable.
CONNECT_TIMEOUT_S = 5.0
_READ_TIMEOUT_S = 30.0
# Backoff while the API server is unreachable during a watch: start quick (a restart takes a
# few seconds), never hammer it, never sleep past the caller's deadline.
_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 5.0
# A watch that ends at once (server closing it) must not turn into a busy loop.
_MIN_RELIST_INTERVAL_S = 0.2


@dataclass(frozen=True)
class KubeEvent:
    """A Kubernetes Event, for the evidence bundle."""

    at: datetime | None
    type: str
    reason: str
    object: str
    message: str
    count: int = 1


def _error_message(err: ApiException) -> str:
    body: object = err.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if isinstance(body, str) and body:
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError:
            return body[:500]
        if isinstance(parsed, dict) and parsed.get("message"):
            return str(parsed["message"])
    return str(err.reason or "")


def api_error(err: Exception, command: str) -> ApiError:
    """Map a client-library or transport exception to ``ApiError`` (adapters share this)."""
    if isinstance(err, ApiException):
        status = err.status or None
        retryable = status is None or status == 429 or status >= 500
        return ApiError(
            f"Kubernetes API answered {status} {err.reason or ''}".rstrip(),
            command=command,
            stderr=_error_message(err),
            retryable=retryable,
            status=status,
        )
    return ApiError(
        f"Kubernetes API unreachable: {type(err).__name__}",
        command=command,
        stderr=str(err)[:500],
        retryable=True,
        status=None,
    )


TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    ApiException,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)


def _conditions(raw: Any) -> tuple[Condition, ...]:
    return tuple(
        Condition(
            type=str(c.type),
            status=str(c.status),
            reason=str(c.reason or ""),
            message=str(c.message or ""),
        )
        for c in (raw or ())
    )


def deployment_status_from(obj: Any) -> DeploymentStatus:
    """Build the pure model from a ``V1Deployment``."""
    st = obj.status
    spec = obj.spec
    return DeploymentStatus(
        generation=int(obj.metadata.generation or 0),
        observed_generation=int(st.observed_generation or 0) if st else 0,
        replicas=int(st.replicas or 0) if st else 0,
        updated_replicas=int(st.updated_replicas or 0) if st else 0,
        ready_replicas=int(st.ready_replicas or 0) if st else 0,
        available_replicas=int(st.available_replicas or 0) if st else 0,
        unavailable_replicas=int(st.unavailable_replicas or 0) if st else 0,
        conditions=_conditions(st.conditions if st else None),
        name=str(obj.metadata.name),
        desired_replicas=None if spec is None or spec.replicas is None else int(spec.replicas),
        selector=_match_labels(spec),
    )


def _match_labels(spec: Any) -> str:
    labels = getattr(getattr(spec, "selector", None), "match_labels", None) or {}
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _pod_images(pod: Any) -> PodImages:
    statuses = list(pod.status.container_statuses or []) if pod.status else []
    if statuses:
        images = tuple(str(s.image) for s in statuses)
        image_ids = tuple(str(s.image_id) for s in statuses if s.image_id)
    else:  # not yet reported by the kubelet: the spec is what it will run
        images = tuple(str(c.image) for c in pod.spec.containers)
        image_ids = ()
    conditions = (pod.status.conditions or []) if pod.status else []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    phase = str(pod.status.phase or "") if pod.status else ""
    return PodImages(
        name=str(pod.metadata.name), phase=phase, ready=ready, images=images, image_ids=image_ids
    )


class Kube:
    """A client for one cluster: ``kubeconfig`` path (default: ``$KUBECONFIG`` or
    ``~/.kube/config``) and ``context`` (default: the file's current context).

    Raises ``ParameterError`` when the kubeconfig or context cannot be loaded.
    """

    def __init__(
        self,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        request_timeout_s: float = _READ_TIMEOUT_S,
    ) -> None:
        path = None if kubeconfig is None else os.fspath(kubeconfig)
        if path is None:
            env_path = os.environ.get("KUBECONFIG", "")
            path = env_path.split(os.pathsep)[0] if env_path else None
        try:
            contexts, active = config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
            configuration = client.Configuration()
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (ConfigException, OSError, TypeError, ValueError, KeyError, yaml.YAMLError) as err:
            # A kubeconfig that is not YAML, or YAML of another shape, is bad input like a
            # missing one: named, never a traceback from inside the client's loader.
            reason = " ".join(str(err).split())
            raise ParameterError(
                [f"kubeconfig: cannot load {path or 'default'} (context {context!r}): {reason}"]
            ) from err
        # Retries are ours to decide (watch_deployment backs off); urllib3's silent retries
        # would only hide how long the API server has been gone.
        configuration.retries = False
        self.api_client = client.ApiClient(configuration)
        names = {c["name"]: c for c in contexts}
        chosen = context or (active or {}).get("name", "")
        self.context_name: str = str(chosen)
        self.cluster_name: str = str(names.get(chosen, {}).get("context", {}).get("cluster", ""))
        self.server_url: str = str(configuration.host)
        self.request_timeout_s = request_timeout_s
        self.apps = AppsV1Api(self.api_client)
        self.core = CoreV1Api(self.api_client)
        self.coordination = CoordinationV1Api(self.api_client)

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, command: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one client call with a bounded request time, mapping errors to ``ApiError``."""
        kwargs.setdefault("_request_timeout", (CONNECT_TIMEOUT_S, self.request_timeout_s))
        try:
            return fn(*args, **kwargs)
        except TRANSPORT_ERRORS as err:
            raise api_error(err, command) from err

    # -- deployments ------------------------------------------------------------------------

    def deployment_status(self, namespace: str, name: str) -> DeploymentStatus:
        """Current rollout-relevant status of a Deployment. Raises ``ApiError``."""
        obj = self.call(
            f"get deployment {namespace}/{name}",
            self.apps.read_namespaced_deployment,
            name,
            namespace,
        )
        return deployment_status_from(obj)

    def watch_deployment(
        self,
        namespace: str,
        name: str,
        *,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[DeploymentStatus]:
        """Yield the Deployment's status now and on every change, for up to ``timeout_s``.

        Serves "Rollback Steps": rollout status; the caller stops iterating when
        ``rollout_state`` says done or failed. Each cycle reads the object, then watches from
        its resourceVersion; a closed, expired (410) or broken watch re-reads. While the API
        server is unreachable (or answers 5xx/429) it backs off 0.5 s doubling to 5 s and keeps
        trying until the deadline. Ends silently at the deadline when the API was reachable
        at the last attempt; raises the last ``ApiError`` when it was not (so "API down"
        is not mistaken for "rollout slow"), and at once for non-retryable errors (403, 404).
        """
        deadline = clock() + timeout_s
        backoff = _BACKOFF_FIRST_S
        last: DeploymentStatus | None = None
        last_error: ApiError | None = None
        command = f"watch deployment {namespace}/{name}"
        while True:
            remaining = deadline - clock()
            if remaining <= 0:
                if last_error is not None:
                    raise ApiError(
                        f"gave up after {timeout_s:g} s: {last_error}",
                        command=command,
                        stderr=last_error.stderr,
                        retryable=True,
                        status=last_error.status,
                    ) from last_error
                return
            cycle_started = clock()
            try:
                obj: Any = self.call(
                    f"get deployment {namespace}/{name}",
                    self.apps.read_namespaced_deployment,
                    name,
                    namespace,
                    _request_timeout=(CONNECT_TIMEOUT_S, max(1.0, min(remaining, 10.0))),
                )
                last_error = None
                backoff = _BACKOFF_FIRST_S
                current = deployment_status_from(obj)
                if current != last:
                    last = current
                    yield current
                for current in self._watch_once(
                    namespace, name, str(obj.metadata.resource_version), deadline - clock()
                ):
                    if current != last:
                        last = current
                        yield current
            except ApiError as err:
                if not err.retryable and err.status != 410:
                    raise
                if err.status != 410:
                    last_error = err
                    pause = min(backoff, max(0.0, deadline - clock()))
                    sleep(pause)
                    backoff = min(backoff * 2, _BACKOFF_MAX_S)
                    continue
            # The watch ended normally or expired: re-read, but not in a tight loop.
            spent = clock() - cycle_started
            if spent < _MIN_RELIST_INTERVAL_S:
                sleep(min(_MIN_RELIST_INTERVAL_S - spent, max(0.0, deadline - clock())))

    def _watch_once(
        self, namespace: str, name: str, resource_version: str, remaining: float
    ) -> Iterator[DeploymentStatus]:
        if remaining <= 0:
            return
        server_timeout = max(1, math.ceil(min(remaining, 60.0)))
        w = watch.Watch()  # type: ignore[no-untyped-call]
        try:
            for event in w.stream(  # type: ignore[no-untyped-call]
                self.apps.list_namespaced_deployment,
                namespace,
                field_selector=f"metadata.name={name}",
                resource_version=resource_version,
                timeout_seconds=server_timeout,
                allow_watch_bookmarks=False,
                _request_timeout=(CONNECT_TIMEOUT_S, server_timeout + 5.0),
            ):
                if event["type"] in ("ADDED", "MODIFIED"):
                    yield deployment_status_from(event["object"])
                elif event["type"] == "DELETED":
                    raise ApiError(
                        f"deployment {namespace}/{name} was deleted during the rollout",
                        command=f"watch deployment {namespace}/{name}",
                        status=404,
                    )
        except TRANSPORT_ERRORS as err:
            raise api_error(err, f"watch deployment {namespace}/{name}") from err
        finally:
            w.stop()  # type: ignore[no-untyped-call]

    # -- pods -------------------------------------------------------------------------------

    def pods(
        self, namespace: str, selector: str, *, include_terminating: bool = False
    ) -> list[PodImages]:
        """Pods matching a label selector and their images ("Verify the previous image").

        Terminating pods are left out unless asked for: they belong to the old ReplicaSet and
        are going away. Raises ``ApiError``.
        """
        result: Any = self.call(
            f"list pods {namespace} -l {selector}",
            self.core.list_namespaced_pod,
            namespace,
            label_selector=selector,
        )
        return [
            _pod_images(p)
            for p in result.items
            if include_terminating or p.metadata.deletion_timestamp is None
        ]

    # -- evidence ---------------------------------------------------------------------------

    def events(self, namespace: str, *, since: datetime | None = None) -> list[KubeEvent]:
        """Events in ``namespace`` last seen at or after ``since``, oldest first (evidence).
        Raises ``ApiError``."""
        result = self.call(f"list events {namespace}", self.core.list_namespaced_event, namespace)
        events = []
        for e in result.items:
            at = e.last_timestamp or e.event_time or e.first_timestamp
            if at is None and e.metadata is not None:
                at = e.metadata.creation_timestamp
            if since is not None and at is not None and at < since:
                continue
            obj = e.involved_object
            events.append(
                KubeEvent(
                    at=at,
                    type=str(e.type or ""),
                    reason=str(e.reason or ""),
                    object=f"{obj.kind}/{obj.name}" if obj is not None else "",
                    message=str(e.message or ""),
                    count=int(e.count or 1),
                )
            )
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(events, key=lambda ev: ev.at or epoch)

    def logs(
        self, namespace: str, pod: str, *, since: datetime | None = None, container: str = ""
    ) -> str:
        """A pod's log, from ``since`` when given (evidence). Raises ``ApiError``."""
        kwargs: dict[str, Any] = {}
        if container:
            kwargs["container"] = container
        if since is not None:
            age = (datetime.now(UTC) - since).total_seconds()
            kwargs["since_seconds"] = max(1, math.ceil(age))
        text = self.call(
            f"logs {namespace}/{pod}", self.core.read_namespaced_pod_log, pod, namespace, **kwargs
        )
        return str(text)
