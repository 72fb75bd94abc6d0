"""``start_run``: validate the parameters, open the incident timeline, wire the adapters.

The ``RunContext`` it returns is what every step takes: the parameters, the timeline (with the
run's facts read back from it), the adapters (built on first use, so a replay-only assessment
never needs a cluster) and the live handles a step hands to a later one (the lock, the samples
read, the resolved target and the plan shown).
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbook_lib.adapters import notify
from runbook_lib.adapters.helm import Helm
from runbook_lib.adapters.kube import Kube
from runbook_lib.adapters.metrics import MetricsSource
from runbook_lib.assessment import metrics_source
from runbook_lib.core.redact import Redactor
from runbook_lib.display.summary import current as current_summary
from runbook_lib.display.summary import set_redactor
from runbook_lib.errors import PreconditionFailed
from runbook_lib.evidence import files
from runbook_lib.evidence.manifest import check_signing_key, seal
from runbook_lib.record.ending import Seal
from runbook_lib.record.facts import RunFacts
from runbook_lib.record.timeline import EventKind, Timeline
from runbook_lib.run.params import RunParams, build_params, check_paths

if TYPE_CHECKING:
    from runbook_lib.adapters.lease import ReleaseLock
    from runbook_lib.assessment import Window
    from runbook_lib.core.revisions import RollbackTarget
    from runbook_lib.evidence.capture import CaptureJob
    from runbook_lib.steps.plan import Plan

__all__ = ["Live", "RunContext", "open_timeline", "start_run", "with_identity"]

PROMETHEUS_STEP_S = 15.0  # query step when the parameter ``step`` is empty


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
class Live:
    """Handles one step passes to a later one in this kernel. Facts go on the timeline."""

    lock: ReleaseLock | None = None  # the Lease this run holds
    window: Window | None = None  # what assess read, for the decision and the plots
    target: RollbackTarget | None = None  # what preflight resolved, for the steps that act
    plan: Plan | None = None  # what preflight showed, for the confirm prompt
    # The bad release's pods being captured since just before helm rollback (run/capture.py),
    # and (listed at, revision, version) of what it captures.
    capture: CaptureJob | None = None
    capture_started: tuple[datetime, int, str] | None = None


@dataclass
class RunContext:
    """One run of the rollback runbook: parameters, timeline, adapters, live handles."""

    params: RunParams
    timeline: Timeline
    redact: Redactor
    out: Callable[[str], None] = print
    ask: Callable[[str], str | None] = _ask_person
    sleep: Callable[[float], None] = time.sleep
    live: Live = field(default_factory=Live)

    @property
    def facts(self) -> RunFacts:
        """What the run has established so far, read back from its timeline."""
        return RunFacts.read(self.timeline.events)

    @property
    def dry_run(self) -> bool:
        return self.params.dry_run

    @property
    def incident_dir(self) -> Path:
        assert self.timeline.path is not None
        return self.timeline.path.parent

    @property
    def metrics_step_s(self) -> float:
        """The spacing of the samples asked for: the ``step`` parameter, else 15 s."""
        return self.params.step or PROMETHEUS_STEP_S

    def now(self) -> datetime:
        return self.timeline.now()

    def seal(self) -> Seal:
        """Re-seal the incident folder (``evidence.manifest.seal``: the one seal policy).

        Never raises. Signed with ``signing_key``; when signing fails the reason is a timeline
        warning and the manifest is written unsigned (covering that warning). Whoever ends the
        run reports a bundle that does not verify (``Seal.sentence``).
        """

        def unsigned(why: str) -> None:
            self.timeline.record("seal", EventKind.WARNING, f"the manifest is unsigned: {why}")

        return seal(self.incident_dir, signing_key=self.params.manifest_key, on_unsigned=unsigned)

    def show(self, text: str) -> None:
        """Print for the people watching (notebook output), redacted like the timeline."""
        self.out(self.redact(text))

    @cached_property
    def pod_selector(self) -> str:
        """The pods the service runs: the parameter, else the Deployment's own selector.

        Raises ``PreconditionFailed`` when the Deployment selects by expressions only (name
        the pods with ``pod_selector``), ``ApiError`` when it cannot be read.
        """
        p = self.params
        if p.pod_selector:
            return p.pod_selector
        selector = self.kube.deployment_status(p.namespace, p.deployment).selector
        if not selector:
            raise PreconditionFailed(
                f"deployment/{p.deployment} has no matchLabels selector: set pod_selector"
            )
        return selector

    @cached_property
    def helm(self) -> Helm:
        p = self.params
        return Helm(
            binary=p.helm_binary,
            kubeconfig=p.kubeconfig or None,
            context=p.context or None,
            namespace=p.namespace,
            timeout_s=p.helm_timeout,
        )

    @cached_property
    def kube(self) -> Kube:
        return Kube(kubeconfig=self.params.kubeconfig or None, context=self.params.context or None)

    @cached_property
    def metrics(self) -> MetricsSource:
        return metrics_source(self.params)

    @cached_property
    def notifiers(self) -> tuple[tuple[str, notify.Notifier], ...]:
        p = self.params
        chosen: list[tuple[str, notify.Notifier]] = []
        if p.slack_webhook_url:
            chosen.append(
                ("slack", notify.SlackWebhook(p.slack_webhook_url, timeout_s=p.notify_timeout))
            )
        if p.notify_file:
            chosen.append(("file", notify.FileNotifier(Path(p.notify_file))))
        if p.console:
            chosen.append(("console", notify.ConsoleNotifier()))
        return tuple(chosen)


def with_identity(params: RunParams, started: datetime) -> RunParams:
    """Fill in the incident id and lock holder when the parameters left them empty."""

    incident_id = params.incident_id or f"rollback-{params.release}-{started:%Y%m%dT%H%M%SZ}"
    holder = params.lock_holder or f"{incident_id}@{getpass.getuser()}.{socket.gethostname()}"
    return replace(params, incident_id=incident_id, lock_holder=holder)


def open_timeline(
    params: RunParams,
    *,
    clock: Callable[[], datetime] = _utcnow,
    environ: Mapping[str, str] | None = None,
) -> tuple[Timeline, Redactor]:
    """The incident's timeline (appended to when it exists) and the run's redactor."""
    redact = Redactor.build(
        secrets=(params.slack_webhook_url,),
        env=os.environ if environ is None else environ,
    )
    incident_dir = Path(params.output_dir) / params.incident_id
    path = incident_dir / "timeline.jsonl"
    # 0750, and a symlinked incident folder refused, before the first event is written; a
    # failure is reported by the first write (Timeline.lost) and preflight's evidence check.
    with suppress(OSError):
        files.evidence_dir(incident_dir)

    def append(_path: Path, text: str) -> None:
        files.append_text(incident_dir, "timeline.jsonl", text)

    return Timeline(path, clock=clock, redact=redact, append=append), redact


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

    ``params`` are the notebook's parameters, by the names of ``core.parameters``; ``clock``,
    ``out``, ``ask`` and ``sleep`` are seams for tests and embedding. The timeline is
    ``<output_dir>/<incident_id>/timeline.jsonl`` (appended to when the incident already has
    one, so a re-run keeps the history), with secrets redacted.

    Raises ``ParameterError`` listing every invalid parameter.
    """
    validated = with_identity(build_params(params), clock())
    check_paths(validated)
    # A key that cannot sign must stop the run now, not fail every seal after the rollback.
    check_signing_key(validated.manifest_key, os.environ if environ is None else environ)
    timeline, redact = open_timeline(validated, clock=clock, environ=environ)
    timeline.record(
        "start_run",
        EventKind.INFO,
        f"run started ({validated.mode}) for release {validated.release} in "
        f"{validated.namespace}, incident {validated.incident_id}",
        params=validated.shown(),
        dry_run=validated.dry_run,
    )
    set_redactor(redact)
    summary = current_summary()
    if summary is not None:  # the notebook's banner: which incident, where its evidence goes
        summary.note_start(
            validated.incident_id, (Path(validated.output_dir) / validated.incident_id).resolve()
        )
    ctx = RunContext(
        params=validated, timeline=timeline, redact=redact, out=out, ask=ask, sleep=sleep
    )
    if summary is not None:
        summary.run = ctx
        summary.timeline = timeline  # what the disk refused travels in the notebook instead
    return ctx
