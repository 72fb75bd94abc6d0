"""``runbook evaluate``: the "When to Rollback" decision on a replay file or a live Prometheus.

    runbook evaluate --metrics FILE.csv --deployed-at TIME [--now TIME] [--json] [thresholds]
    runbook evaluate --prometheus URL --deployed-at TIME [--now TIME] [--json] [thresholds]

Exit status 0 whenever it evaluated (rollback or not), 2 for bad input (the message names the
file, row and column of a malformed replay file, or every invalid parameter).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from runbook_lib.adapters.replay import ReplaySource
from runbook_lib.core.decision import Decision, evaluate
from runbook_lib.core.thresholds import Thresholds
from runbook_lib.core.units import parse_instant
from runbook_lib.errors import InputFileError, MetricsError, ParameterError

__all__ = ["register", "run"]

# Command-line option -> Thresholds field. Values are parsed with units ("2m", "1%", "800ms").
_THRESHOLD_OPTIONS: dict[str, tuple[str, str]] = {
    "--error-ratio": ("error_ratio", "5xx ratio breach threshold, e.g. 0.01 or 1%% (default 1%%)"),
    "--latency-p99": ("latency_p99_s", "p99 latency breach threshold, e.g. 1s or 800ms"),
    "--sustain": ("sustain_s", "a run must last longer than this, e.g. 2m (default 120s)"),
    "--window": ("window_s", "only samples this long after the deploy count (default 30m)"),
    "--business-drop": ("business_drop", "business drop that fires, e.g. 10%% (default)"),
    "--business-baseline": ("business_baseline_s", "baseline period before the deploy (30m)"),
    "--business-smoothing": ("business_smoothing_s", "trailing mean span (default 5m)"),
    "--step": ("step_s", "sample spacing (default: median spacing of the timestamps)"),
}
_DEFAULT_PROMETHEUS_STEP_S = 15.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help='apply "When to Rollback" to recorded or live metrics',
        description=(
            'Apply the runbook\'s "When to Rollback" rules to a replay CSV (--metrics) or to '
            "a Prometheus server (--prometheus). Exit 0 when evaluated, 2 on bad input."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--metrics", metavar="FILE.csv", help="replay CSV (DESIGN.md format)")
    source.add_argument("--prometheus", metavar="URL", help="Prometheus base URL")
    parser.add_argument(
        "--deployed-at", required=True, metavar="TIME", help="ISO 8601 with offset, or Unix s"
    )
    parser.add_argument(
        "--now",
        metavar="TIME",
        help="evaluation time (default: last sample of the file; the clock for Prometheus)",
    )
    parser.add_argument("--manual", metavar="REASON", help="the on-call engineer's call and why")
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    for option, (_, help_text) in _THRESHOLD_OPTIONS.items():
        parser.add_argument(option, metavar="VALUE", help=help_text)
    prom = parser.add_argument_group("Prometheus queries (with --prometheus)")
    prom.add_argument("--selector", help='label matchers for built queries, e.g. job="api"')
    prom.add_argument("--request-counter", metavar="METRIC", help="default http_requests_total")
    prom.add_argument(
        "--latency-histogram", metavar="METRIC", help="default http_request_duration_seconds"
    )
    prom.add_argument("--rate-window", metavar="DURATION", help="PromQL rate window (1m)")
    prom.add_argument(
        "--business-counter",
        action="append",
        default=[],
        metavar="NAME=METRIC",
        help="a business metric as the rate of a counter, e.g. orders=orders_total (repeatable)",
    )
    prom.add_argument("--error-ratio-query", metavar="PROMQL", help="raw PromQL for error_ratio")
    prom.add_argument("--latency-query", metavar="PROMQL", help="raw PromQL for p99_latency_s")
    prom.add_argument(
        "--business",
        action="append",
        default=[],
        metavar="NAME=PROMQL",
        help="a business metric and its PromQL (repeatable)",
    )
    prom.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout, seconds")
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class _Inputs:
    deployed_at: datetime
    now: datetime | None
    thresholds: Thresholds
    manual_reason: str | None


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the decision. Returns 0 when evaluated, 2 for a malformed file.

    Raises ``ParameterError`` (exit 2 via ``main``) listing every invalid option, and
    ``MetricsError`` (exit 1) when Prometheus cannot be read.
    """
    inputs = _parse_inputs(args)
    try:
        samples, now = _load(args, inputs)
    except InputFileError as err:
        print(f"runbook evaluate: bad input: {err}", file=sys.stderr)
        return 2
    decision = evaluate(
        samples,
        deployed_at=inputs.deployed_at,
        now=now,
        thresholds=inputs.thresholds,
        manual_reason=inputs.manual_reason,
    )
    # What the source noticed (Prometheus' own warnings) belongs with the decision's warnings.
    source_warnings = tuple(str(w) for w in samples.attrs.get("warnings", ()))
    if source_warnings:
        decision = replace(decision, warnings=decision.warnings + source_warnings)
    if args.json:
        print(json.dumps(decision.to_json_dict(), indent=2))
    else:
        print(format_decision(decision, deployed_at=inputs.deployed_at, now=now))
    return 0


def _parse_inputs(args: argparse.Namespace) -> _Inputs:
    problems: list[str] = []
    moments: dict[str, datetime | None] = {"deployed_at": None, "now": None}
    for name in moments:
        raw = getattr(args, name)
        if raw is None:
            continue
        try:
            moments[name] = parse_instant(raw)
        except ValueError as err:
            problems.append(f"--{name.replace('_', '-')}: {err}")
    raw_thresholds = {
        field: getattr(args, option.lstrip("-").replace("-", "_"))
        for option, (field, _) in _THRESHOLD_OPTIONS.items()
    }
    thresholds = Thresholds()
    try:
        thresholds = Thresholds.from_params(raw_thresholds)
    except ParameterError as err:
        by_field = {field: option for option, (field, _) in _THRESHOLD_OPTIONS.items()}
        for problem in err.problems:
            field, _, rest = problem.partition(":")
            problems.append(f"{by_field.get(field, field)}:{rest}")
    manual = args.manual
    if manual is not None and not manual.strip():
        problems.append("--manual: give the reason for the manual call (it is recorded)")
    if problems:
        raise ParameterError(problems)
    deployed_at = moments["deployed_at"]
    assert deployed_at is not None  # required by argparse
    return _Inputs(deployed_at, moments["now"], thresholds, manual)


def _load(args: argparse.Namespace, inputs: _Inputs) -> tuple[pd.DataFrame, datetime]:
    th = inputs.thresholds
    history = timedelta(seconds=max(th.business_baseline_s, th.business_smoothing_s))
    if args.metrics is not None:
        samples = ReplaySource(args.metrics).frame()
        # A replay is evaluated as of its last sample unless told otherwise: deterministic.
        now = inputs.now or samples.index[-1].to_pydatetime()
        return samples, now
    now = inputs.now or datetime.now(UTC)
    end = min(now, inputs.deployed_at + timedelta(seconds=th.window_s))
    source = _prometheus_source(args)
    step_s = th.step_s or _DEFAULT_PROMETHEUS_STEP_S
    return source.query_range(inputs.deployed_at - history, end, step_s), now


def _prometheus_source(args: argparse.Namespace) -> Any:
    try:
        from runbook_lib.adapters.prometheus import PrometheusSource
    except ImportError as err:
        raise MetricsError(
            "the Prometheus adapter (runbook_lib.adapters.prometheus) is not available in "
            "this installation; use --metrics FILE.csv",
            command=args.prometheus,
        ) from err
    problems: list[str] = []
    options: dict[str, Any] = {
        "timeout_s": args.timeout,
        "business_queries": _pairs(args.business, "--business", "NAME=PROMQL", problems),
        "business_counters": _pairs(
            args.business_counter, "--business-counter", "NAME=METRIC", problems
        ),
    }
    for name in (
        "selector",
        "request_counter",
        "latency_histogram",
        "rate_window",
        "error_ratio_query",
        "latency_query",
    ):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if problems:
        raise ParameterError(problems)
    return PrometheusSource(args.prometheus, **options)


def _pairs(items: list[str], option: str, shape: str, problems: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            problems.append(f"{option}: expected {shape}, got {item!r}")
        else:
            pairs[name.strip()] = value.strip()
    return pairs


def format_decision(decision: Decision, *, deployed_at: datetime, now: datetime) -> str:
    """The decision as a few aligned lines for a terminal: verdict, rules, warnings."""
    verdict = "ROLL BACK" if decision.rollback else "no rollback"
    lines = [
        f"Decision: {verdict}  "
        f"(deployed {deployed_at.isoformat()}, evaluated at {now.isoformat()})",
        "",
    ]
    header = ("rule", "metric", "status", "peak", "threshold", "run started", "fired at")
    fired = {(t.rule, t.metric): t for t in decision.triggers}
    rows: list[Sequence[str]] = [header]
    for check in decision.checks:
        trigger = fired.get((check.rule, check.metric))
        rows.append(
            (
                check.rule.value,
                check.metric,
                check.status.value,
                _number(trigger.peak if trigger else check.worst),
                _number(check.threshold),
                _time(trigger.started_at) if trigger else "",
                _time(trigger.fired_at) if trigger else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines.extend(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
    manual = [t.reason for t in decision.triggers if t.reason]
    lines.extend(f"manual call: {reason}" for reason in manual)
    if decision.warnings:
        lines.append("")
        lines.extend(f"warning: {w}" for w in decision.warnings)
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
