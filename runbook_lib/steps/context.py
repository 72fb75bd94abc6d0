"""``start_run``: validate the parameters, open the incident timeline, wire the adapters.

The ``RunContext`` it returns is what every step takes: the parameters, the timeline, the
adapters (built on first use, so a replay-only assessment never needs a cluster) and the
state earlier steps resolved (decision, revisions, lock, rollout time).
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbook_lib.adapters import notify
from runbook_lib.adapters.helm import Helm
from runbook_lib.adapters.kube import Kube
from runbook_lib.adapters.metrics import MetricsSource
from runbook_lib.adapters.prometheus import PrometheusSource
from runbook_lib.adapters.replay import ReplaySource
from runbook_lib.core.redact import Redactor
from runbook_lib.steps.params import RunParams, build_params
from runbook_lib.timeline import EventKind, Timeline

# The adapters are imported here, not on first use: loading the Kubernetes client takes a
# noticeable fraction of a second, which belongs before the decision, not on the clock after it.

if TYPE_CHECKING:
    import pandas as pd

    from runbook_lib.adapters.lease import LockInfo, ReleaseLock
    from runbook_lib.core.decision import Decision
    from runbook_lib.core.revisions import Revision, RollbackTarget
    from runbook_lib.steps.plan import Plan

__all__ = ["RunContext", "RunParams", "RunState", "start_run"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _ask_person(question: str) -> str | None:
    """Ask through ``input()`` when someone can answer; None when the run is headless.

    papermill runs kernels with stdin disabled, so ``input()`` raises there
    (IPython's StdinNotImplementedError is a NotImplementedError); pytest and cron give EOF.
    """
    try:
        return input(question)
    except (EOFError, NotImplementedError, OSError):
        return None


@dataclass
class RunState:
    """What the steps found out, in order. Mutable: each step fills in its part."""

    samples: pd.DataFrame | None = None
    deployed_at: datetime | None = None
    decision: Decision | None = None
    decided_at: datetime | None = None
    history: tuple[Revision, ...] = ()
    target: RollbackTarget | None = None
    expected_images: tuple[str, ...] = ()
    plan: Plan | None = None
    lock: ReleaseLock | None = None
    lock_info: LockInfo | None = None
    confirmed: bool = False
    rolled_back: bool = False  # by this run
    rollout_done_at: datetime | None = None
    recovered_at: datetime | None = None  # sample time the metrics show recovery
    verified_at: datetime | None = None  # when this run confirmed it (the timing end point)
    migrations_reverted: int = 0


@dataclass
class RunContext:
    """One run of the rollback runbook: parameters, timeline, adapters, resolved state."""

    params: RunParams
    timeline: Timeline
    redact: Redactor
    out: Callable[[str], None] = print
    ask: Callable[[str], str | None] = _ask_person
    sleep: Callable[[float], None] = time.sleep
    state: RunState = field(default_factory=RunState)

    @property
    def dry_run(self) -> bool:
        return self.params.dry_run

    @property
    def incident_dir(self) -> Path:
        assert self.timeline.path is not None
        return self.timeline.path.parent

    def now(self) -> datetime:
        return self.timeline.now()

    def show(self, text: str) -> None:
        """Print for the people watching (notebook output), redacted like the timeline."""
        self.out(self.redact(text))

    @property
    def rolling_back(self) -> bool:
        """False once ``decide`` said no rollback is needed; later steps then skip."""
        decision = self.state.decision
        return decision is None or decision.rollback

    @cached_property
    def helm(self) -> Helm:
        p = self.params
        return Helm(
            binary=p.helm_binary,
            kubeconfig=p.kubeconfig,
            context=p.context,
            namespace=p.namespace,
            timeout_s=p.helm_timeout_s,
        )

    @cached_property
    def kube(self) -> Kube:
        return Kube(kubeconfig=self.params.kubeconfig, context=self.params.context)

    @cached_property
    def metrics(self) -> MetricsSource:
        p = self.params
        if p.replay_csv:
            return ReplaySource(Path(p.replay_csv))
        assert p.prometheus_url is not None
        return PrometheusSource(
            p.prometheus_url,
            selector=p.prometheus_selector,
            rate_window=p.prometheus_rate_window,
            business_counters=dict(p.business_counters),
        )

    @cached_property
    def notifiers(self) -> tuple[tuple[str, notify.Notifier], ...]:
        p = self.params
        chosen: list[tuple[str, notify.Notifier]] = []
        if p.slack_webhook_url:
            chosen.append(
                ("slack", notify.SlackWebhook(p.slack_webhook_url, timeout_s=p.notify_timeout_s))
            )
        if p.notify_file:
            chosen.append(("file", notify.FileNotifier(Path(p.notify_file))))
        if p.console:
            chosen.append(("console", notify.ConsoleNotifier()))
        return tuple(chosen)


def _public_params(params: RunParams) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for f in fields(params):
        value = getattr(params, f.name)
        if f.name == "slack_webhook_url" and value:
            value = "[REDACTED]"
        shown[f.name] = (
            value if isinstance(value, str | int | float | bool) or value is None else str(value)
        )
    return shown


def start_run(
    *,
    clock: Callable[[], datetime] = _utcnow,
    out: Callable[[str], None] = print,
    ask: Callable[[str], str | None] = _ask_person,
    sleep: Callable[[float], None] = time.sleep,
    environ: Mapping[str, str] | None = None,
    **params: Any,
) -> RunContext:
    """Validate every parameter and open the incident timeline (the notebook's first step).

    ``params`` are the fields of ``RunParams``; ``clock``, ``out``, ``ask`` and ``sleep`` are
    seams for tests and embedding. The timeline is ``<output_dir>/<incident_id>/timeline.jsonl``
    (appended to when the incident already has one, so a re-run keeps the history), with the
    webhook URL and credential-shaped text redacted.

    Raises ``ParameterError`` listing every invalid parameter.
    """
    validated = build_params(params)
    started = clock()
    incident_id = validated.incident_id or f"rollback-{validated.release}-{started:%Y%m%dT%H%M%SZ}"
    holder = validated.lock_holder or f"{incident_id}@{getpass.getuser()}.{socket.gethostname()}"
    validated = RunParams(
        **{f.name: getattr(validated, f.name) for f in fields(validated)}
        | {"incident_id": incident_id, "lock_holder": holder}
    )
    redact = Redactor.build(
        secrets=(validated.slack_webhook_url,),
        env=os.environ if environ is None else environ,
    )
    path = Path(validated.output_dir) / incident_id / "timeline.jsonl"
    timeline = Timeline(path, clock=clock, redact=redact)
    timeline.record(
        "start_run",
        EventKind.INFO,
        f"run started ({validated.mode}) for release {validated.release} in "
        f"{validated.namespace}, incident {incident_id}",
        params=_public_params(validated),
    )
    return RunContext(
        params=validated, timeline=timeline, redact=redact, out=out, ask=ask, sleep=sleep
    )
