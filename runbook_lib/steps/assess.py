"""Steps "assess" and "decide": the runbook's "When to Rollback", on live or replayed data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from runbook_lib.core.decision import Decision, evaluate
from runbook_lib.errors import PreconditionFailed
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.span import step_span
from runbook_lib.timeline import EventKind

__all__ = ["Assessment", "Verdict", "assess", "decide"]


@dataclass(frozen=True)
class Assessment:
    """What ``assess`` read: the sample window and where ``deployed_at`` came from."""

    deployed_at: datetime
    deployed_at_source: str
    start: datetime
    end: datetime
    samples: int
    latest_error_ratio: float | None
    latest_p99_latency_s: float | None

    def __repr__(self) -> str:
        def fmt(value: float | None, spec: str) -> str:
            return "n/a" if value is None else format(value, spec)

        return (
            f"Assessment: {self.samples} samples {self.start:%H:%M:%S}-{self.end:%H:%M:%S} UTC; "
            f"deployed at {self.deployed_at:%Y-%m-%d %H:%M:%S} UTC ({self.deployed_at_source}); "
            f"latest 5xx ratio {fmt(self.latest_error_ratio, '.4f')}, "
            f"p99 {fmt(self.latest_p99_latency_s, '.3f')} s"
        )


@dataclass(frozen=True)
class Verdict:
    """``decide``'s result: the core decision plus when it was taken (the timing origin)."""

    decision: Decision
    decided_at: datetime

    @property
    def rollback(self) -> bool:
        return self.decision.rollback

    def __repr__(self) -> str:
        lines = [
            f"Decision at {self.decided_at:%H:%M:%S} UTC: "
            f"{'ROLL BACK' if self.rollback else 'no rollback needed'}"
        ]
        for t in self.decision.triggers:
            lines.append(
                f"  {t.rule}: {t.metric} peak {t.peak:g} vs threshold {t.threshold:g}, "
                f"run from {t.started_at:%H:%M:%S}, fired {t.fired_at:%H:%M:%S}"
            )
        lines.extend(f"  warning: {w}" for w in self.decision.warnings)
        return "\n".join(lines)


def _latest(samples: object, column: str) -> float | None:
    import pandas as pd

    assert isinstance(samples, pd.DataFrame)
    if column not in samples or samples[column].dropna().empty:
        return None
    return float(samples[column].dropna().iloc[-1])


def assess(ctx: RunContext) -> Assessment:
    """Runbook "When to Rollback": read the samples since before the last deploy.

    ``deployed_at`` defaults to the current revision's time in ``helm history``. Raises
    ``MetricsError`` when the samples cannot be read, ``CommandFailed`` when helm cannot.
    """
    p = ctx.params
    with step_span(ctx, "assess"):
        now = p.now or ctx.now()
        if p.deployed_at is not None:
            deployed_at, source = p.deployed_at, "parameter"
        else:
            history = ctx.helm.history(p.release)
            ctx.state.history = tuple(history)
            current = max(history, key=lambda r: r.number)
            deployed_at, source = current.updated, f"helm history revision {current.number}"
        th = p.thresholds
        start = deployed_at - timedelta(seconds=max(th.business_baseline_s, th.sustain_s))
        samples = ctx.metrics.query_range(start, now, p.metrics_step_s)
        ctx.state.samples = samples
        ctx.state.deployed_at = deployed_at
        result = Assessment(
            deployed_at=deployed_at,
            deployed_at_source=source,
            start=start,
            end=now,
            samples=len(samples),
            latest_error_ratio=_latest(samples, "error_ratio"),
            latest_p99_latency_s=_latest(samples, "p99_latency_s"),
        )
        ctx.timeline.record(
            "assess",
            EventKind.INFO,
            f"read {len(samples)} samples; deployed at {deployed_at.isoformat()} ({source})",
            deployed_at=deployed_at.isoformat(),
            samples=len(samples),
        )
    return result


def decide(ctx: RunContext) -> Verdict:
    """Runbook "When to Rollback": apply the rules (or the on-call engineer's manual call).

    The decision time recorded here starts the clock for the 5-minute target. When the answer
    is "no rollback", every later step records "skipped: no rollback needed" and returns.
    Raises ``PreconditionFailed`` when ``assess`` has not run.
    """
    p = ctx.params
    with step_span(ctx, "decide"):
        if ctx.state.samples is None or ctx.state.deployed_at is None:
            raise PreconditionFailed("decide needs assess to have run first")
        decision = evaluate(
            ctx.state.samples,
            deployed_at=ctx.state.deployed_at,
            now=p.now or ctx.now(),
            thresholds=p.thresholds,
            manual_reason=p.manual_reason,
        )
        decided_at = ctx.now()
        ctx.state.decision = decision
        ctx.state.decided_at = decided_at
        for warning in decision.warnings:
            ctx.timeline.record("decide", EventKind.WARNING, warning)
        ctx.timeline.record(
            "decide",
            EventKind.DECISION,
            "roll back" if decision.rollback else "no rollback needed",
            decision=decision.to_json_dict(),
            manual_reason=p.manual_reason or "",
        )
        verdict = Verdict(decision, decided_at)
        ctx.show(repr(verdict))
    return verdict
