"""Each api pod's own log, served by kwok as that pod's ``kubectl logs``; crash-looping pods.

kwok serves a log *file* per rule and has no per-pod placeholder in ClusterLogs, so the
traffic model (which follows the pods anyway) creates one kwok ``Logs`` object per pod, named
like the pod and owned by it (the garbage collector deletes it with the pod), pointing at
``<state>/logs/pods/<pod>.log`` and, for ``kubectl logs --previous``, ``<pod>.previous.log``
(pods of another namespace than ``default``: ``<state>/logs/pods/<namespace>/``, since two
namespaces may hold pods of the same name). The ``Logs`` rule names the pod's first container,
whatever the chart calls it. The model writes each simulated request to the log of the pod
that served it.

Crash loop (chart value ``faults.crashEvery``, pod annotation ``sandbox.runbook.io/crash-every``):
every that many seconds the pod's container "restarts": its log becomes the previous log, a new
log starts, and the pod's status gets ``restartCount + 1`` and a ``lastState.terminated``.

Lines appended to ``<state>/logs/inject.log`` (CRI log format) are copied into every api pod's
log, including pods started later (as if each printed them at start-up): tests use it to put
known text, e.g. a leaked secret, into logs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "CRASH_ANNOTATION",
    "INJECT_FILE",
    "LOGS_GROUP",
    "PodLogs",
    "PodRef",
    "logs_object",
    "parse_seconds",
    "pod_log_dir",
]

log = logging.getLogger("runbook_sandbox.pod_logs")

LOGS_GROUP = "kwok.x-k8s.io"
LOGS_VERSION = "v1alpha1"
CONTAINER = "api"
CRASH_ANNOTATION = "sandbox.runbook.io/crash-every"
INJECT_FILE = "inject.log"
_INJECT_KEEP = 1000  # injected lines remembered for pods that start later


@dataclass(frozen=True)
class PodRef:
    """What the log writer needs to know about one pod."""

    name: str
    uid: str = ""
    crash_every_s: float = 0.0
    container: str = CONTAINER  # the container whose log this is


def parse_seconds(text: str) -> float:
    """``"20s"``, ``"2m"`` or ``"20"`` -> seconds; anything else (or empty) -> 0 (no crash)."""
    text = (text or "").strip()
    scale = {"s": 1.0, "m": 60.0}.get(text[-1:], 1.0)
    number = text[:-1] if text[-1:] in ("s", "m") else text
    try:
        value = float(number) * scale
    except ValueError:
        return 0.0
    return value if value > 0 else 0.0


def pod_log_dir(state_dir: Path, namespace: str) -> Path:
    """Where the pods of ``namespace`` keep their logs."""
    base = Path(state_dir) / "logs" / "pods"
    return base if namespace == "default" else base / namespace


def logs_object(pod: PodRef, namespace: str, log_dir: Path) -> dict[str, Any]:
    """The kwok ``Logs`` object serving ``pod``'s own log files."""
    meta: dict[str, Any] = {"name": pod.name, "namespace": namespace}
    if pod.uid:
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Pod", "name": pod.name, "uid": pod.uid}
        ]
    return {
        "apiVersion": f"{LOGS_GROUP}/{LOGS_VERSION}",
        "kind": "Logs",
        "metadata": meta,
        "spec": {
            "logs": [
                {
                    "containers": [pod.container],
                    "logsFile": str(log_dir / f"{pod.name}.log"),
                    "previousLogsFile": str(log_dir / f"{pod.name}.previous.log"),
                    "follow": True,
                }
            ]
        },
    }


class PodLogs:
    """Per-pod log files of one namespace (bounded: rotated to ``<pod>.log.1`` at ``max_bytes``)."""

    def __init__(
        self, state_dir: Path, *, max_bytes: int = 8_000_000, namespace: str = "default"
    ) -> None:
        self.dir = pod_log_dir(state_dir, namespace)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.inject_path = Path(state_dir) / "logs" / INJECT_FILE
        self.max_bytes = max_bytes
        self._inject_offset = 0
        self._injected: deque[str] = deque(maxlen=_INJECT_KEEP)
        self._started: dict[str, float] = {}  # pod -> monotonic start of its current container
        # The request loop and the pod-following thread both start pods and append lines.
        self._lock = threading.RLock()

    def path(self, pod: str) -> Path:
        return self.dir / f"{pod}.log"

    def previous_path(self, pod: str) -> Path:
        return self.dir / f"{pod}.previous.log"

    def _append(self, pod: str, lines: Sequence[str]) -> None:
        path = self.path(pod)
        with path.open("a", encoding="utf-8") as fh:
            fh.write("".join(lines))
            size = fh.tell()
        if size >= self.max_bytes:
            path.replace(path.with_name(path.name + ".1"))

    def started(self, pod: str) -> bool:
        with self._lock:
            return pod in self._started

    def start(self, pod: str) -> None:
        """A new container of ``pod``: its log begins with the injected lines."""
        with self._lock:
            self._started[pod] = time.monotonic()
            self._append(pod, list(self._injected))

    def write(self, by_pod: Mapping[str, Sequence[str]]) -> None:
        """Append CRI-format lines to each pod's log (pods never started are started first)."""
        with self._lock:
            for pod, lines in by_pod.items():
                if pod not in self._started:
                    self.start(pod)
                self._append(pod, lines)

    def pull_injected(self) -> None:
        """Copy lines newly appended to ``inject.log`` into every started pod's log."""
        try:
            size = self.inject_path.stat().st_size
        except FileNotFoundError:
            return
        if size < self._inject_offset:  # truncated or replaced: start over
            self._inject_offset = 0
        if size == self._inject_offset:
            return
        with self.inject_path.open("r", encoding="utf-8", errors="replace") as fh:
            fh.seek(self._inject_offset)
            text = fh.read()
        complete, _, _ = text.rpartition("\n")  # a half-written last line waits for the next call
        if not complete:
            return
        self._inject_offset += len((complete + "\n").encode())
        lines = [line + "\n" for line in complete.split("\n")]
        with self._lock:
            self._injected.extend(lines)
            for pod in self._started:
                self._append(pod, lines)

    def crash_due(self, pods: Iterable[PodRef], now_mono: float) -> list[PodRef]:
        """Crash-looping pods whose current container has run for its crash interval."""
        with self._lock:
            return [
                p
                for p in pods
                if p.crash_every_s > 0
                and p.name in self._started
                and now_mono - self._started[p.name] >= p.crash_every_s
            ]

    def restart(self, pod: str) -> None:
        """The container of ``pod`` restarted: its log becomes the previous log."""
        with self._lock:
            path = self.path(pod)
            if path.exists():
                os.replace(path, self.previous_path(pod))
            self.start(pod)

    def forget(self, gone: Iterable[str]) -> None:
        with self._lock:
            for pod in gone:
                self._started.pop(pod, None)


def crashed_status(
    container_statuses: list[dict[str, Any]], now: datetime, *, container: str = CONTAINER
) -> list[dict[str, Any]]:
    """``container``'s status after a crash and restart at ``now`` (other containers kept).

    The previous container ran from its ``state.running.startedAt`` until ``now`` and exited 1.
    """
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = []
    for status in container_statuses:
        if status.get("name") != container:
            result.append(status)
            continue
        started = ((status.get("state") or {}).get("running") or {}).get("startedAt") or stamp
        result.append(
            {
                **status,
                "restartCount": int(status.get("restartCount") or 0) + 1,
                "lastState": {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "startedAt": started,
                        "finishedAt": stamp,
                    }
                },
                "state": {"running": {"startedAt": stamp}},
            }
        )
    return result


class LogsKeeper:
    """Keeps kwok's ``Logs`` objects and the crash loop in step with the listed pods.

    Runs in the traffic model's pod-following thread; every failure is logged and retried at
    the next listing (the API server may be restarting in a fault test).
    """

    def __init__(self, kubeconfig: Path, namespace: str, pod_logs: PodLogs) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.pod_logs = pod_logs
        self._registered: set[str] = set()
        self._api: Any = None

    def _client(self) -> Any:
        if self._api is None:
            from kubernetes import client, config

            api_client = config.new_client_from_config(config_file=str(self.kubeconfig))
            self._api = (client.CoreV1Api(api_client), client.CustomObjectsApi(api_client))
        return self._api

    def sync(self, pods: Sequence[PodRef]) -> None:
        from kubernetes.client.exceptions import ApiException

        core, custom = self._client()
        for pod in pods:
            if pod.name in self._registered:
                continue
            body = logs_object(pod, self.namespace, self.pod_logs.dir)
            try:
                custom.create_namespaced_custom_object(
                    LOGS_GROUP, LOGS_VERSION, self.namespace, "logs", body, _request_timeout=5
                )
            except ApiException as err:
                if err.status != 409:  # 409: made by an earlier run of the model: same files
                    log.warning("cannot create kwok Logs for pod %s: %s", pod.name, err.reason)
                    continue
            self._registered.add(pod.name)
            if not self.pod_logs.started(pod.name):
                self.pod_logs.start(pod.name)
        for pod in self.pod_logs.crash_due(pods, time.monotonic()):
            try:
                current = core.read_namespaced_pod_status(
                    pod.name, self.namespace, _request_timeout=5
                )
                statuses = core.api_client.sanitize_for_serialization(
                    current.status.container_statuses or []
                )
                crashed = crashed_status(statuses, datetime.now(UTC), container=pod.container)
                patch = {"status": {"containerStatuses": crashed}}
                core.patch_namespaced_pod_status(
                    pod.name, self.namespace, patch, _request_timeout=5
                )
            except ApiException as err:
                log.warning("cannot record the crash of pod %s: %s", pod.name, err.reason)
                continue
            self.pod_logs.restart(pod.name)
            log.info("pod %s: container restarted (crash loop)", pod.name)
        listed = {p.name for p in pods}
        gone = self._registered - listed
        self._registered -= gone
        self.pod_logs.forget(gone)
