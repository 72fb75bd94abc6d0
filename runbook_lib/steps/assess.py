"""Steps "assess" and "decide": the runbook's "When to Rollback", on live or replayed data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from runbook_lib import assessment
from runbook_lib.assessment import Window
from runbook_lib.core.decision import Decision, RuleStatus, Verdict
from runbook_lib.core.revisions import bad_revision
from runbook_lib.errors import MetricsError, PreconditionFailed
from runbook_lib.record.facts import Assessed, Decided, record_fact
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.lock import keep_renewed
from runbook_lib.steps.step import runbook_step

__all__ = ["DecisionMade", "assess", "decide"]


@runbook_step("assess", only_when_rolling_back=False)
def assess(ctx: RunContext) -> Window:
    """Runbook "When to Rollback": read the samples since before the last deploy.

    ``deployed_at`` defaults to the time of the last deploy in ``helm history``: the newest
    revision not made by ``helm rollback``. A rerun after a rollback thus judges the deploy
    being undone, not the rollback. Prometheus that cannot be reached gives a window without
    samples (the verdict is then inconclusive); ``MetricsError`` when a query is rejected or a
    replay cannot be read, ``CommandFailed`` when helm cannot be.
    """
    settings = ctx.settings
    if settings.sources.deployed_at is not None:
        deployed_at, source = settings.sources.deployed_at, "parameter"
    else:
        deploy = bad_revision(ctx.helm.history(settings.target.release))
        deployed_at, source = deploy.updated, f"helm history revision {deploy.number}"
    try:
        window = assessment.load_window(
            settings,
            ctx.metrics,
            deployed_at=deployed_at,
            deployed_at_source=source,
            clock=ctx.now(),
        )
    except MetricsError as err:
        # Prometheus down, timing out or failing (what a retry may cure): no rule can be
        # judged, so the verdict is inconclusive and the run stops before any change (or asks,
        # by hand; or acts on a manual reason). A query Prometheus rejects, or a replay that
        # cannot be read, is a mistake in the settings and fails the step.
        if settings.sources.replay_csv or not err.retryable:
            raise
        # The reason joins the decision's warnings, which decide records: said once.
        first_line = str(err).splitlines()[0]  # the query and stderr stay on the error
        why = f"Prometheus could not be read, so no rule can be judged: {first_line}"
        window = assessment.unread_window(
            settings,
            deployed_at=deployed_at,
            deployed_at_source=source,
            clock=ctx.now(),
            why=why,
        )
    ctx.live.window = window
    record_fact(
        ctx.timeline,
        "assess",
        Assessed(deployed_at, source, len(window.frame)),
        f"read {len(window.frame)} samples; deployed at {deployed_at.isoformat()} ({source})",
    )
    return window


@dataclass(frozen=True)
class DecisionMade:
    """``decide``'s result: the decision, what the run does about it, and when it was taken."""

    decision: Decision
    window: Window
    decided_at: datetime
    rollback: bool
    override: str = ""  # why an inconclusive verdict is acted on anyway

    def __repr__(self) -> str:
        text = str(assessment.render(self.decision, self.window))
        if self.override:
            text += f"\n  acting on it: {self.override}"
        elif self.decision.verdict is Verdict.INCONCLUSIVE:
            text += "\n  stopped before any change: nothing was rolled back"
        return f"Decision at {self.decided_at:%H:%M:%S} UTC\n{text}"


_ASK = (
    "The data could not be judged (see above). The runbook says: when in doubt, roll back "
    "first. Roll back anyway? Type 'yes' to roll back, anything else to stop: "
)


def _inconclusive(ctx: RunContext, decision: Decision) -> str:
    """How an inconclusive verdict is resolved: a manual reason to roll back, or "" to stop.

    By hand the person is asked; headless (nobody to ask) the run stops unless
    ``on_inconclusive`` is ``rollback``. Either answer goes on the timeline.
    """
    unjudged = "; ".join(
        f"{r.rule.value} [{r.metric}]: {r.reason}"
        for r in decision.rules
        if r.required and r.status is RuleStatus.NOT_EVALUATED
    )
    if ctx.settings.rules.on_inconclusive == "rollback":
        return f"on_inconclusive=rollback: rolled back although not judged ({unjudged})"
    ctx.show(assessment.render(decision, ctx.live.window) if ctx.live.window else unjudged)
    with keep_renewed(ctx):  # a re-run cell may hold the lock; a person may take long
        answer = ctx.ask(_ASK)
    if answer is None:
        ctx.timeline.record(
            "decide",
            EventKind.WARNING,
            f"inconclusive and headless: stopping before any change ({unjudged}); set "
            "on_inconclusive=rollback to roll back anyway",
        )
        return ""
    if answer.strip().lower() in {"yes", "y"}:
        return f"rolled back by hand on an inconclusive verdict ({unjudged})"
    ctx.timeline.record(
        "decide", EventKind.INFO, f"inconclusive: the person answered {answer.strip()!r}; stopping"
    )
    return ""


@runbook_step("decide", only_when_rolling_back=False)
def decide(ctx: RunContext) -> DecisionMade:
    """Runbook "When to Rollback": apply the rules (or the on-call engineer's manual call).

    Verdict ``rollback``, ``no_rollback`` or ``inconclusive`` (DESIGN.md). Inconclusive: by hand
    the person is asked whether to roll back anyway (a "yes" becomes the manual reason);
    headless the run stops before any change unless ``on_inconclusive`` is ``rollback``. The
    decision time starts the clock for the 5-minute target. When the run does not roll back,
    later steps record "skipped". Raises ``PreconditionFailed`` when ``assess`` has not run.
    """
    settings = ctx.settings
    window = ctx.live.window
    if window is None:
        raise PreconditionFailed("decide needs assess to have run first")
    decision = assessment.decide(settings, window)
    override = ""
    if decision.verdict is Verdict.INCONCLUSIVE:
        override = _inconclusive(ctx, decision)
        if override:
            decision = assessment.decide(settings, window, manual_reason=override)
    for warning in decision.warnings:
        ctx.timeline.record("decide", EventKind.WARNING, warning)
    verdict = decision.verdict
    event = record_fact(
        ctx.timeline,
        "decide",
        Decided(
            verdict=verdict,
            rollback=decision.rollback,
            deployed_at=window.deployed_at,
            evaluated_at=window.now,
            decision=decision.to_json_dict(),
            manual_reason=settings.rules.manual_reason or override,
            override=override,
        ),
        f"verdict {verdict.value}: " + ("roll back" if decision.rollback else "no change"),
    )
    return DecisionMade(decision, window, event.at, decision.rollback, override)
