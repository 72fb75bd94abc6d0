"""Preflight's first check: the evidence folder can be written and has room.

Checked before anything changes, because a rollback whose record cannot be written leaves the
incident without evidence exactly when it matters (a full disk found only after the rollback).
"""

from __future__ import annotations

import os

from runbook_lib.errors import PreconditionFailed
from runbook_lib.evidence import files
from runbook_lib.record.facts import EvidenceRoom, record_fact
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps.context import RunContext

__all__ = ["EVIDENCE_MIN_FREE", "check_evidence_folder"]

# The evidence folder needs this much free space before the release is touched: a bundle with
# logs, manifests, plots and the executed notebook is a few MiB; pod logs alone may be 20 MiB.
EVIDENCE_MIN_FREE = 50 * 2**20
_PROBE = ".preflight-write-check"


def _problem(ctx: RunContext) -> tuple[str, int]:
    """Why the evidence folder cannot take the bundle ("" when it can), and the free bytes."""
    if ctx.timeline.lost is not None:
        return f"the timeline cannot be written ({ctx.timeline.lost})", 0
    directory = ctx.incident_dir
    # One probe per run: two runs of one incident check the same folder at the same moment.
    probe = f"{_PROBE}-{ctx.run_id or os.getpid()}"
    try:
        files.write_bytes(directory, probe, b"evidence folder write check\n" * 64)
        files.remove_file(directory, probe)
        info = os.statvfs(directory)
    except OSError as err:
        return f"cannot be written ({err})", 0
    free = info.f_bavail * info.f_frsize
    if free < EVIDENCE_MIN_FREE:
        needed = EVIDENCE_MIN_FREE // 2**20
        return f"only {free / 2**20:.1f} MiB free, at least {needed} MiB needed", free
    return "", free


def check_evidence_folder(ctx: RunContext, step: str = "preflight") -> None:
    """Preflight, first: the evidence folder can be written and has ``EVIDENCE_MIN_FREE``.

    Writes and removes a small probe file through the evidence writer and reads the free
    space. When either fails the run stops here with ``PreconditionFailed`` (nothing was
    changed), unless ``without_evidence=True``: then it goes on with a warning, because a
    rollback can matter more than its record.
    """
    problem, free = _problem(ctx)
    directory = ctx.incident_dir
    room = EvidenceRoom(str(directory), free, EVIDENCE_MIN_FREE, problem)
    if not problem:
        message = f"evidence folder {directory}: writable, {free / 2**20:.0f} MiB free"
        record_fact(ctx.timeline, step, room, message)
        return
    text = f"evidence folder {directory}: {problem}"
    # The ending reads this: a run refused for it writes only its record and manifest.
    record_fact(ctx.timeline, step, room, text)
    if ctx.settings.records.without_evidence:
        ctx.show(f"WARNING: {text}; going on WITHOUT evidence (without_evidence=True)")
        ctx.timeline.record(step, EventKind.WARNING, f"{text}; going on without evidence")
        return
    raise PreconditionFailed(
        f"{text} -- nothing was changed; free space or choose another output_dir, or set "
        "without_evidence=True to act without a record"
    )
