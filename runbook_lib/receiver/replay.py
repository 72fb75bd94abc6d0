"""What the journal says after a restart, and what a compacted journal must keep (pure).

The journal's events (``journal.jsonl``, one JSON object a line, ``event`` and ``at`` in each):

  alert           an alert and its disposition; ``alert`` holds the whole alert when it was
                  ``queued`` (a run will start) or ``coalesced`` (it rides along a run)
  run_started     a run was planned: incident id (``run_id``), the alert, action, parameters
                  (credentials left out), evidence folder, dispatch (``local`` or ``job``)
  run_dispatched  its child process (``pid``) or Job (``job``) exists
  run_finished    how it ended: ``outcome``, ``verdict``, ``changed`` (whether the cluster was
                  changed; null when unknown) and ``reassess`` (no cooldown follows)
  reassess        a follow-up run was queued for an alert that came during a run
  notify_only     the release is in no policy entry: notified, nothing run
  seen            alert keys already handled (written by compaction)
  notified, stopping, receiver_started   history for people

``replay`` reads them in order: alerts accepted and not started are *pending* (they run after
the restart, once each), runs started and not finished are *unfinished* (reconciled: waited
for, read, or dispatched if they never were), and finished runs give the cooldown and the
circuit breaker their history. ``compacted`` is the journal's minimum: what ``replay`` needs
to say the same while the cooldowns and the breaker's period last.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from runbook_lib.receiver.journal import Entry

__all__ = ["Pending", "Replayed", "compacted", "instant", "replay"]

ReleaseKey = tuple[str, str]  # (namespace, release)


def instant(value: object) -> datetime | None:
    """An ISO 8601 time from the journal, None when it is not one."""
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _release(entry: Entry) -> ReleaseKey:
    return str(entry.get("namespace") or ""), str(entry.get("release") or "")


@dataclass
class Pending:
    """A release's run, accepted and not started: the alert that asked for it."""

    entry: Entry  # the journal line that queued it (kept by compaction)
    more: int = 0  # alerts coalesced into it

    @property
    def alert(self) -> Entry:
        return dict(self.entry.get("alert") or {})


@dataclass
class Replayed:
    seen: list[str] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    unfinished: list[Entry] = field(default_factory=list)  # run_started, + "dispatched"
    arrived: dict[ReleaseKey, Entry] = field(default_factory=dict)  # during an unfinished run
    finished: list[tuple[Entry, Entry]] = field(default_factory=list)  # (started, finished)

    def ended(self) -> dict[ReleaseKey, datetime]:
        """When each release's last run ended that starts a cooldown."""
        found: dict[ReleaseKey, datetime] = {}
        for started, finished in self.finished:
            at = instant(finished.get("at"))
            if finished.get("reassess"):
                found.pop(_release(started), None)
            elif at is not None:
                found[_release(started)] = at
        return found

    def automatic_rollbacks(
        self, changed_outcomes: frozenset[str]
    ) -> dict[ReleaseKey, list[datetime]]:
        """Start times of automatic runs that changed the cluster (or may have: unknown)."""
        found: dict[ReleaseKey, list[datetime]] = {}
        for started, finished in self.finished:
            if started.get("action") != "auto_rollback":
                continue
            changed = finished.get("changed")
            if changed is None:
                changed = finished.get("outcome") in changed_outcomes
            at = instant(started.get("at"))
            if changed and at is not None:
                found.setdefault(_release(started), []).append(at)
        return found


def replay(entries: Iterable[Entry], *, remember: int = 10_000) -> Replayed:
    """Read the journal's entries in order (see the module docstring)."""
    seen: OrderedDict[str, None] = OrderedDict()
    pending: OrderedDict[ReleaseKey, Pending] = OrderedDict()
    runs: dict[str, Entry] = {}
    arrived: dict[ReleaseKey, Entry] = {}
    finished: list[tuple[Entry, Entry]] = []

    def mark(key: object) -> None:
        if isinstance(key, str) and key:
            seen[key] = None
            seen.move_to_end(key)

    for entry in entries:
        event = entry.get("event")
        release = _release(entry)
        if event == "seen":
            for key in entry.get("keys") or ():
                mark(key)
        elif event == "alert":
            disposition = entry.get("disposition")
            if disposition in ("queued", "coalesced", "recent", "duplicate"):
                mark(entry.get("key"))
            if disposition == "queued" and entry.get("alert"):
                pending[release] = Pending(entry, int(entry.get("more") or 0))
            elif disposition == "coalesced" and release in pending:
                pending[release].more += 1
            elif disposition == "coalesced" and entry.get("alert"):
                arrived[release] = entry  # the latest alert during the release's run
        elif event == "reassess" and entry.get("alert"):
            mark(entry.get("key"))
            pending[release] = Pending({**entry, "event": "alert", "disposition": "queued"})
        elif event == "notify_only":
            pending.pop(release, None)
        elif event == "run_started" and entry.get("run_id"):
            mark(entry.get("alert_key"))
            pending.pop(release, None)
            runs[str(entry["run_id"])] = dict(entry)
        elif event == "run_dispatched" and str(entry.get("run_id")) in runs:
            runs[str(entry["run_id"])]["dispatched"] = {
                k: v for k, v in entry.items() if k not in ("event", "at", "run_id")
            }
        elif event == "run_finished":
            started = runs.pop(str(entry.get("run_id")), None)
            if started is not None:
                finished.append((started, entry))
                arrived.pop(_release(started), None)
    keys = list(seen)[-remember:]
    return Replayed(keys, list(pending.values()), list(runs.values()), arrived, finished)


def compacted(
    replayed: Replayed, *, now: datetime, breaker_s: float, cooldown_s: float, recent: int
) -> list[Entry]:
    """The entries a compacted journal keeps: ``replay`` of them gives the same pending and
    unfinished runs, the same keys, the cooldowns still running (``cooldown_s``), the
    automatic rollbacks the breaker still counts (``breaker_s``), and the last ``recent``
    runs (for /runs). Finished runs keep only the fields those need."""
    kept: list[Entry] = [{"event": "seen", "at": now.isoformat(), "keys": replayed.seen}]
    finished = replayed.finished
    last_of_release = {_release(started): i for i, (started, _) in enumerate(finished)}

    def within(ended: Entry, seconds: float) -> bool:
        at = instant(ended.get("at"))
        return at is not None and at >= now - timedelta(seconds=seconds)

    for index, (started, ended) in enumerate(finished):
        cooling = last_of_release[_release(started)] == index and within(ended, cooldown_s)
        counted = (
            started.get("action") == "auto_rollback"
            and ended.get("changed") is not False
            and within(ended, breaker_s)
        )
        if cooling or counted or index >= len(finished) - recent:
            kept += [{k: v for k, v in started.items() if k in _FINISHED_RUN_FIELDS}, ended]
    for run in replayed.unfinished:
        kept.append(_without_dispatch(run))
        if run.get("dispatched"):
            kept.append(
                {
                    "event": "run_dispatched",
                    "at": run.get("at"),
                    "run_id": run["run_id"],
                    **run["dispatched"],
                }
            )
    kept += list(replayed.arrived.values())
    kept += [{**p.entry, "more": p.more} for p in replayed.pending]
    return kept


# What replay and /runs read of a finished run's run_started line.
_FINISHED_RUN_FIELDS = frozenset(
    {
        "event",
        "at",
        "run_id",
        "release",
        "namespace",
        "action",
        "alert_key",
        "alert_name",
        "received_at",
        "incident_dir",
    }
)


def _without_dispatch(run: Entry) -> Entry:
    return {k: v for k, v in run.items() if k != "dispatched"}
