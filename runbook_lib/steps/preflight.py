"""Steps "preflight" and "confirm": everything that must hold before the release is touched."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from runbook_lib.adapters.access import missing_permissions
from runbook_lib.core.images import expected_images
from runbook_lib.core.revisions import resolve_target, revisions_needing_values
from runbook_lib.errors import PreconditionFailed, WrongCluster
from runbook_lib.record.facts import Confirmed, TargetResolved, record_fact
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.earlier_runs import link_earlier_runs
from runbook_lib.steps.evidence_room import check_evidence_folder
from runbook_lib.steps.lock import holder_gone, keep_renewed, make_lock, take_lock
from runbook_lib.steps.permissions import MUTATING, READS, REQUIRED
from runbook_lib.steps.plan import Plan, build_plan
from runbook_lib.steps.step import runbook_step

__all__ = ["Confirmation", "confirm", "preflight"]


@dataclass(frozen=True)
class Confirmation:
    """How the go-ahead was given (parameter, person, or dry run)."""

    proceed: bool
    how: str

    def __repr__(self) -> str:
        return f"Confirmation: {'proceed' if self.proceed else 'stop'} ({self.how})"


def _normalise_server(url: str) -> str:
    return url.strip().rstrip("/").lower()


def _guard_cluster(ctx: RunContext) -> tuple[str, str]:
    """The target guard: the kube context or API server must be the expected one."""
    kube = ctx.kube
    context, server = kube.context_name, kube.server_url
    expected = ctx.settings.target.expected_cluster.strip()
    if expected != context and _normalise_server(expected) != _normalise_server(server):
        raise WrongCluster(
            f"refusing to act: kube context {context!r} (API server {server}) is not the "
            f"expected cluster {expected!r}; check KUBECONFIG / the context parameter"
        )
    ctx.timeline.record(
        "preflight",
        EventKind.INFO,
        f"cluster guard passed: {context} ({server})",
        context=context,
        server=server,
    )
    return context, server


def _check_permissions(ctx: RunContext) -> None:
    """Every permission the steps use, checked before the first change.

    Without this a credential missing, say, ``pods/exec`` would fail after ``helm rollback``
    had already changed the release. A dry run needs only the reads; missing write
    permissions are then reported as a warning for the real run.
    """
    settings = ctx.settings
    missing = missing_permissions(ctx.kube, settings.target.namespace, REQUIRED)
    if ctx.dry_run:
        lacking = [m for m in missing if m in MUTATING]
        missing = [m for m in missing if m in READS]
        if lacking:
            ctx.timeline.record(
                "preflight",
                EventKind.WARNING,
                "a real run would fail: missing " + "; ".join(f"{m} ({m.why})" for m in lacking),
            )
    if missing:
        raise PreconditionFailed(
            f"the credential in use lacks {len(missing)} permission(s) in namespace "
            f"{settings.target.namespace}: "
            + "; ".join(f"{m} ({m.why})" for m in missing)
            + " -- grant deploy/rbac.yaml; nothing was changed"
        )
    ctx.timeline.record("preflight", EventKind.INFO, "permissions: all granted")


def _resolve(ctx: RunContext) -> None:
    """The explicit target revision, from a fresh ``helm history`` read under the lock.

    Nothing read before the decision is trusted here: someone may have deployed or rolled back
    since. Read after the lock is taken, so no other run of the runbook changes the release
    between this read and the rollback, and a rollback an earlier run left pending (its helm
    cut off) is finished rather than refused. Values are fetched only for the revisions the
    target scan compares.
    """
    settings = ctx.settings
    history = ctx.helm.history(settings.target.release)
    values = {
        n: ctx.helm.values(settings.target.release, n) for n in revisions_needing_values(history)
    }
    target = resolve_target(history, values_by_revision=values, finish_cut_off=True)
    ctx.live.target = target
    if target.cut_off:
        ctx.timeline.record(
            "preflight",
            EventKind.WARNING,
            f"revision {target.current.number} is {target.current.status}: a rollback to "
            f"revision {target.target.number} whose helm was cut off before Helm marked it "
            f"deployed; rolling back to {target.target.number} again finishes it",
        )
    manifest = ctx.helm.manifest(settings.target.release, target.target.number)
    images = expected_images(manifest, name=settings.target.deployment)
    record_fact(
        ctx.timeline,
        "preflight",
        TargetResolved(
            current_revision=target.current.number,
            current_version=target.current.app_version or target.current.chart,
            target_revision=target.target.number,
            target_version=target.target.app_version or target.target.chart,
            already_rolled_back=target.already_rolled_back,
            expected_images=tuple(images),
            bad_revision=target.bad_release.number,
            bad_version=target.bad_release.app_version or target.bad_release.chart,
        ),
        f"revisions: current {target.current.label()}, target {target.target.label()}"
        + (" (already rolled back)" if target.already_rolled_back else ""),
    )


def _take_lock(ctx: RunContext) -> None:
    """The release's Lease, renewed while the run works; then the crashed runs it finds.

    In a dry run nothing is taken: the rehearsal says who would block a real run.
    """
    settings = ctx.settings
    if ctx.dry_run:
        lock = make_lock(ctx)
        state = lock.state()  # a read: the rehearsal still says who would block it
        if state is not None and state.holder and state.holder != lock.holder:
            live = state.live(ctx.now(), settings.lock.lock_ttl)
            gone = holder_gone(state) if live else ""
            ctx.timeline.record(
                "preflight",
                EventKind.WARNING,
                f"Lease {lock.name} is held by {state.holder!r}: a real run would "
                + (
                    f"take it over at once ({gone})"
                    if gone
                    else "stop (LockHeld) unless lock_takeover_reason is set"
                    if live
                    else "take it over (its holder stopped renewing it)"
                ),
            )
        ctx.timeline.record(
            "preflight",
            EventKind.DRY_RUN,
            f"would take Lease {lock.name} in {settings.target.namespace} as {lock.holder}",
        )
        link_earlier_runs(ctx, "preflight", None)
        return
    info = take_lock(ctx, "preflight")
    link_earlier_runs(ctx, "preflight", info)


@runbook_step("preflight")
def preflight(ctx: RunContext) -> Plan:
    """Before anything changes: cluster guard, lock, revisions, plan (shown and returned).

    Raises ``PreconditionFailed`` first when the evidence folder cannot be written or has no
    room (``check_evidence_folder``), ``WrongCluster`` when the context/server is not
    ``expected_cluster`` (checked before any cluster call), ``PreconditionFailed`` when the
    credential lacks a permission the steps need (all missing ones are named),
    ``LockHeld`` when another run holds the release's Lease (who, since when, when it frees
    itself, how to take it over), ``PreconditionFailed`` when no good target revision exists
    (e.g. pruned) or another Helm operation is pending, ``CommandFailed`` / ``ApiError`` from
    helm or the API. After the lock, crashed runs of the release are sealed as interrupted and
    linked (``steps.earlier_runs``). In a dry run the Lease is not taken.
    """
    settings = ctx.settings
    check_evidence_folder(ctx)  # the record of what follows must be writable: first
    context, server = _guard_cluster(ctx)
    _check_permissions(ctx)  # a missing permission is the more basic problem: first
    _take_lock(ctx)  # before helm history: a second run stops here, naming the first
    _resolve(ctx)
    target = ctx.live.target
    resolved = ctx.facts.target
    assert target is not None
    assert resolved is not None
    plan = build_plan(
        settings,
        cluster=context,
        server=server,
        target=target,
        expected_images=resolved.expected_images,
        notifiers=tuple(name for name, _ in ctx.notifiers),
        pod_selector=ctx.pod_selector,
        rollback_command=shlex.join(
            ctx.helm.rollback_command(
                settings.target.release,
                target.target.number,
                timeout_s=settings.target.helm_timeout,
            )
        ),
    )
    ctx.live.plan = plan
    ctx.timeline.record("preflight", EventKind.INFO, "plan", plan=plan.render())
    return plan


@runbook_step("confirm")
def confirm(ctx: RunContext) -> Confirmation:
    """The go-ahead: ``confirm=True`` or ``dry_run=True``, or a person typing "yes".

    Headless runs (papermill, CI) cannot be asked, so they need one of the two parameters.
    Raises ``PreconditionFailed`` when the run is headless without them, or the person
    declines; the Lease is released either way.
    """
    settings = ctx.settings
    plan = ctx.live.plan
    if plan is None:
        raise PreconditionFailed("confirm needs preflight to have shown the plan first")
    if settings.acting.dry_run:
        result = Confirmation(True, "dry run: nothing will change")
    elif settings.acting.confirm:
        result = Confirmation(True, "confirm=True parameter")
    else:
        with keep_renewed(ctx):  # a person may take longer than lock_ttl to answer
            answer = ctx.ask(
                f"Roll back {settings.target.release} from revision {plan.current} to "
                f"{plan.target} on {plan.cluster}? Type 'yes' to proceed: "
            )
        if answer is None:
            raise PreconditionFailed(
                "confirm: nobody can be asked in a headless run; set confirm=True to roll "
                "back or dry_run=True to rehearse"
            )
        if answer.strip().lower() not in {"yes", "y"}:
            record_fact(
                ctx.timeline,
                "confirm",
                Confirmed(False, "person at the prompt"),
                f"declined (answer {answer.strip()!r})",
            )
            raise PreconditionFailed(f"confirm: rollback declined (answer {answer.strip()!r})")
        result = Confirmation(True, "confirmed by the person running the notebook")
    record_fact(ctx.timeline, "confirm", Confirmed(True, result.how), result.how)
    return result
