"""``runbook rules``: a Prometheus rule file that raises the runbook's triggers as alerts.

    runbook rules --release app --namespace default [--prometheus-selector 'job="api"']
        [--business-counters orders=orders_total] [thresholds] [--output FILE]

Recording rules for the 5xx ratio, the p99 latency and each business metric (the PromQL of
``runbook evaluate --prometheus``), and one alerting rule per trigger with the runbook's
thresholds and sustain (``core.alert_rules`` says how ``for:`` matches "longer than").
Check the file with ``promtool check rules FILE``. Exit 0 written, 2 bad parameters.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from runbook_lib.core.alert_rules import AlertRulesSpec, render_rule_file
from runbook_lib.core.parameters import by_name, parse_value
from runbook_lib.core.promql import QuerySpec
from runbook_lib.core.thresholds import Thresholds
from runbook_lib.errors import ParameterError

__all__ = ["build_spec", "register", "run"]

# Vocabulary parameters this command takes (core/parameters.py: names, help, defaults).
_QUERY_PARAMETERS = ("prometheus_selector", "prometheus_rate_window", "business_counters")
_THRESHOLD_PARAMETERS = (
    "error_ratio",
    "latency_p99",
    "sustain",
    "business_drop",
    "business_baseline",
    "business_smoothing",
)
_PARAMETERS = ("release", "namespace", *_QUERY_PARAMETERS, *_THRESHOLD_PARAMETERS, "step")
# The engine's default spacing of Prometheus samples (runbook evaluate --prometheus).
DEFAULT_STEP = "15s"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rules",
        help="write Prometheus recording and alerting rules for a release's triggers",
        description=(
            "Write a Prometheus rule file: recording rules for the 5xx ratio, p99 latency and "
            "business metrics (the queries of runbook evaluate --prometheus) and an alert per "
            '"When to Rollback" trigger. Check it with promtool check rules. Exit 2 on bad '
            "parameters."
        ),
    )
    for name in _PARAMETERS:
        parameter = by_name(name)
        default = parameter.default if name != "step" else DEFAULT_STEP
        text = f"{parameter.help} (default: {default})" if default != "" else parameter.help
        if name == "step":
            text = f"rule evaluation interval: the recorded series' spacing (default {default})"
        parser.add_argument(parameter.option, dest=name, metavar="VALUE", help=_escape(text))
    parser.add_argument(
        "--request-counter", metavar="METRIC", help="request counter (default: http_requests_total)"
    )
    parser.add_argument(
        "--latency-histogram",
        metavar="METRIC",
        help="latency histogram (default: http_request_duration_seconds)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    parser.set_defaults(func=run)


def _escape(text: str) -> str:
    return text.replace("%", "%%")


def build_spec(given: dict[str, Any]) -> AlertRulesSpec:
    """The rule file's spec from option values (text as typed; ``None`` means the default).

    Raises ``ParameterError`` naming every bad option at once.
    """
    problems: list[str] = []
    values: dict[str, Any] = {}
    for name in _PARAMETERS:
        parameter = by_name(name)
        raw = given.get(name)
        if raw is None:
            raw = DEFAULT_STEP if name == "step" else parameter.default
        try:
            values[name] = parse_value(parameter, raw)
        except (ValueError, TypeError) as err:
            problems.append(f"{parameter.option}: {err}")
    counters = _counters(str(values.get("business_counters") or ""), problems)
    if problems:
        raise ParameterError(problems)
    query_fields: dict[str, Any] = {
        "selector": values["prometheus_selector"],
        "rate_window": values["prometheus_rate_window"],
        "business_counters": counters,
    }
    for name in ("request_counter", "latency_histogram"):
        if given.get(name) is not None:
            query_fields[name] = given[name]
    try:
        queries = QuerySpec(**query_fields)
        thresholds = Thresholds(**{name: values[name] for name in _THRESHOLD_PARAMETERS})
        return AlertRulesSpec(
            release=values["release"],
            namespace=values["namespace"],
            queries=queries,
            thresholds=thresholds,
            step=values["step"],
        )
    except ParameterError as err:
        raise ParameterError([_option_name(p) for p in err.problems]) from err


def _counters(text: str, problems: list[str]) -> dict[str, str]:
    counters: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, metric = item.partition("=")
        if not sep or not name.strip() or not metric.strip():
            problems.append(f"--business-counters: expected NAME=COUNTER, got {item!r}")
        else:
            counters[name.strip()] = metric.strip()
    return counters


def _option_name(problem: str) -> str:
    # QuerySpec / Thresholds name their fields; say which option to change instead.
    renames = {"selector": "prometheus_selector", "rate_window": "prometheus_rate_window"}
    field, sep, rest = problem.partition(":")
    name = renames.get(field, field.split("[")[0])
    if sep and name in {*_PARAMETERS, "request_counter", "latency_histogram"}:
        return "--" + name.replace("_", "-") + field[len(field.split("[")[0]) :] + ":" + rest
    return problem


def run(args: argparse.Namespace) -> int:
    """Write the rule file (stdout or ``--output``). Returns 0; bad options raise (exit 2)."""
    spec = build_spec(vars(args))
    text = render_rule_file(spec)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"rules: wrote {args.output} (check: promtool check rules {args.output})")
    else:
        sys.stdout.write(text)
    return 0
