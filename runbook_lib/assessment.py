"""The runbook's "When to Rollback", once: load a window of samples, decide, render the decision.

``runbook evaluate``, the assessment notebook and the rollback notebook's ``assess``/``decide``
steps all come through here, with the parameters of ``core.parameters`` (parsed into
``RunParams``): the same source rules, the same window arithmetic, the same defaults and the
same rendering of the verdict. Nothing here changes the cluster.
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
from runbook_lib.core import decision as core_decision
from runbook_lib.core import parameters as table
from runbook_lib.core.decision import Decision, RuleStatus, Verdict
from runbook_lib.display import plots
from runbook_lib.display.summary import current as current_summary
from runbook_lib.errors import ParameterError
from runbook_lib.run.params import RunParams, check_decision_params, parse_leniently

__all__ = [
    "PROMETHEUS_STEP_S",
    "Record",
    "Text",
    "Window",
    "check_params",
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

PROMETHEUS_STEP_S = 15.0  # the query step when the parameter ``step`` is empty

_VERDICT_TEXT = {
    Verdict.ROLLBACK: "ROLL BACK",
    Verdict.NO_ROLLBACK: "no rollback",
    Verdict.INCONCLUSIVE: "INCONCLUSIVE: the data could not be judged",
}


def check_params(raw: Mapping[str, Any], *, used_by: str = table.ASSESS) -> RunParams:
    """Every "When to Rollback" parameter checked at once (assessment notebook, CLI).

    ``deployed_at`` is required here (no release to ask), and a replay file must exist.
    Raises ``ParameterError`` listing every problem.
    """
    problems: list[str] = []
    try:
        values = table.parse(raw, used_by=used_by)
    except ParameterError as err:
        # Go on with defaults for the bad values, so every problem is listed at once.
        problems.extend(err.problems)
        values = parse_leniently(raw, used_by)
    check_decision_params(values, problems)
    if values["deployed_at"] is None and not any(p.startswith("deployed_at:") for p in problems):
        problems.append("deployed_at: required (ISO 8601 with offset, or Unix seconds)")
    replay = values["replay_csv"]
    if replay and not Path(replay).is_file():
        problems.append(f"replay_csv: no such file: {replay} (working directory {Path.cwd()})")
    if problems:
        raise ParameterError(sorted(set(problems), key=problems.index))
    return RunParams(**values)


def notebook_parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The assessment notebook's parameters, by name, out of the notebook's globals."""
    return table.given(namespace, table.ASSESS)


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
    params: RunParams,
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
    th = params.thresholds
    history = timedelta(seconds=max(th.business_baseline, th.business_smoothing, th.sustain))
    if isinstance(source, ReplaySource):
        frame = source.frame()
        now = params.now or (
            frame.index[-1] if len(frame) else (clock or datetime.now(UTC))  # keeps its ns
        )
        if now < deployed_at and params.now is None:
            # Every sample precedes the deploy: nothing was judged (inconclusive), no error.
            now = deployed_at
        return Window(frame, str(params.replay_csv), deployed_at, deployed_at_source, now)
    now = params.now or clock or datetime.now(UTC)
    end = min(now, deployed_at + timedelta(seconds=th.window))
    frame = source.query_range(deployed_at - history, end, params.step or PROMETHEUS_STEP_S)
    return Window(frame, params.prometheus_url, deployed_at, deployed_at_source, now)


def read_window(params: RunParams) -> Window:
    """``load_window`` from the source the parameters name, deployed at ``deployed_at``."""
    assert params.deployed_at is not None  # check_params requires it
    return load_window(params, metrics_source(params), deployed_at=params.deployed_at)


def decide(params: RunParams, window: Window, *, manual_reason: str = "") -> Decision:
    """Runbook "When to Rollback": apply the rules to the window.

    ``manual_reason`` (default: the parameter) is the on-call engineer's call. The source's
    own warnings (Prometheus') join the decision's. Raises ``ParameterError`` for bad inputs.
    """
    reason = manual_reason or params.manual_reason
    decision = core_decision.evaluate(
        window.frame,
        deployed_at=window.deployed_at,
        now=window.now,
        thresholds=params.thresholds,
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
    """A value with its unit: ratios as percent, latencies in seconds, business per second."""
    if value is None:
        return "-"
    if metric == "error_ratio":
        return f"{value:.3%}"
    if metric == "p99_latency_s":
        return f"{value:.3g} s"
    if metric == "manual":
        return "call made"
    return f"{value:.4g}"  # business metrics keep the unit of their source


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


def plot_signals(params: RunParams, decision: Decision, window: Window) -> Figure:
    """5xx ratio and p99 latency around the deploy, thresholds and the decision marked."""
    return plots.plot_error_and_latency(
        window.frame, moments=_moments(decision, window), thresholds=params.thresholds
    )


def plot_business(params: RunParams, decision: Decision, window: Window) -> Figure:
    """Each business metric's smoothed value against its fraction of the pre-deploy baseline."""
    return plots.plot_business(
        window.frame, moments=_moments(decision, window), thresholds=params.thresholds
    )


class Record(dict[str, Any]):
    """An assessment's results as plain JSON values; shown as JSON so tests can read it back."""

    def _repr_json_(self) -> dict[str, Any]:
        return dict(self)

    def __repr__(self) -> str:
        return json.dumps(self, indent=1, sort_keys=True)


def record(params: RunParams, decision: Decision, window: Window) -> Record:
    """The decision document (as ``runbook evaluate --json``) plus what it was made from."""
    th = params.thresholds
    return Record(
        {
            **decision.to_json_dict(),
            "deployed_at": window.deployed_at.isoformat(),
            "now": window.now.isoformat(),
            "source": "replay" if params.replay_csv else "prometheus",
            "samples": len(window.frame),
            "thresholds": {
                name: getattr(th, name)
                for name in (
                    "error_ratio",
                    "latency_p99",
                    "sustain",
                    "window",
                    "business_drop",
                    "business_baseline",
                    "business_smoothing",
                    "step",
                )
            },
            "manual_reason": params.manual_reason or None,
        }
    )


def metrics_source(params: RunParams) -> MetricsSource:
    """Where a run's samples come from: ``ReplaySource`` for ``replay_csv``, else
    ``PrometheusSource`` for ``prometheus_url``."""
    if params.replay_csv:
        return ReplaySource(Path(params.replay_csv))
    return PrometheusSource(
        params.prometheus_url,
        selector=params.prometheus_selector,
        rate_window=params.prometheus_rate_window,
        business_counters=dict(params.business_counter_map),
    )
