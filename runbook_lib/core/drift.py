"""Did the release change under the run? Pure: the run's rollback against what runs now.

Before escalating a failed recovery, the recovery step re-reads ``helm history`` and the pods'
images. Someone re-deploying (the bad version, or anything else) after the run's rollback is
not a failed recovery: the run's rollback was undone, and the escalation must say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runbook_lib.core.images import PodImages, image_mismatches
from runbook_lib.core.revisions import Revision

__all__ = ["Drift", "expected_revision", "release_drift"]


@dataclass(frozen=True)
class Drift:
    """What changed: a revision newer than the run's, and pods not running the target."""

    expected_revision: int
    newer: Revision | None
    mismatches: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.newer is not None or bool(self.mismatches)

    def describe(self) -> str:
        """One sentence for the escalation and the timeline."""
        parts = []
        if self.newer is not None:
            r = self.newer
            parts.append(
                f"the release is now at revision {r.number} ({r.chart}, "
                f"{r.app_version or 'no app version'}; {r.status}, "
                f"{r.updated:%Y-%m-%d %H:%M:%S %Z}: {r.description or 'no description'}), "
                f"not revision {self.expected_revision} this run left it at"
            )
        if self.mismatches:
            parts.append("pods not running the target's images: " + "; ".join(self.mismatches))
        return "; ".join(parts) if parts else "unchanged"


def expected_revision(current_at_preflight: int, *, rolled_back_by_this_run: bool) -> int:
    """The release's revision once this run's rollback is done.

    ``helm rollback`` writes a new revision after the current one; a run that found the
    release already rolled back left it at the revision preflight read.
    """
    return current_at_preflight + 1 if rolled_back_by_this_run else current_at_preflight


def release_drift(
    history: Sequence[Revision],
    *,
    expected: int,
    pods: Sequence[PodImages],
    expected_images: Sequence[str],
) -> Drift:
    """Compare the release now (``history``, ``pods``) with what the run left.

    A revision numbered above ``expected`` was made by someone else after the rollback. Pods
    are compared only when ``expected_images`` is known and some pod runs: no pod at all is a
    failed service, not a changed release. Raises nothing.
    """
    newest = max(history, key=lambda r: r.number, default=None)
    newer = newest if newest is not None and newest.number > expected else None
    mismatches: tuple[str, ...] = ()
    if expected_images and pods:
        mismatches = tuple(image_mismatches(pods, expected_images))
    return Drift(expected, newer, mismatches)
