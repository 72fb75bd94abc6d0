"""What the receiver counts and shows: ``/metrics``, the rows of ``/runs``, and the circuit
breaker's history of automatic rollbacks. Thread-safe: workers and HTTP handlers share it."""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runbook_lib.core.receiver_state import Disposition, ReceiverState, ReleaseKey

__all__ = ["RECENT_RUNS", "Ledger", "Stats", "run_row"]

RECENT_RUNS = 200  # rows kept for /runs (and by journal compaction)


@dataclass
class Stats:
    received: Counter[str] = field(default_factory=Counter)  # by disposition
    runs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (action, outcome)
    to_start_s: list[float] = field(default_factory=list)
    to_end_s: list[float] = field(default_factory=list)


def run_row(started: Mapping[str, Any], finished: Mapping[str, Any] | None) -> dict[str, Any]:
    """One line of ``/runs``: a run from its journal lines (``finished`` None: running)."""
    return {
        "run_id": started.get("run_id"),
        "received_at": started.get("received_at"),
        "release": started.get("release"),
        "namespace": started.get("namespace"),
        "alert": started.get("alert_name"),
        "action": started.get("action"),
        "outcome": str(finished.get("outcome")) if finished else "running",
        "verdict": str(finished.get("verdict") or "") if finished else "",
        "evidence": started.get("incident_dir") or "",
    }


class Ledger:
    """Counters, recent runs and the automatic rollbacks the breaker counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stats = Stats()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_RUNS)
        self.auto_rollbacks: dict[ReleaseKey, list[datetime]] = {}

    def received(self, disposition: str) -> None:
        with self._lock:
            self.stats.received[disposition] += 1

    def notified_only(self, action: str) -> None:
        with self._lock:
            self.stats.runs[(action, "notified")] += 1

    def started(self, entry: Mapping[str, Any], waited_s: float | None = None) -> None:
        """A run began (or was found again after a restart: no wait to count)."""
        with self._lock:
            self.recent.append(run_row(entry, None))
            if waited_s is not None:
                self.stats.to_start_s.append(waited_s)

    def finished(
        self,
        started: Mapping[str, Any],
        finished: Mapping[str, Any],
        *,
        rollback_at: datetime | None,
        took_s: float | None = None,
    ) -> None:
        """A run ended; ``rollback_at`` (its start) when the breaker counts it."""
        action = str(started.get("action") or "")
        with self._lock:
            self.stats.runs[(action, str(finished.get("outcome")))] += 1
            if took_s is not None:
                self.stats.to_end_s.append(took_s)
            if rollback_at is not None:
                release = (str(started.get("namespace")), str(started.get("release")))
                self.auto_rollbacks.setdefault(release, []).append(rollback_at)
            for row in self.recent:
                if row["run_id"] == started.get("run_id"):
                    row.update(run_row(started, finished))
                    return
            self.recent.append(run_row(started, finished))

    def history(self, release: ReleaseKey) -> list[datetime]:
        with self._lock:
            return list(self.auto_rollbacks.get(release, ()))

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in reversed(self.recent)]

    def metrics_text(self, state: ReceiverState) -> str:
        """Prometheus' text format (``state`` for the queue gauges; the caller holds its lock)."""
        with self._lock:
            stats = self.stats
            lines = [
                "# HELP runbook_alerts_received_total Alerts received, by what became of them.",
                "# TYPE runbook_alerts_received_total counter",
            ]
            lines += [
                f'runbook_alerts_received_total{{disposition="{d.value}"}} '
                f"{stats.received[d.value]}"
                for d in Disposition
            ]
            lines += [
                "# HELP runbook_runs_total Runs started by alerts, by action and outcome.",
                "# TYPE runbook_runs_total counter",
            ]
            lines += [
                f'runbook_runs_total{{action="{a}",outcome="{o}"}} {n}'
                for (a, o), n in sorted(stats.runs.items())
            ]
            lines += [
                "# HELP runbook_queue_depth Releases waiting for a run.",
                "# TYPE runbook_queue_depth gauge",
                f"runbook_queue_depth {state.depth}",
                "# HELP runbook_runs_running Runs in progress.",
                "# TYPE runbook_runs_running gauge",
                f"runbook_runs_running {len(state.running)}",
            ]
            for name, values, text in (
                ("alert_to_start", stats.to_start_s, "alert received to its run started"),
                ("alert_to_end", stats.to_end_s, "alert received to the end of its run"),
            ):
                lines += [
                    f"# HELP runbook_{name}_seconds Time from {text}.",
                    f"# TYPE runbook_{name}_seconds summary",
                    f"runbook_{name}_seconds_sum {sum(values):.3f}",
                    f"runbook_{name}_seconds_count {len(values)}",
                ]
        return "\n".join(lines) + "\n"
