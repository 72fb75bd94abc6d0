"""``start_run``: check the settings, open the incident timeline, wire the adapters.

The ``RunContext`` it returns is what every step takes: the settings, the timeline (with the
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbook_lib.adapters import notify
from runbook_lib.adapters.helm import Helm
from runbook_lib.adapters.kube import Kube
from runbook_lib.adapters.metrics import MetricsSource
from runbook_lib.adapters.processes import host_name
from runbook_lib.adapters.settings_files import load_settings
from runbook_lib.assessment import metrics_source
from runbook_lib.core.kinds import Entry
from runbook_lib.core.redact import Redactor
from runbook_lib.core.settings import Settings, with_incident_id
from runbook_lib.display.summary import current as current_summary
from runbook_lib.display.summary import set_redactor
from runbook_lib.errors import PreconditionFailed
from runbook_lib.evidence import files
from runbook_lib.evidence.manifest import check_signing_key, seal
from runbook_lib.record.ending import Seal
from runbook_lib.record.facts import RunFacts
from runbook_lib.record.timeline import RUN_ID_ENV, EventKind, Timeline, new_run_id

if TYPE_CHECKING:
    from runbook_lib.adapters.lease import ReleaseLock
    from runbook_lib.assessment import Window
    from runbook_lib.core.revisions import RollbackTarget
    from runbook_lib.evidence.capture import CaptureJob
    from runbook_lib.steps.plan import Plan

__all__ = ["Live", "RunContext", "open_timeline", "start_run", "with_identity"]


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
    """One run of the rollback runbook: settings, timeline, adapters, live handles."""

    settings: Settings
    timeline: Timeline
    redact: Redactor
    out: Callable[[str], None] = print
    ask: Callable[[str], str | None] = _ask_person
    sleep: Callable[[float], None] = time.sleep
    live: Live = field(default_factory=Live)

    @property
    def facts(self) -> RunFacts:
        """What the run has established so far, read back from its timeline (its own events:
        other runs of the incident may write to the same timeline)."""
        return RunFacts.read(self.timeline.events, run=self.timeline.run or None)

    @property
    def run_id(self) -> str:
        """This run's id, on every event it writes ("" for a timeline reopened without one)."""
        return self.timeline.run

    @property
    def dry_run(self) -> bool:
        return self.settings.acting.dry_run

    @property
    def incident_dir(self) -> Path:
        assert self.timeline.path is not None
        return self.timeline.path.parent

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

        key = self.settings.records.manifest_key
        return seal(self.incident_dir, signing_key=key, on_unsigned=unsigned)

    def show(self, text: str) -> None:
        """Print for the people watching (notebook output), redacted like the timeline."""
        self.out(self.redact(text))

    @cached_property
    def pod_selector(self) -> str:
        """The pods the service runs: the setting, else the Deployment's own selector.

        Raises ``PreconditionFailed`` when the Deployment selects by expressions only (name
        the pods with ``pod_selector``), ``ApiError`` when it cannot be read.
        """
        target = self.settings.target
        if target.pod_selector:
            return target.pod_selector
        selector = self.kube.deployment_status(target.namespace, target.deployment).selector
        if not selector:
            raise PreconditionFailed(
                f"deployment/{target.deployment} has no matchLabels selector: set pod_selector"
            )
        return selector

    @cached_property
    def helm(self) -> Helm:
        target = self.settings.target
        return Helm(
            binary=target.helm_binary,
            kubeconfig=target.kubeconfig or None,
            context=target.context or None,
            namespace=target.namespace,
            timeout_s=target.helm_timeout,
        )

    @cached_property
    def kube(self) -> Kube:
        target = self.settings.target
        return Kube(kubeconfig=target.kubeconfig or None, context=target.context or None)

    @cached_property
    def metrics(self) -> MetricsSource:
        return metrics_source(self.settings)

    @cached_property
    def notifiers(self) -> tuple[tuple[str, notify.Notifier], ...]:
        n = self.settings.notify
        chosen: list[tuple[str, notify.Notifier]] = []
        if n.slack_webhook_url:
            chosen.append(
                ("slack", notify.SlackWebhook(n.slack_webhook_url, timeout_s=n.notify_timeout))
            )
        if n.notify_file:
            chosen.append(("file", notify.FileNotifier(Path(n.notify_file))))
        if n.console:
            chosen.append(("console", notify.ConsoleNotifier()))
        return tuple(chosen)


def with_identity(settings: Settings, started: datetime) -> Settings:
    """Fill in the incident id and lock holder when the settings left them empty."""
    settings = with_incident_id(settings, started)
    if settings.lock.lock_holder:
        return settings
    holder = f"{settings.records.incident_id}@{getpass.getuser()}.{socket.gethostname()}"
    return settings.with_values(lock_holder=holder)


def open_timeline(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = _utcnow,
    environ: Mapping[str, str] | None = None,
    run: str = "",
) -> tuple[Timeline, Redactor]:
    """The incident's timeline (appended to when it exists) and the run's redactor.

    ``run`` is the id stamped on the events written through it.
    """
    redact = Redactor.build(
        secrets=(settings.notify.slack_webhook_url,),
        env=os.environ if environ is None else environ,
    )
    incident_dir = Path(settings.records.output_dir) / settings.records.incident_id
    path = incident_dir / "timeline.jsonl"
    # 0750, and a symlinked incident folder refused, before the first event is written; a
    # failure is reported by the first write (Timeline.lost) and preflight's evidence check.
    with suppress(OSError):
        files.evidence_dir(incident_dir)

    def append(_path: Path, text: str) -> None:
        files.append_text(incident_dir, "timeline.jsonl", text)

    return Timeline(path, clock=clock, redact=redact, append=append, run=run), redact


def start_run(
    *,
    clock: Callable[[], datetime] = _utcnow,
    out: Callable[[str], None] = print,
    ask: Callable[[str], str | None] = _ask_person,
    sleep: Callable[[float], None] = time.sleep,
    environ: Mapping[str, str] | None = None,
    **params: Any,
) -> RunContext:
    """Check every setting and open the incident timeline (the notebook's first step).

    ``params`` are the values given, by their flat names (``core.settings``; a ``profile``
    supplies the others); ``clock``, ``out``, ``ask`` and ``sleep`` are seams for tests and
    embedding. The timeline is ``<output_dir>/<incident_id>/timeline.jsonl`` (appended to when
    the incident already has one, so a re-run keeps the history), with secrets redacted; this
    run's events carry its id (``RUNBOOK_RUN_ID`` in ``environ`` when the caller chose it,
    else a fresh one).

    Raises ``ParameterError`` listing every invalid setting.
    """
    settings = with_identity(load_settings(params, used_by=Entry.ROLLBACK), clock())
    # A key that cannot sign must stop the run now, not fail every seal after the rollback.
    env = os.environ if environ is None else environ
    check_signing_key(settings.records.manifest_key, env)
    run = env.get(RUN_ID_ENV, "").strip() or new_run_id()
    timeline, redact = open_timeline(settings, clock=clock, environ=environ, run=run)
    target, records = settings.target, settings.records
    timeline.record(
        "start_run",
        EventKind.INFO,
        f"run started ({settings.acting.mode}) for release {target.release} in "
        f"{target.namespace}, incident {records.incident_id} ({run}, pid {os.getpid()} on "
        f"{host_name()})",
        params=settings.shown(),
        dry_run=settings.acting.dry_run,
    )
    set_redactor(redact)
    summary = current_summary()
    if summary is not None:  # the notebook's banner: which incident, where its evidence goes
        summary.note_start(
            records.incident_id, (Path(records.output_dir) / records.incident_id).resolve()
        )
    ctx = RunContext(
        settings=settings, timeline=timeline, redact=redact, out=out, ask=ask, sleep=sleep
    )
    if summary is not None:
        summary.run = ctx
        summary.timeline = timeline  # what the disk refused travels in the notebook instead
    return ctx
