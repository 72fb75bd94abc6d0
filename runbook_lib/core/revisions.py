"""Helm release revisions and the choice of the revision to roll back to.

``helm rollback <release> 0`` means "the revision before the current one"; run twice it flips
back to the bad release. So the runbook resolves an explicit revision number here, from
``helm history -o json``, and a second run recognises that the release already runs it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runbook_lib.errors import AdapterError, PreconditionFailed

__all__ = [
    "GOOD_STATUSES",
    "PENDING_STATUSES",
    "Revision",
    "RollbackTarget",
    "bad_revision",
    "helm_time",
    "parse_history",
    "resolve_target",
    "revisions_needing_values",
]

# A revision with one of these statuses was applied completely at some point.
GOOD_STATUSES = frozenset({"deployed", "superseded"})
# Helm refuses to roll back while another operation holds the release.
PENDING_STATUSES = frozenset({"pending-install", "pending-upgrade", "pending-rollback"})

# Helm 3 and 4 describe a rollback release as "Rollback to <n>" unless given a description.
_ROLLBACK_DESCRIPTION = re.compile(r"^Rollback to (\d+)\s*$")


@dataclass(frozen=True)
class Revision:
    """One row of ``helm history``. ``updated`` is timezone-aware."""

    number: int
    status: str
    chart: str
    app_version: str
    updated: datetime
    description: str
    # Helm 4 records the restored revision in its own field; Helm 3 only in the description.
    rollback_revision: int | None = None

    @property
    def rolled_back_to(self) -> int | None:
        """The revision this one restored, when it was made by ``helm rollback``."""
        if self.rollback_revision:
            return self.rollback_revision
        match = _ROLLBACK_DESCRIPTION.match(self.description)
        return int(match.group(1)) if match else None

    def label(self) -> str:
        """Short human form for plans and notifications, e.g. ``3 (app-0.1.0, 1.0.0)``."""
        return f"{self.number} ({self.chart}, {self.app_version or 'no app version'})"


@dataclass(frozen=True)
class RollbackTarget:
    """What ``preflight`` decided: roll ``current`` back to ``target``.

    ``already_rolled_back`` is true when the release already runs the target (a second run of
    the runbook); the rollback step then changes nothing. ``bad`` is the deploy being undone
    (``bad_revision``): the current revision, unless an earlier rollback came after it.
    ``cut_off`` is set when the current revision is a rollback to this same target that Helm
    never marked deployed (its helm was killed or timed out): rolling back to the target again
    finishes it.
    """

    current: Revision
    target: Revision
    already_rolled_back: bool = False
    bad: Revision | None = None
    cut_off: bool = False

    @property
    def bad_release(self) -> Revision:
        """The deploy being undone, as history shows it (never a rollback revision)."""
        return self.bad if self.bad is not None else self.current


def _field(row: Mapping[str, Any], key: str, index: int) -> Any:
    if key not in row:
        raise AdapterError(f"helm history entry {index} has no {key!r} field")
    return row[key]


def _optional_int(value: Any) -> int | None:
    try:
        return int(value) if value else None
    except (TypeError, ValueError):
        return None


def helm_time(value: object, *, where: str) -> datetime:
    """A time as Helm writes it (RFC 3339, nanoseconds, ``Z``), timezone-aware.

    Raises ``AdapterError`` naming ``where`` when it is unreadable or has no offset.
    """
    text = str(value)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise AdapterError(f"{where} has an unreadable time {text!r}") from err
    if moment.tzinfo is None:
        raise AdapterError(f"{where} time {text!r} has no offset")
    return moment


def parse_history(json_text: str) -> list[Revision]:
    """Parse ``helm history <release> -o json`` into revisions sorted by number.

    Used by the preflight "revisions" check. Raises ``AdapterError`` when the text is not the
    JSON list Helm prints (the adapter adds the command line).
    """
    try:
        raw = json.loads(json_text)
    except json.JSONDecodeError as err:
        raise AdapterError(f"helm history output is not JSON: {err}") from err
    if not isinstance(raw, list):
        raise AdapterError("helm history output is not a JSON list")
    revisions = []
    for index, row in enumerate(raw):
        if not isinstance(row, Mapping):
            raise AdapterError(f"helm history entry {index} is not an object")
        updated = helm_time(_field(row, "updated", index), where=f"helm history entry {index}")
        try:
            number = int(_field(row, "revision", index))
        except (TypeError, ValueError) as err:
            raise AdapterError(f"helm history entry {index} has a non-integer revision") from err
        revisions.append(
            Revision(
                number=number,
                status=str(_field(row, "status", index)),
                chart=str(_field(row, "chart", index)),
                # Charts without appVersion make Helm omit the key.
                app_version=str(row.get("app_version") or ""),
                updated=updated,
                description=str(row.get("description") or ""),
                rollback_revision=_optional_int(row.get("rollback_revision")),
            )
        )
    return sorted(revisions, key=lambda r: r.number)


def _looks_alike(a: Revision, b: Revision) -> bool:
    return (a.chart, a.app_version) == (b.chart, b.app_version)


def _same_release_content(
    a: Revision, b: Revision, values: Mapping[int, Mapping[str, Any]] | None
) -> bool:
    if not _looks_alike(a, b):
        return False
    if values is None or a.number not in values or b.number not in values:
        # Without both values we can only compare what history shows.
        return True
    return dict(values[a.number]) == dict(values[b.number])


def bad_revision(history: Sequence[Revision]) -> Revision:
    """The deploy being undone: the newest revision not made by ``helm rollback``.

    Raises ``PreconditionFailed`` for an empty history (no such release).
    """
    if not history:
        raise PreconditionFailed("helm history is empty: the release does not exist")
    ordered = sorted(history, key=lambda r: r.number)
    return next((r for r in reversed(ordered) if r.rolled_back_to is None), ordered[-1])


def revisions_needing_values(history: Sequence[Revision]) -> list[int]:
    """The revisions whose values ``resolve_target`` may compare (fetch only these).

    ``resolve_target`` scans the good revisions before the bad one, newest first, and stops at
    the first that differs in chart or app version; only look-alikes met before that need
    values, and only then does the target depend on them. The "already rolled back" check
    compares the current revision with the target, so it needs values only when the current
    revision looks like one of the possible targets. Usually nothing is fetched: every helm
    call here is on the clock between decision and rollout.
    """
    if not history:
        return []
    ordered = sorted(history, key=lambda r: r.number)
    current, bad = ordered[-1], bad_revision(ordered)
    candidates: list[Revision] = []  # the possible targets, newest first
    for r in reversed(ordered):
        if r.number >= bad.number or r.status not in GOOD_STATUSES:
            continue
        candidates.append(r)
        if not _looks_alike(r, bad):
            break  # differs whatever the values say: the scan ends here
    wanted: set[int] = set()
    anchors = [bad]
    if current is not bad and current.status in GOOD_STATUSES:
        anchors.append(current)
    for anchor in anchors:
        alikes = {c.number for c in candidates if _looks_alike(c, anchor)}
        if alikes:
            wanted |= alikes | {anchor.number}
    return sorted(wanted)


def _target(
    ordered: Sequence[Revision], values_by_revision: Mapping[int, Mapping[str, Any]] | None
) -> Revision | None:
    """The newest good revision before the bad one that differs from it (None: none left)."""
    bad = bad_revision(ordered)
    return next(
        (
            r
            for r in reversed(ordered)
            if r.number < bad.number
            and r.status in GOOD_STATUSES
            and not _same_release_content(r, bad, values_by_revision)
        ),
        None,
    )


def resolve_target(
    history: Sequence[Revision],
    *,
    values_by_revision: Mapping[int, Mapping[str, Any]] | None = None,
    finish_cut_off: bool = False,
) -> RollbackTarget:
    """Choose the explicit revision to roll back to (preflight, "revisions").

    The *bad* revision is the newest one not made by ``helm rollback`` (the deploy being
    undone); rollbacks after it are earlier attempts to undo it. The target is the most recent
    revision before the bad one that was deployed successfully (``deployed``/``superseded``)
    and differs from it in chart, app version or (when ``values_by_revision`` has both)
    values. When the current revision is a successful rollback made after the bad one and
    already runs the target's content, ``already_rolled_back`` is set: a second run changes
    nothing. Anchoring on the bad revision, not on the current one, means neither a failed
    rollback nor a manual ``helm rollback <release> 0`` flipping back can make the bad
    release the target.

    A current revision that is still pending is another operation on the release, except
    when ``finish_cut_off`` is set (the caller holds the release's lock, so no other run of
    the runbook is acting) and it is a ``pending-rollback`` to the very target chosen here: a
    rollback whose helm was cut off before marking it deployed. Helm accepts a rollback over
    it, and rolling back to the same revision again changes nothing the pending one would
    not; the result says ``cut_off``.

    Raises ``PreconditionFailed`` when the history is empty, another Helm operation is
    pending, or no earlier good revision differs from the bad one (for instance because
    older revisions were pruned by ``--history-max``).
    """
    if not history:
        raise PreconditionFailed("helm history is empty: the release does not exist")
    ordered = sorted(history, key=lambda r: r.number)
    current = ordered[-1]
    if current.status in PENDING_STATUSES:
        resumable = finish_cut_off and current.status == "pending-rollback"
        found = _target(ordered, values_by_revision) if resumable else None
        if found is None or found.number != current.rolled_back_to:
            raise PreconditionFailed(
                f"revision {current.number} is {current.status}: another Helm operation is in "
                "progress on this release; wait for it or resolve it before rolling back"
            )
        return RollbackTarget(
            current=current, target=found, bad=bad_revision(ordered), cut_off=True
        )
    bad = bad_revision(ordered)
    target = _target(ordered, values_by_revision)
    if target is None:
        kept = ", ".join(str(r.number) for r in ordered)
        detail = f"no good revision before revision {bad.number} differs from it"
        if ordered[0].number > 1:
            detail += f"; revisions before {ordered[0].number} were pruned from history"
        missing = current.rolled_back_to
        if missing is not None and missing not in {r.number for r in ordered}:
            detail += f"; revision {current.number} restored revision {missing}, no longer kept"
        raise PreconditionFailed(f"{detail} (kept: {kept})")
    done = (
        current is not bad
        and current.status in GOOD_STATUSES
        and _same_release_content(current, target, values_by_revision)
    )
    return RollbackTarget(current=current, target=target, already_rolled_back=done, bad=bad)
