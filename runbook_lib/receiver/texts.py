"""What the receiver tells people: one sentence per moment of a run (pure text).

Release and namespace are valid Kubernetes names by the time a text is made (checked when
the alert arrived); every other piece of alert text (the alert's name) goes through
``core.escape.line`` here, and each notifier escapes the whole message for its medium.
"""

from __future__ import annotations

from runbook_lib.core.alerts import Alert
from runbook_lib.core.escape import line

__all__ = [
    "HANDOVER_OUTCOMES",
    "assessed",
    "dispatch_failed",
    "ended",
    "interrupted",
    "not_started",
    "notify_only",
    "resumed",
    "started",
    "what_fired",
]

PREFIX = "runbook serve:"
# Outcomes after which a person decides, given the command that continues from there.
HANDOVER_OUTCOMES = frozenset(
    {
        "inconclusive",
        "refused",
        "failed",
        "not_recovered",
        "release_changed",
        "unknown",
        "interrupted",
        "incomplete",
        "job_failed",
        "job_gone",
        "job_timeout",
    }
)


def what_fired(alert: Alert) -> str:
    name = line(alert.name or "alert", limit=120)
    return (
        f"{name} fired for release {alert.release} (namespace {alert.namespace}) at "
        f"{alert.starts_at.isoformat()}"
    )


def notify_only(alert: Alert, reason: str, command: str) -> str:
    return f"{PREFIX} {what_fired(alert)}; nothing run: {reason}. To act by hand: {command}"


def started(
    alert: Alert, *, cluster: str, run_id: str, automatic: bool, reason: str, evidence: str
) -> str:
    mode = "rolls back if the verdict says so" if automatic else "assesses only (dry run)"
    return (
        f"{PREFIX} {what_fired(alert)}; started by Alertmanager via runbook serve on "
        f"{line(cluster, limit=120)}: run {run_id} {mode} ({reason}); evidence: {evidence}"
    )


def ended(
    *,
    run_id: str,
    release: str,
    namespace: str,
    outcome: str,
    verdict: str,
    status: int | None,
    took: str,
    evidence: str,
    command: str,
    note: str = "",
) -> str:
    handover = f" A person decides from here: {command}" if outcome in HANDOVER_OUTCOMES else ""
    extra = f" ({note})" if note else ""
    return (
        f"{PREFIX} run {run_id} for {release} ({namespace}) ended{extra}: outcome {outcome}, "
        f"verdict {verdict or 'not reached'}, exit {status}; {took}; evidence: "
        f"{evidence}.{handover}"
    )


def assessed(
    *,
    release: str,
    namespace: str,
    reason: str,
    outcome: str,
    verdict: str,
    took: str,
    evidence: str,
    command: str,
    note: str = "",
) -> str:
    advice = (
        f" The verdict is rollback: to roll back, run: {command}" if verdict == "rollback" else ""
    )
    extra = f" ({note})" if note else ""
    return (
        f"{PREFIX} assessed {release} ({namespace}) without changing anything{extra} "
        f"({reason}): verdict {verdict or 'not reached'}, outcome {outcome}; {took}; "
        f"evidence: {evidence}.{advice}"
    )


def dispatch_failed(*, run_id: str, release: str, namespace: str, reason: str, command: str) -> str:
    return (
        f"{PREFIX} could not start run {run_id} for {release} ({namespace}): "
        f"{line(reason, limit=400)}. Nothing was changed by it; a person decides: {command}"
    )


def interrupted(*, run_id: str, release: str, namespace: str, sealed: str, command: str) -> str:
    return (
        f"{PREFIX} run {run_id} for release {release} (namespace {namespace}) was "
        f"interrupted and left no ending; not started again{sealed}. Check the release "
        f"before acting: {command}"
    )


def resumed(*, run_id: str, release: str, namespace: str, how: str) -> str:
    return f"{PREFIX} restarted during run {run_id} for {release} ({namespace}): {how}"


def not_started(*, run_id: str, release: str, namespace: str) -> str:
    return (
        f"{PREFIX} stopping: run {run_id} for {release} ({namespace}) was not started; "
        "the next start of the receiver starts it"
    )
