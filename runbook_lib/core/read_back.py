"""What the cluster says after a change was cut off: the release read back, in one sentence.

When ``helm rollback`` is killed by its timeout, interrupted, or its whole run crashes, "the
step did not finish" says nothing about the release: Helm may have applied the rollback a
second after it started. So the run reads ``helm history`` and the pods and states what is so,
relative to the revision the run started from and the revision it rolled back to.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from runbook_lib.core.revisions import GOOD_STATUSES, PENDING_STATUSES, Revision

__all__ = ["ReadBack", "read_back"]


@dataclass(frozen=True)
class ReadBack:
    """The release as read: its newest revision, whether the rollback is in it, the pods."""

    revision: int
    version: str
    description: str
    made_at: datetime | None
    rollback_applied: bool
    pod_images: tuple[str, ...]
    sentence: str


def _clock(at: datetime) -> str:
    return f"{at.astimezone(UTC):%H:%M:%S} UTC"


def _label(revision: Revision, started_at: datetime | None) -> str:
    version = revision.app_version or revision.chart
    made = f"made at {_clock(revision.updated)}"
    if started_at is not None:
        delta = (revision.updated - started_at).total_seconds()
        made += f", {abs(delta):.0f} s {'after' if delta >= 0 else 'before'} helm started"
    return f"revision {revision.number} ({version}, {revision.description!r}, {made})"


def _pods(images: Sequence[str], expected: Sequence[str]) -> str:
    if not images:
        return "no pod of the release is running"
    counts = Counter(images)
    listed = ", ".join(f"{image} ({n})" if n > 1 else image for image, n in sorted(counts.items()))
    text = f"its pods run {listed}"
    if expected:
        same = set(counts) == set(expected)
        text += " (the target's images)" if same else f" (the target runs {', '.join(expected)})"
    return text


def read_back(
    history: Sequence[Revision],
    *,
    reason: str,
    started_from: int | None,
    target: int | None,
    pod_images: Sequence[str],
    expected_images: Sequence[str] = (),
    helm_started_at: datetime | None = None,
) -> ReadBack:
    """The release as ``history`` and the pods show it, after a change that did not end cleanly.

    ``started_from`` is the revision the release was at when the run resolved its target
    (None when unknown), ``target`` the revision it rolled back to; ``pod_images`` one entry
    per running container (pods' images, repeated per pod). The rollback counts as applied
    when a revision after ``started_from`` restores ``target`` and was deployed (status
    deployed or superseded). ``sentence`` starts with ``reason`` ("helm rollback was started
    at ... and killed after 40 s") and says what is so.
    """
    pods = _pods(pod_images, expected_images)
    images = tuple(sorted(set(pod_images)))
    if not history:
        sentence = f"{reason}; helm history is empty (the release does not exist); {pods}"
        return ReadBack(0, "", "", None, False, images, sentence)
    ordered = sorted(history, key=lambda r: r.number)
    current = ordered[-1]
    after = [r for r in ordered if started_from is not None and r.number > started_from]
    restoring = [r for r in after if target is not None and r.rolled_back_to == target]
    applied = any(r.status in GOOD_STATUSES for r in restoring)
    label = _label(current, helm_started_at)
    if started_from is not None and current.number == started_from:
        what = f"the release is still at {label}: nothing changed"
    elif applied and restoring[-1] is current:
        what = f"the release is at {label}: the rollback was applied"
    elif applied:
        what = (
            f"the rollback was applied as revision {restoring[-1].number}, and the release "
            f"changed again since: it is at {label}"
        )
    elif restoring and current.status in PENDING_STATUSES:
        what = (
            f"the release is at {label}, still {current.status}: helm was cut off while "
            "applying the rollback, which may be partly applied; Helm refuses upgrades until "
            f"a rollback completes: a rerun of the runbook rolls back to revision {target} "
            "again and finishes it"
        )
    elif restoring:
        what = f"the release is at {label}, status {current.status}: the rollback failed"
    elif started_from is None:
        what = f"the release is at {label}, status {current.status}"
    else:
        what = (
            f"the release is at {label}, status {current.status}: it changed since revision "
            f"{started_from}, but not by this rollback"
        )
    version = current.app_version or current.chart
    return ReadBack(
        revision=current.number,
        version=version,
        description=current.description,
        made_at=current.updated,
        rollback_applied=applied,
        pod_images=images,
        sentence=f"{reason}; {what}; {pods}",
    )
