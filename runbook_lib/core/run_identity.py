"""Who a run is: the process that holds the release's lock, and whether it is provably gone.

A lock holder's name (``lock_holder``, by default ``<incident>@<user>.<host>``) is the same for
two people answering one page with one incident id, and for a retried automation. So the Lease
names a *process*: the host, its pid and when that process started (a pid alone is reused), and
the run's id, which also marks the run's events on a shared incident timeline. Only a process
this machine can see is ever judged gone: on another host the Lease's TTL decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["START_TOLERANCE_S", "RunIdentity", "holder_text", "process_gone"]

# Process start times are read at clock-tick resolution (10 ms on Linux); two reads of one
# process agree far better than this, and a pid reused within half a second is not a risk.
START_TOLERANCE_S = 0.5


@dataclass(frozen=True)
class RunIdentity:
    """One run: its holder name, incident, and the process that runs its steps.

    ``process_started`` is the process's start time in Unix seconds (0.0 when unknown);
    ``run_id`` is unique per run and stamped on the run's timeline events.
    """

    name: str
    incident_id: str
    host: str
    pid: int
    process_started: float
    run_id: str

    @property
    def holder(self) -> str:
        """The Lease's ``holderIdentity``: the name and the process (unique per live process)."""
        return holder_text(self.name, self.pid, self.host)

    def describe(self) -> str:
        """For people: "run r-1a2b (pid 4242 on laptop, started 14:00:01 UTC)"."""
        started = (
            f", started {datetime.fromtimestamp(self.process_started, UTC):%H:%M:%S} UTC"
            if self.process_started
            else ""
        )
        return f"run {self.run_id or '?'} (pid {self.pid} on {self.host}{started})"


def holder_text(name: str, pid: int, host: str) -> str:
    """``INC-7@alice.laptop (pid 4242 on laptop)``."""
    return f"{name} (pid {pid} on {host})"


def process_gone(
    *, host: str, pid: int, started: float, here: str, started_now: float | None
) -> str:
    """Why the holder process is provably gone ("" when it may still run).

    ``host``, ``pid`` and ``started`` are what the Lease says of its holder; ``here`` is this
    machine's host name and ``started_now`` the start time of the process that has that pid
    here now (None: no such process; 0.0: one whose start cannot be read). Provable only on
    the same host: a pid that does not exist, or that belongs to a process started at another
    time (the pid was reused).
    """
    if not host or host != here or pid <= 0:
        return ""
    if started_now is None:
        return f"its process {pid} on {host} no longer exists"
    if started and started_now and abs(started_now - started) > START_TOLERANCE_S:
        return (
            f"pid {pid} on {host} is now another process (started "
            f"{datetime.fromtimestamp(started_now, UTC):%H:%M:%S} UTC, the holder's at "
            f"{datetime.fromtimestamp(started, UTC):%H:%M:%S} UTC)"
        )
    return ""
