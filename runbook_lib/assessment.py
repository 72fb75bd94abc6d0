"""The read-only assessment notebook's library: "When to Rollback" on a replay or a live Prometheus.

``notebooks/assess.ipynb`` calls one function per cell: ``validate`` (every parameter at once),
``load_samples``, ``evaluate``, ``decision_table``, ``warnings_table``, ``plot_signals``,
``plot_business`` and ``record`` (the JSON-able results that tests read back). Nothing here
changes the cluster.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from runbook_lib import plots
from runbook_lib.adapters.replay import ReplaySource
from runbook_lib.core import decision as core_decision
from runbook_lib.core.thresholds import Thresholds
from runbook_lib.core.units import parse_instant
from runbook_lib.errors import MetricsError, ParameterError

__all__ = [
    "Assessment",
    "Params",
    "Record",
    "Samples",
    "decision_table",
    "evaluate",
    "load_samples",
    "plot_business",
    "plot_signals",
    "record",
    "validate",
    "warnings_table",
]

PROMETHEUS_STEP_S = 15.0  # when no step is given for a live source


@dataclass(frozen=True)
class Params:
    """Validated notebook parameters."""

    source: str  # "replay" or "prometheus"
    metrics_csv: Path | None
    prometheus_url: str
    prometheus_selector: str
    business_counters: tuple[tuple[str, str], ...]
    deployed_at: datetime
    now: datetime | None  # None: last sample (replay) or the clock (Prometheus)
    thresholds: Thresholds
    manual_reason: str | None

    def __repr__(self) -> str:
        where = self.metrics_csv if self.source == "replay" else self.prometheus_url
        now = self.now.isoformat() if self.now else "latest sample / clock"
        th = self.thresholds
        return (
            f"Parameters OK: {self.source} {where}; deployed at {self.deployed_at.isoformat()}; "
            f"now {now}\n  rules: 5xx > {th.error_ratio:.2%} or p99 > {th.latency_p99_s:g} s for "
            f"more than {th.sustain_s:g} s, business drop > {th.business_drop:.0%}, within "
            f"{th.window_s / 60:g} min of the deploy"
            + (f"\n  manual call: {self.manual_reason}" if self.manual_reason else "")
        )


def validate(
    *,
    metrics_csv: str = "",
    prometheus_url: str = "",
    prometheus_selector: str = "",
    business_counters: str = "",
    deployed_at: str = "",
    now: str = "",
    error_ratio: float | str = 0.01,
    latency_p99_s: float | str = 1.0,
    sustain: str | float = "2m",
    window: str | float = "30m",
    business_drop: float | str = 0.10,
    business_baseline: str | float = "30m",
    business_smoothing: str | float = "5m",
    step: str | float = "",
    manual_reason: str = "",
) -> Params:
    """Runbook "When to Rollback", before anything is read: check every parameter at once.

    Raises ``ParameterError`` listing each problem (no source, missing file, naive times,
    unknown units, out-of-range thresholds, malformed business counters).
    """
    problems: list[str] = []
    source = "prometheus" if prometheus_url.strip() else "replay"
    csv_path: Path | None = None
    if source == "replay":
        if not metrics_csv.strip():
            problems.append("metrics_csv: give a replay CSV path, or a prometheus_url")
        else:
            csv_path = Path(metrics_csv)
            if not csv_path.is_file():
                problems.append(f"metrics_csv: no such file: {csv_path} (cwd {Path.cwd()})")
    moments: dict[str, datetime | None] = {}
    for name, raw in (("deployed_at", deployed_at), ("now", now)):
        moments[name] = None
        if name == "deployed_at" and not str(raw).strip():
            problems.append("deployed_at: required (ISO 8601 with offset, or Unix seconds)")
        elif str(raw).strip():
            try:
                moments[name] = parse_instant(raw)
            except ValueError as err:
                problems.append(f"{name}: {err}")
    pairs: list[tuple[str, str]] = []
    for item in filter(None, (p.strip() for p in business_counters.split(","))):
        name, sep, metric = item.partition("=")
        if not sep or not name.strip() or not metric.strip():
            problems.append(f"business_counters: expected name=metric, got {item!r}")
        else:
            pairs.append((name.strip(), metric.strip()))
    thresholds = Thresholds()
    renamed = {
        "sustain": "sustain_s",
        "window": "window_s",
        "business_baseline": "business_baseline_s",
        "business_smoothing": "business_smoothing_s",
        "step": "step_s",
    }
    raw_thresholds = {
        "error_ratio": error_ratio,
        "latency_p99_s": latency_p99_s,
        "sustain_s": sustain,
        "window_s": window,
        "business_drop": business_drop,
        "business_baseline_s": business_baseline,
        "business_smoothing_s": business_smoothing,
        "step_s": step,
    }
    try:
        thresholds = Thresholds.from_params(raw_thresholds)
    except ParameterError as err:
        back = {v: k for k, v in renamed.items()}
        for problem in err.problems:
            field, _, rest = problem.partition(":")
            problems.append(f"{back.get(field, field)}:{rest}")
    deploy, when = moments["deployed_at"], moments["now"]
    if deploy is not None and when is not None and when < deploy:
        problems.append(f"now: {when.isoformat()} is before deployed_at {deploy.isoformat()}")
    if problems:
        raise ParameterError(problems)
    assert deploy is not None
    return Params(
        source=source,
        metrics_csv=csv_path,
        prometheus_url=prometheus_url.strip(),
        prometheus_selector=prometheus_selector.strip(),
        business_counters=tuple(pairs),
        deployed_at=deploy,
        now=when,
        thresholds=thresholds,
        manual_reason=manual_reason.strip() or None,
    )


@dataclass(frozen=True)
class Samples:
    """The metric frame read for the assessment, and what it covers."""

    frame: pd.DataFrame
    now: datetime
    source: str

    def __repr__(self) -> str:
        frame = self.frame
        if frame.empty:
            return f"No samples from {self.source}"
        spacing = pd.Series(frame.index).diff().median()
        step = f"{spacing.total_seconds():g} s" if pd.notna(spacing) else "n/a"
        return (
            f"{len(frame)} samples from {self.source}, "
            f"{frame.index[0]:%Y-%m-%d %H:%M:%S} to {frame.index[-1]:%H:%M:%S} UTC "
            f"(step {step}); columns: {', '.join(map(str, frame.columns))}; "
            f"evaluated as of {self.now:%H:%M:%S} UTC"
        )


def load_samples(params: Params) -> Samples:
    """Runbook "When to Rollback": read the samples around the deploy.

    Raises ``InputFileError`` for a malformed replay file and ``MetricsError`` when Prometheus
    cannot be read (or its adapter is not installed).
    """
    th = params.thresholds
    if params.source == "replay":
        assert params.metrics_csv is not None
        frame = ReplaySource(params.metrics_csv).frame()
        now = params.now or frame.index[-1].to_pydatetime()
        return Samples(frame, now, str(params.metrics_csv))
    try:
        from runbook_lib.adapters.prometheus import PrometheusSource
    except ImportError as err:
        raise MetricsError(
            "runbook_lib.adapters.prometheus is not available; use a replay CSV",
            command=params.prometheus_url,
        ) from err
    source = PrometheusSource(
        params.prometheus_url,
        selector=params.prometheus_selector or None,
        business_counters=dict(params.business_counters) or None,
    )
    now = params.now or datetime.now(UTC)
    history = timedelta(seconds=max(th.business_baseline_s, th.business_smoothing_s))
    end = min(now, params.deployed_at + timedelta(seconds=th.window_s))
    frame = source.query_range(params.deployed_at - history, end, th.step_s or PROMETHEUS_STEP_S)
    return Samples(frame, now, params.prometheus_url)


@dataclass(frozen=True)
class Assessment:
    """The decision with what it was made from."""

    params: Params
    samples: Samples
    decision: core_decision.Decision

    def __repr__(self) -> str:
        verdict = "ROLL BACK" if self.decision.rollback else "no rollback"
        lines = [f"Decision: {verdict} (as of {self.samples.now:%Y-%m-%d %H:%M:%S} UTC)"]
        for t in self.decision.triggers:
            lines.append(
                f"  {t.rule.value}: {t.metric} fired at {t.fired_at:%H:%M:%S} "
                f"(run from {t.started_at:%H:%M:%S}), peak {t.peak:g} vs threshold {t.threshold:g}"
                + (f"; reason: {t.reason}" if t.reason else "")
            )
        lines.extend(f"  warning: {w}" for w in self.decision.warnings)
        return "\n".join(lines)


def evaluate(params: Params, samples: Samples) -> Assessment:
    """Runbook "When to Rollback": apply the rules. Raises ``ParameterError`` for bad inputs."""
    decision = core_decision.evaluate(
        samples.frame,
        deployed_at=params.deployed_at,
        now=samples.now,
        thresholds=params.thresholds,
        manual_reason=params.manual_reason,
    )
    extra = tuple(str(w) for w in samples.frame.attrs.get("warnings", ()))
    if extra:
        decision = core_decision.Decision(
            decision.rollback, decision.triggers, decision.warnings + extra, decision.checks
        )
    return Assessment(params, samples, decision)


def decision_table(assessment: Assessment) -> pd.DataFrame:
    """One row per rule: fired or not, the peak (or worst value seen), threshold and times."""
    fired = {(t.rule, t.metric): t for t in assessment.decision.triggers}
    rows = []
    for check in assessment.decision.checks:
        trigger = fired.get((check.rule, check.metric))
        rows.append(
            {
                "rule": check.rule.value,
                "metric": check.metric,
                "status": check.status.value,
                "peak": trigger.peak if trigger else check.worst,
                "threshold": check.threshold,
                "run started (UTC)": _clock(trigger.started_at) if trigger else "",
                "fired at (UTC)": _clock(trigger.fired_at) if trigger else "",
            }
        )
    return pd.DataFrame(rows).set_index("rule")


def warnings_table(assessment: Assessment) -> pd.DataFrame:
    """The decision's warnings (missing data, pre-deploy breaches, ...), one per row."""
    return pd.DataFrame({"warning": list(assessment.decision.warnings) or ["(none)"]})


def plot_signals(assessment: Assessment) -> Figure:
    """5xx ratio and p99 latency around the deploy, thresholds and the decision marked."""
    return plots.plot_error_and_latency(
        assessment.samples.frame,
        moments=_moments(assessment),
        thresholds=assessment.params.thresholds,
    )


def plot_business(assessment: Assessment) -> Figure:
    """Each business metric's 5-minute mean against 90% of its pre-deploy baseline."""
    return plots.plot_business(
        assessment.samples.frame,
        moments=_moments(assessment),
        thresholds=assessment.params.thresholds,
    )


class Record(dict[str, Any]):
    """The assessment's results as plain JSON values; shown as JSON so tests can read it back."""

    def _repr_json_(self) -> dict[str, Any]:
        return dict(self)

    def __repr__(self) -> str:
        return json.dumps(self, indent=1, sort_keys=True)


def record(assessment: Assessment) -> Record:
    """The results to keep with the executed notebook: decision document plus its inputs."""
    th = assessment.params.thresholds
    return Record(
        {
            **assessment.decision.to_json_dict(),
            "deployed_at": assessment.params.deployed_at.isoformat(),
            "now": assessment.samples.now.isoformat(),
            "source": assessment.params.source,
            "samples": len(assessment.samples.frame),
            "thresholds": asdict(th),
            "manual_reason": assessment.params.manual_reason,
        }
    )


def _moments(assessment: Assessment) -> plots.Moments:
    fired = [t.fired_at for t in assessment.decision.triggers]
    return plots.Moments(
        deployed_at=assessment.params.deployed_at,
        decided_at=min(fired) if fired else None,
    )


def _clock(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
