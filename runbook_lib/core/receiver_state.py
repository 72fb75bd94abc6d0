"""What the alert receiver has seen, queued and is running: one run per release (pure).

Used by ``runbook serve``. ``offer`` files one alert and says what became of it; ``take`` hands
out the next release to run (never one already running); ``done`` frees it. Memory is bounded:
at most ``capacity`` releases wait, each keeps its first alert and a count of the others, and
the set of alert keys already seen forgets the oldest beyond ``remember``.

Dispositions:
  queued     a run for this release will start (its first alert)
  coalesced  a run for this release is waiting or running; the alert is recorded with it.
             One that arrives while the run is running is kept (the latest): if that run ends
             without a rollback verdict, it was judged on data from before this alert, so a
             follow-up run assesses again (``done(..., reassess=True)``)
  duplicate  this alert (same fingerprint and start) was already handled: no second run
  recent     a run for this release that acted on a rollback verdict ended less than
             ``cooldown`` seconds ago: recorded only (after a rollback, the release's other
             alerts keep firing for a while). A run that found nothing to roll back starts no
             cooldown: an early alert must not mute the ones a bad deploy raises next
  resolved   Alertmanager says it ended: recorded, nothing started
  ignored    no release/namespace label: nothing to roll back
  invalid    the release or namespace label is not a Kubernetes name (``core.names``): checked
             before the label is matched, written or shown anywhere; recorded, nothing started
  full       the queue is full: the post is answered 503 so Alertmanager retries

``restore`` puts back what a restarted receiver read from its journal: alert keys already
handled, releases whose run was accepted and not started, runs still to be reconciled, and
when each release's last run ended (the cooldown survives a restart).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from runbook_lib.core.alerts import RESOLVED, Alert
from runbook_lib.core.names import namespace_problem, release_problem

__all__ = ["Disposition", "ReceiverState", "ReleaseKey", "Waiting", "label_problem"]

ReleaseKey = tuple[str, str]  # (namespace, release)


class Disposition(StrEnum):
    QUEUED = "queued"
    COALESCED = "coalesced"
    DUPLICATE = "duplicate"
    RECENT = "recent"
    RESOLVED = "resolved"
    IGNORED = "ignored"
    INVALID = "invalid"
    FULL = "full"


def label_problem(alert: Alert) -> str:
    """Why the alert's release or namespace label cannot be used ("" when both can)."""
    problems = [
        f"{name} label {problem}"
        for name, problem in (
            ("release", release_problem(alert.release)),
            ("namespace", namespace_problem(alert.namespace)),
        )
        if problem
    ]
    return "; ".join(problems)


@dataclass
class Waiting:
    """One release's pending run: the alert that started it and how many more arrived."""

    first: Alert
    more: int = 0


@dataclass
class ReceiverState:
    capacity: int = 100
    remember: int = 10_000
    cooldown: float = 300.0
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    waiting: OrderedDict[ReleaseKey, Waiting] = field(default_factory=OrderedDict)
    running: dict[ReleaseKey, Alert] = field(default_factory=dict)
    arrived: dict[ReleaseKey, Alert] = field(default_factory=dict)  # latest, during a run
    ended: dict[ReleaseKey, datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.remember < 1 or self.cooldown < 0:
            raise ValueError("capacity and remember must be at least 1, cooldown >= 0")

    def remember_keys(self, keys: Iterable[str]) -> None:
        """Alert keys handled before a restart (from the receiver's journal)."""
        for key in keys:
            self._mark(key)

    def restore(
        self,
        *,
        keys: Iterable[str] = (),
        waiting: Iterable[Waiting] = (),
        running: Iterable[Alert] = (),
        ended: Mapping[ReleaseKey, datetime] | None = None,
    ) -> None:
        """What the journal says from before a restart (see the module docstring). Waiting
        releases keep their order and may exceed ``capacity``: they were accepted."""
        self.remember_keys(keys)
        for entry in waiting:
            self.waiting.setdefault((entry.first.namespace, entry.first.release), entry)
        for alert in running:
            self.running[(alert.namespace, alert.release)] = alert
        self.ended.update(ended or {})

    def _mark(self, key: str) -> None:
        self.seen[key] = None
        self.seen.move_to_end(key)
        while len(self.seen) > self.remember:
            self.seen.popitem(last=False)

    def offer(self, alert: Alert, now: datetime) -> Disposition:
        """File one alert; see the module docstring for what each disposition means."""
        if alert.status == RESOLVED:
            return Disposition.RESOLVED
        if not alert.release or not alert.namespace:
            return Disposition.IGNORED
        if label_problem(alert):
            return Disposition.INVALID
        if alert.key in self.seen:
            return Disposition.DUPLICATE
        release: ReleaseKey = (alert.namespace, alert.release)
        if release in self.waiting:
            self.waiting[release].more += 1
            self._mark(alert.key)
            return Disposition.COALESCED
        if release in self.running:
            self.arrived[release] = alert
            self._mark(alert.key)
            return Disposition.COALESCED
        ended = self.ended.get(release)
        if ended is not None and (now - ended).total_seconds() < self.cooldown:
            self._mark(alert.key)
            return Disposition.RECENT
        if len(self.waiting) >= self.capacity:
            return Disposition.FULL  # not marked: Alertmanager's retry must get through
        self.waiting[release] = Waiting(alert)
        self._mark(alert.key)
        return Disposition.QUEUED

    def take(self) -> tuple[ReleaseKey, Waiting] | None:
        """The oldest waiting release, now running; None when nothing waits."""
        for release in self.waiting:
            if release not in self.running:
                entry = self.waiting.pop(release)
                self.running[release] = entry.first
                return release, entry
        return None

    def done(self, release: ReleaseKey, now: datetime, *, reassess: bool = False) -> Alert | None:
        """The release's run ended at ``now``; returns the alert queued for a follow-up run.

        ``reassess`` is true when the run found nothing to roll back (verdict ``no_rollback``
        or ``inconclusive``): no cooldown, and the latest alert that arrived while it ran is
        queued, since the run's data ended before that alert fired. Otherwise alerts within
        the cooldown are only recorded.
        """
        self.running.pop(release, None)
        later = self.arrived.pop(release, None)
        if reassess:
            self.ended.pop(release, None)
            if later is not None and release not in self.waiting:
                self.waiting[release] = Waiting(later)
                return later
            return None
        self.ended[release] = now
        # Bounded: only releases still inside their cooldown are kept.
        for key in [k for k, t in self.ended.items() if (now - t).total_seconds() >= self.cooldown]:
            del self.ended[key]
        return None

    @property
    def depth(self) -> int:
        """Releases waiting for a run (what /metrics reports as the queue depth)."""
        return len(self.waiting)
