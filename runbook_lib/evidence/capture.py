"""Capture the release being rolled back, before the rollback deletes its pods.

Post-Rollback Actions, step 2 asks for the failed release's logs, but ``helm rollback``
replaces exactly those pods: collected afterwards, the evidence would only show the good
pods. So, right before ``helm_rollback``, ``capture_release_pods`` records the pods the
selector matches (the bad release's) and their logs since the deploy, plus the ``--previous``
log of every container that restarted, bounded per pod and in total
(``core.capture.CaptureBounds``). A pod that vanishes before its log is read, or a log that
cannot be read, is listed as a gap, never an exception: evidence is best effort. Layout::

    kubernetes/before-rollback/pods.json              each pod: status, images, node, revision
    kubernetes/before-rollback/capture.json           what was captured, cut and missed
    kubernetes/before-rollback/logs/<pod>.log         (<pod>_<container>.log for extra containers)
    kubernetes/before-rollback/logs/<pod>.previous.log

``start_capture`` runs the same in a background thread, so the rollback waits only for the
pod listing (tens of milliseconds) while the logs are read.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, Unpack

from runbook_lib.adapters.pod_capture import PodState, list_pod_states, read_log_bytes
from runbook_lib.core.capture import CaptureBounds, cut_log
from runbook_lib.errors import ApiError, RunbookError
from runbook_lib.evidence.bundle import write_json, write_text

if TYPE_CHECKING:
    from runbook_lib.adapters.kube import Kube

__all__ = [
    "BEFORE_ROLLBACK",
    "CaptureJob",
    "CaptureReport",
    "capture_release_pods",
    "start_capture",
]

BEFORE_ROLLBACK = "kubernetes/before-rollback"
_WORKERS = 4


@dataclass(frozen=True)
class CaptureReport:
    """What was captured: files (relative to the incident dir), gaps, cuts and cost."""

    pods: tuple[str, ...]
    written: tuple[str, ...]
    gaps: tuple[str, ...]
    truncated: tuple[str, ...]
    bytes_captured: int
    elapsed_s: float


@dataclass(frozen=True)
class _Want:
    pod: str
    container: str
    previous: bool
    rel: str


def _log_name(state: PodState, container: str, previous: bool) -> str:
    stem = state.name if container == state.containers[0] else f"{state.name}_{container}"
    return f"{BEFORE_ROLLBACK}/logs/{stem}{'.previous' if previous else ''}.log"


def _wanted(states: list[PodState]) -> list[_Want]:
    wants = []
    for state in states:
        for container in state.containers:
            wants.append(_Want(state.name, container, False, _log_name(state, container, False)))
            if state.restarts.get(container, 0) > 0:
                wants.append(_Want(state.name, container, True, _log_name(state, container, True)))
    return wants


def _pod_record(state: PodState, release_revision: str) -> dict[str, Any]:
    return {
        "name": state.name,
        "phase": state.phase,
        "ready": state.ready,
        "deleting": state.deleting,
        "node": state.node,
        "images": list(state.images),
        "pod_template_hash": state.template_hash,
        "release_revision": release_revision,
        "restarts": state.restarts,
        "pod": state.raw,
    }


def capture_release_pods(
    kube: Kube,
    *,
    namespace: str,
    selector: str,
    since: datetime | None,
    output_dir: Path,
    redact: Callable[[str], str],
    bounds: CaptureBounds | None = None,
    release_revision: str = "",
    states: list[PodState] | None = None,
) -> CaptureReport:
    """Capture the pods matching ``selector`` in ``namespace`` into ``output_dir``.

    ``since``: the deploy time (logs before it are not wanted). ``release_revision``: a label
    for the revision these pods run (e.g. "revision 2 (v1.1.0)"), written beside each pod.
    ``states``: pods already listed (``start_capture`` lists them first). Never raises for
    the cluster's sake; ``OSError`` writing the bundle does propagate.
    """
    started = time.monotonic()
    bounds = bounds or CaptureBounds()
    gaps: list[str] = []
    written: list[str] = []
    if states is None:
        try:
            states = list_pod_states(kube, namespace, selector)
        except RunbookError as err:
            gaps.append(f"pods -l {selector}: could not be listed: {err}")
            states = []
    pods_doc = [_pod_record(s, release_revision) for s in states]
    written.append(write_json(output_dir, f"{BEFORE_ROLLBACK}/pods.json", pods_doc, redact=redact))
    wants = _wanted(states)

    def read(want: _Want) -> tuple[_Want, bytes | None, str]:
        try:
            data = read_log_bytes(
                kube,
                namespace,
                want.pod,
                want.container,
                since=since,
                limit_bytes=bounds.per_pod_bytes + 1,
                previous=want.previous,
            )
        except ApiError as err:
            what = f"{want.pod}/{want.container}{' (previous)' if want.previous else ''}"
            if err.status == 404:
                return want, None, f"{what}: the pod vanished before its log was read"
            return want, None, f"{what}: log not read: {err.stderr or err}"
        return want, data, ""

    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        results = list(pool.map(read, wants))
    used = 0
    truncated: list[str] = []
    entries = []
    for want, data, problem in results:  # in pod order: the total bound is applied in order
        entry: dict[str, Any] = {
            "pod": want.pod,
            "container": want.container,
            "previous": want.previous,
        }
        if data is None:
            gaps.append(problem)
            entry["gap"] = problem
            entries.append(entry)
            continue
        budget = bounds.budget(used)
        if budget < bounds.per_pod_bytes and not cut_log(data, budget).data:
            budget = 0  # what the total leaves cannot hold one line: as good as nothing left
        if budget == 0:
            gap = (
                f"{want.pod}/{want.container}: not captured, the total bound of"
                f" {bounds.total_bytes} bytes was reached"
            )
            gaps.append(gap)
            entry["gap"] = gap
            entries.append(entry)
            continue
        cut = cut_log(data, budget)
        what = f"log of {want.pod}/{want.container}{' (previous)' if want.previous else ''}"
        text = cut.text(what=what)
        written.append(write_text(output_dir, want.rel, text, redact=redact))
        used += len(cut.data)
        if cut.truncated:
            truncated.append(want.rel)
        entry.update(
            {"file": want.rel, "bytes": len(cut.data), "truncated": cut.truncated, "limit": budget}
        )
        entries.append(entry)
    elapsed = time.monotonic() - started
    summary = {
        "namespace": namespace,
        "selector": selector,
        "since": since.isoformat() if since else None,
        "release_revision": release_revision,
        "bounds": {"per_pod_bytes": bounds.per_pod_bytes, "total_bytes": bounds.total_bytes},
        "pods": [s.name for s in states],
        "logs": entries,
        "gaps": gaps,
        "bytes_captured": used,
        "elapsed_s": round(elapsed, 3),
    }
    written.append(write_json(output_dir, f"{BEFORE_ROLLBACK}/capture.json", summary, redact=redact))
    return CaptureReport(
        pods=tuple(s.name for s in states),
        written=tuple(written),
        gaps=tuple(gaps),
        truncated=tuple(truncated),
        bytes_captured=used,
        elapsed_s=elapsed,
    )


class CaptureJob:
    """A capture running in the background; ``wait`` returns its report. ``listed`` is set
    once it has listed the pods it captures (from the start when it was not told)."""

    def __init__(
        self, run: Callable[[], CaptureReport], listed: threading.Event | None = None
    ) -> None:
        if listed is None:
            listed = threading.Event()
            listed.set()
        self.listed = listed
        self._report: CaptureReport | None = None
        self._error: BaseException | None = None

        def target() -> None:
            try:
                self._report = run()
            except BaseException as err:  # handed to wait(), which re-raises it
                self._error = err

        self._thread = threading.Thread(target=target, name="capture-release-pods", daemon=True)
        self._thread.start()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout_s: float | None = None) -> CaptureReport | None:
        """The report, or None if the capture is still running after ``timeout_s``."""
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            return None
        if self._error is not None:
            raise self._error
        return self._report


class _Capture(TypedDict):
    """``capture_release_pods``' arguments that ``start_capture`` passes on as they are."""

    since: datetime | None
    output_dir: Path
    redact: Callable[[str], str]
    bounds: NotRequired[CaptureBounds | None]
    release_revision: NotRequired[str]


def start_capture(
    kube: Kube,
    *,
    namespace: str,
    selector: str,
    listing_wait_s: float | None = None,
    **capture: Unpack[_Capture],
) -> CaptureJob:
    """List the pods (so the capture knows them before anything changes), then read and
    write their logs, in a background thread. Returns once the pods are listed, or after
    ``listing_wait_s`` (None: no limit); ``job.listed`` says which. Same arguments as
    ``capture_release_pods``."""
    listed = threading.Event()

    def run() -> CaptureReport:
        states: list[PodState] | None
        try:
            states = list_pod_states(kube, namespace, selector)
        except RunbookError:
            states = None  # capture_release_pods lists again and records the gap
        finally:
            listed.set()
        return capture_release_pods(
            kube, namespace=namespace, selector=selector, states=states, **capture
        )

    job = CaptureJob(run, listed)
    listed.wait(listing_wait_s)
    return job
