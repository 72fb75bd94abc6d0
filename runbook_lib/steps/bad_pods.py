"""The bad release's pods, captured right before ``helm rollback`` replaces them.

Post-Rollback Actions, step 2 asks for the failed release's logs, but the rollback deletes the
pods that wrote them. ``start_bad_release_capture`` (called by ``helm_rollback`` just before
it changes anything) lists the pods the Deployment runs now and reads their logs since the
deploy in a background thread (``evidence.capture``), so the rollback waits only for the
listing, and never more than a second. ``settle_capture`` (after the rollout, and in
``preserve_evidence`` at the latest) waits for it and records a ``BadPodsCaptured`` fact:
which pods ran which revision, what was cut, what could not be read.
``write_pods_by_revision`` writes ``kubernetes/pods-by-revision.json``: the captured pods
beside the pods running after the rollback, each with its revision.
"""

from __future__ import annotations

from runbook_lib.adapters.pod_capture import list_pod_states
from runbook_lib.core import readable
from runbook_lib.core.capture import CaptureBounds
from runbook_lib.errors import RunbookError
from runbook_lib.evidence.bundle import BundleReport, write_json
from runbook_lib.evidence.capture import (
    BEFORE_ROLLBACK,
    start_capture,
)
from runbook_lib.record.facts import BadPodsCaptured, record_fact
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps.context import RunContext

__all__ = [
    "LISTING_WAIT_S",
    "PODS_BY_REVISION",
    "SETTLE_AFTER_ROLLOUT_S",
    "SETTLE_IN_EVIDENCE_S",
    "settle_capture",
    "start_bad_release_capture",
    "write_pods_by_revision",
]

PODS_BY_REVISION = "kubernetes/pods-by-revision.json"
# How long a step waits for the capture: briefly after the rollout (the logs are usually read by
# then), longer in preserve_evidence, the last moment the run can still record it.
SETTLE_AFTER_ROLLOUT_S = 15.0
SETTLE_IN_EVIDENCE_S = 120.0
# The most the rollback waits for the pod listing (tens of milliseconds on a healthy API server;
# a slow one must not hold the rollback back: the listing then finishes beside it).
LISTING_WAIT_S = 1.0


def start_bad_release_capture(ctx: RunContext, step: str) -> None:
    """Start capturing the pods of the revision about to be rolled back (``ctx.live.capture``).

    Lists the pods now (tens of milliseconds; the rollback waits at most ``LISTING_WAIT_S``
    for it) and reads their logs since the deploy in the background, bounded by
    ``capture_per_pod``/``capture_total``. Never raises: a capture that cannot start is a
    timeline warning, and the rollback goes on. In a dry run it captures too (reading changes
    nothing) and says so.
    """
    target = ctx.live.target
    if target is None or target.already_rolled_back or ctx.live.capture is not None:
        return
    settings = ctx.settings
    current = target.current
    label = f"revision {current.number} ({current.app_version or current.chart})"
    started_at = ctx.now()
    bounds = CaptureBounds(
        per_pod_bytes=settings.capture.capture_per_pod, total_bytes=settings.capture.capture_total
    )
    since = ctx.facts.deployed_at
    try:
        selector = ctx.pod_selector
        kube = ctx.kube
    except (RunbookError, OSError) as err:
        ctx.timeline.record(
            step,
            EventKind.WARNING,
            f"the pods of {label} could not be captured before the rollback: {err}",
        )
        return
    job = start_capture(
        kube,
        namespace=settings.target.namespace,
        selector=selector,
        listing_wait_s=LISTING_WAIT_S,
        since=since,
        output_dir=ctx.incident_dir,
        redact=ctx.redact,
        bounds=bounds,
        release_revision=label,
    )
    if not job.listed.is_set():
        ctx.timeline.record(
            step,
            EventKind.WARNING,
            f"listing the pods of {label} took longer than {readable.duration(LISTING_WAIT_S)}: "
            "the rollback goes on, and pods it replaces before the listing ends are not captured",
        )
    ctx.live.capture = job
    ctx.live.capture_started = (started_at, current.number, current.app_version or "")
    rehearsal = " (dry run: reading changes nothing, so the capture is real)" if ctx.dry_run else ""
    ctx.timeline.record(
        step,
        EventKind.INFO,
        f"capturing the pods of {label} (-l {selector}) into {BEFORE_ROLLBACK}/ before the"
        f" rollback{rehearsal}",
    )


def settle_capture(ctx: RunContext, step: str, *, timeout_s: float) -> BadPodsCaptured | None:
    """Wait up to ``timeout_s`` for the capture and record what it got as a fact.

    Returns the fact, or None when no capture runs (or it is still running after ``timeout_s``
    and ``step`` is not the last chance: ``preserve_evidence`` records an incomplete one).
    Never raises for the capture's sake.
    """
    job, started = ctx.live.capture, ctx.live.capture_started
    if job is None or started is None:
        return None
    started_at, revision, version = started
    last_chance = step == "preserve_evidence"
    try:
        report = job.wait(timeout_s)
    # Evidence is best effort: whatever stopped the capture thread (a disk error, the client
    # library's own exceptions) becomes a gap in the record, never a failed run.
    except Exception as err:
        report = None
        gaps: tuple[str, ...] = (f"the capture failed: {type(err).__name__}: {err}",)
    else:
        if report is None and not last_chance:
            return None
        still = (
            f"the capture was still running after {readable.duration(timeout_s)}: "
            "its files may be partial"
        )
        gaps = report.gaps if report is not None else (still,)
    ctx.live.capture = None
    fact = BadPodsCaptured(
        revision=revision,
        version=version,
        pods=report.pods if report else (),
        gaps=gaps,
        truncated=report.truncated if report else (),
        bytes_captured=report.bytes_captured if report else 0,
        started_at=started_at,
        dry_run=ctx.dry_run,
        complete=report is not None,
    )
    cut = f", {len(fact.truncated)} log(s) cut at the bound" if fact.truncated else ""
    missed = f", {len(fact.gaps)} gap(s)" if fact.gaps else ""
    record_fact(
        ctx.timeline,
        step,
        fact,
        f"captured {len(fact.pods)} pod(s) of revision {revision} ({version}) as they were"
        f" before the rollback: {fact.bytes_captured} bytes of logs{cut}{missed}",
    )
    for gap in fact.gaps:
        ctx.timeline.record(step, EventKind.WARNING, f"before the rollback: {gap}")
    return fact


def write_pods_by_revision(ctx: RunContext) -> BundleReport:
    """``kubernetes/pods-by-revision.json``: which pods ran which revision, and where their
    evidence is (the bad ones captured before the rollback, the ones running now after it)."""
    facts = ctx.facts
    captured = facts.bad_pods
    groups = []
    if captured is not None:
        groups.append(
            {
                "when": "before the rollback",
                "revision": captured.revision,
                "version": captured.version,
                "listed_at": captured.started_at.isoformat(),
                "pods": list(captured.pods),
                "evidence": f"{BEFORE_ROLLBACK}/",
            }
        )
    problems: list[str] = []
    try:
        now = list_pod_states(ctx.kube, ctx.settings.target.namespace, ctx.pod_selector)
    except RunbookError as err:
        problems.append(f"pods by revision: {type(err).__name__}: {err}")
        now = []
    rollback = facts.rolled_back or facts.earlier_rollback
    target = facts.target
    if rollback is not None:
        revision: int | None = rollback.to_revision
    else:
        revision = target.current_revision if target else None
    versions = {}
    if target is not None:
        versions = {
            target.current_revision: target.current_version,
            target.target_revision: target.target_version,
        }
    groups.append(
        {
            "when": "after the rollback" if rollback is not None else "when evidence was taken",
            "revision": revision,
            "version": versions.get(revision) if revision is not None else None,
            "listed_at": ctx.now().isoformat(),
            "pods": [
                {"name": s.name, "images": list(s.images), "pod_template_hash": s.template_hash}
                for s in now
                if not s.deleting
            ],
            "evidence": "kubernetes/pods.json, kubernetes/logs/",
        }
    )
    written = write_json(ctx.incident_dir, PODS_BY_REVISION, groups, redact=ctx.redact)
    return BundleReport((written,), tuple(problems))
