"""What ``/metrics`` and ``/runs`` show: counters of alerts and runs, and a row per run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runbook_lib.core.receiver_state import Disposition, ReceiverState

__all__ = ["Stats", "metrics_text", "run_row"]


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


def metrics_text(stats: Stats, state: ReceiverState) -> str:
    """Prometheus' text format."""
    lines = [
        "# HELP runbook_alerts_received_total Alerts received, by what became of them.",
        "# TYPE runbook_alerts_received_total counter",
    ]
    lines += [
        f'runbook_alerts_received_total{{disposition="{d.value}"}} {stats.received[d.value]}'
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
