"""The runbook's "When to Rollback", once: load a window of samples, decide, render the decision.

``runbook evaluate``, the assessment notebook and the rollback notebook's ``assess``/``decide``
steps all come through here, with the same ``core.settings.Settings``: the same source rules,
the same window arithmetic, the same defaults and the same rendering of the verdict. Nothing
here changes the cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from runbook_lib.adapters.metrics import MetricsSource
from runbook_lib.adapters.prometheus import PrometheusSource
from runbook_lib.adapters.replay import ReplaySource
from runbook_lib.adapters.settings_files import load_settings
from runbook_lib.core import decision as core_decision
from runbook_lib.core import readable
from runbook_lib.core.decision import Decision, RuleStatus, Verdict, evaluated_at
from runbook_lib.core.kinds import Entry
from runbook_lib.core.promql import build_queries
from runbook_lib.core.settings import Settings, given
from runbook_lib.core.units import instant_ns
from runbook_lib.display import plots
from runbook_lib.display.summary import current as current_summary

__all__ = [
    "Record",
    "Text",
    "Window",
    "check_settings",
    "decide",
    "decision_table",
    "load_window",
    "metrics_source",
    "notebook_parameters",
    "plot_business",
    "plot_signals",
    "read_window",
    "record",
    "render",
    "warnings_table",
]

_VERDICT_TEXT = {
    Verdict.ROLLBACK: "ROLL BACK",
    Verdict.NO_ROLLBACK: "no rollback",
    Verdict.INCONCLUSIVE: "INCONCLUSIVE: the data could not be judged",
}


def check_settings(raw: Mapping[str, Any], *, used_by: Entry | str = Entry.ASSESS) -> Settings:
    """Every "When to Rollback" setting checked at once (assessment notebook, CLI).

    ``raw`` holds the values given (and maybe a ``profile``). ``deployed_at`` is required here
    (no release to ask), and a replay file must exist. Raises ``ParameterError`` listing every
    problem.
    """
    return load_settings(raw, used_by=used_by)


def notebook_parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The assessment notebook's settings as given, by name, out of the notebook's globals."""
    return given(namespace, Entry.ASSESS)


@dataclass(frozen=True)
class Window:
    """The samples a decision is made from, and the moments that frame them."""

    frame: pd.DataFrame
    source: str
    deployed_at: datetime
    deployed_at_source: str  # "parameter" or "helm history revision N"
    now: datetime

    def __repr__(self) -> str:
        frame = self.frame
        if frame.empty:
            return f"No samples from {self.source}"
        spacing = pd.Series(frame.index).diff().median()
        step = f"{spacing.total_seconds():g} s" if pd.notna(spacing) else "n/a"
        return (
            f"{len(frame)} samples from {self.source}, "
            f"{frame.index[0]:%Y-%m-%d %H:%M:%S} to {frame.index[-1]:%H:%M:%S} UTC "
            f"(step {step}); deployed at {self.deployed_at:%Y-%m-%d %H:%M:%S} UTC "
            f"({self.deployed_at_source}); evaluated as of {self.now:%H:%M:%S} UTC"
        )


def load_window(
    settings: Settings,
    source: MetricsSource,
    *,
    deployed_at: datetime,
    deployed_at_source: str = "parameter",
    clock: datetime | None = None,
) -> Window:
    """Runbook "When to Rollback": read the samples a decision needs.

    From the business baseline (or the sustain, if longer) before the deploy until ``now``:
    the parameter, else the last sample of a replay, else ``clock`` (the wall clock). Raises
    ``MetricsError`` (``InputFileError`` for a malformed replay) when they cannot be read.
    """
    rules, sources = settings.rules, settings.sources
    history = timedelta(
        seconds=max(rules.business_baseline, rules.business_smoothing, rules.sustain)
    )
    if isinstance(source, ReplaySource):
        frame = source.frame()
        now = sources.now
        if now is None:
            # The last sample; the deploy when every sample precedes it (nothing is judged:
            # inconclusive, not an error).
            last = int(frame.index[-1].value) if len(frame) else None
            now = pd.Timestamp(evaluated_at(instant_ns(deployed_at), None, last), tz=UTC)
        return Window(frame, sources.replay_csv, deployed_at, deployed_at_source, now)
    now = sources.now or clock or datetime.now(UTC)
    end = min(now, deployed_at + timedelta(seconds=rules.window))
    frame = source.query_range(deployed_at - history, end, sources.prometheus_step)
    return Window(frame, sources.prometheus_url, deployed_at, deployed_at_source, now)


def unread_window(
    settings: Settings,
    *,
    deployed_at: datetime,
    deployed_at_source: str,
    clock: datetime | None,
    why: str,
) -> Window:
    """A window without samples, for when Prometheus could not be read: every rule is then
    "not judged" and the verdict inconclusive (missing data never reads as healthy). ``why``
    joins the decision's warnings."""
    columns = list(build_queries(settings.metrics))
    index = pd.DatetimeIndex([], tz=UTC, name="timestamp").as_unit("ns")
    frame = pd.DataFrame({c: pd.Series(dtype=float) for c in columns}, index=index)
    frame.attrs["warnings"] = [why]
    now = settings.sources.now or clock or datetime.now(UTC)
    return Window(frame, settings.sources.prometheus_url, deployed_at, deployed_at_source, now)


def read_window(settings: Settings) -> Window:
    """``load_window`` from the source the settings name, deployed at ``deployed_at``."""
    deployed_at = settings.sources.deployed_at
    assert deployed_at is not None  # check_settings requires it
    return load_window(settings, metrics_source(settings), deployed_at=deployed_at)


def decide(settings: Settings, window: Window, *, manual_reason: str = "") -> Decision:
    """Runbook "When to Rollback": apply the rules to the window.

    ``manual_reason`` (default: the setting) is the on-call engineer's call. The source's
    own warnings (Prometheus') join the decision's. Raises ``ParameterError`` for bad inputs.
    """
    reason = manual_reason or settings.rules.manual_reason
    decision = core_decision.evaluate(
        window.frame,
        deployed_at=window.deployed_at,
        now=window.now,
        rules=settings.rules,
        step=settings.sources.step,
        manual_reason=reason or None,
    )
    extra = tuple(str(w) for w in window.frame.attrs.get("warnings", ()))
    if extra:
        decision = Decision(
            decision.verdict, decision.triggers, decision.warnings + extra, decision.rules
        )
    summary = current_summary()
    if summary is not None:  # the notebook's banner says the verdict as soon as it is known
        summary.note_decision(decision.to_json_dict())
    return decision


def _clock(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def _value(metric: str, value: float | None) -> str:
    """A value with its unit: ratios as percent, latencies in seconds; business metrics keep
    the unit of their source."""
    if value is None:
        return "-"
    if metric == "manual":
        return "call made"
    return readable.metric_value(metric, value)


class Text(str):
    """Text that a notebook shows as it is (no quotes, real line breaks)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def render(decision: Decision, window: Window) -> Text:
    """The decision as lines for a terminal or a notebook: verdict, each rule, warnings."""
    lines = [
        f"Verdict: {_VERDICT_TEXT[decision.verdict]}  (deployed {_clock(window.deployed_at)}, "
        f"evaluated as of {_clock(window.now)} UTC)"
    ]
    for rule in decision.rules:
        required = "" if rule.required or rule.status is RuleStatus.FIRED else " (optional)"
        lines.append(f"  {rule.rule.value} [{rule.metric}]: {rule.reason}{required}")
    if decision.verdict is Verdict.INCONCLUSIVE:
        lines.append(
            "  What could not be judged is listed above; the runbook says 'when in doubt, "
            "roll back first': decide by hand (manual_reason) if the service looks unhealthy."
        )
    lines.extend(f"  warning: {w}" for w in decision.warnings)
    return Text("\n".join(lines))


def decision_table(decision: Decision) -> pd.DataFrame:
    """One row per rule: status and why, the worst value against the threshold, with units."""
    fired = {(t.rule, t.metric): t for t in decision.triggers}
    rows = []
    for rule in decision.rules:
        trigger = fired.get((rule.rule, rule.metric))
        rows.append(
            {
                "rule": rule.rule.value,
                "metric": rule.metric,
                "status": rule.status.value,
                "why": rule.reason,
                "peak": _value(rule.metric, trigger.peak if trigger else rule.worst),
                "threshold": "-"
                if rule.metric == "manual"
                else _value(rule.metric, rule.threshold),
                "run started (UTC)": _clock(trigger.started_at) if trigger else "",
                "fired at (UTC)": _clock(trigger.fired_at) if trigger else "",
            }
        )
    return pd.DataFrame(rows).set_index("rule")


def warnings_table(decision: Decision) -> pd.DataFrame:
    """The decision's warnings (missing data, pre-deploy breaches, ...), one per row."""
    return pd.DataFrame({"warning": list(decision.warnings) or ["(none)"]})


def _moments(decision: Decision, window: Window) -> plots.Moments:
    fired = [t.fired_at for t in decision.triggers]
    return plots.Moments(deployed_at=window.deployed_at, decided_at=min(fired) if fired else None)


def plot_signals(settings: Settings, decision: Decision, window: Window) -> Figure:
    """5xx ratio and p99 latency around the deploy, thresholds and the decision marked."""
    return plots.plot_error_and_latency(
        window.frame, moments=_moments(decision, window), rules=settings.rules
    )


def plot_business(settings: Settings, decision: Decision, window: Window) -> Figure:
    """Each business metric's smoothed value against its fraction of the pre-deploy baseline."""
    return plots.plot_business(
        window.frame, moments=_moments(decision, window), rules=settings.rules
    )


class Record(dict[str, Any]):
    """An assessment's results as plain JSON values; shown as JSON so tests can read it back."""

    def _repr_json_(self) -> dict[str, Any]:
        return dict(self)

    def __repr__(self) -> str:
        return json.dumps(self, indent=1, sort_keys=True)


def record(settings: Settings, decision: Decision, window: Window) -> Record:
    """The decision document (as ``runbook evaluate --json``) plus what it was made from."""
    th = settings.rules
    return Record(
        {
            **decision.to_json_dict(),
            "deployed_at": window.deployed_at.isoformat(),
            "now": window.now.isoformat(),
            "source": "replay" if settings.sources.replay_csv else "prometheus",
            "samples": len(window.frame),
            "thresholds": {
                **{
                    name: getattr(th, name)
                    for name in (
                        "error_ratio",
                        "latency_p99",
                        "sustain",
                        "window",
                        "business_drop",
                        "business_baseline",
                        "business_smoothing",
                    )
                },
                "step": settings.sources.step,
            },
            "manual_reason": th.manual_reason or None,
        }
    )


def metrics_source(settings: Settings) -> MetricsSource:
    """Where a run's samples come from: ``ReplaySource`` for ``replay_csv``, else
    ``PrometheusSource`` for ``prometheus_url`` with the settings' ``metrics``."""
    if settings.sources.replay_csv:
        return ReplaySource(Path(settings.sources.replay_csv))
    return PrometheusSource(settings.sources.prometheus_url, metrics=settings.metrics)
