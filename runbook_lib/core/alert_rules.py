"""Prometheus rules for one release: "When to Rollback" as recording and alerting rules (pure).

Used by ``runbook rules`` (alert-driven runs: the alert starts an assessment, the engine in
``core.decision`` still decides, with the deploy window and its exact semantics). The rules are
built from the same ``Settings`` as every run (a profile's included), so Prometheus and the
notebook judge the same series with the same thresholds.

The recording rules evaluate the very PromQL ``runbook evaluate --prometheus`` reads
(``core.promql.build_queries``), labelled with the release and namespace, every ``step``
seconds (the rule group's interval: the recorded series' sample spacing, like the engine's
step). The alerting rules then compare those series with the runbook's thresholds:

- breach: ``value > threshold`` (strict, as in the engine: exactly 1% is not a breach; a NaN
  sample, e.g. 0/0 with no traffic, is not a breach either and ends the run);
- sustain: the engine fires when a run of breaching samples lasts *strictly longer* than
  ``sustain``. Prometheus' ``for:`` fires once ``eval_time - active_since >= for``, and a run
  of evaluations lasts a whole number of intervals, so ``for:`` is the smallest multiple of
  the interval strictly greater than ``sustain`` (``hold_duration``): 2m sustain at 15s gives
  ``for: 135s``. A breach lasting exactly the sustain stays pending; one evaluation more fires,
  at the same sample the engine fires on. A gap (an evaluation where the recorded series is
  absent or stale) drops the pending alert, as a missing sample ends the engine's run.
- business drop: the 5-minute mean of the metric below ``(1 - drop)`` times its mean over the
  30 minutes before that (``offset``). Prometheus does not know when the release was deployed,
  so this baseline slides; the alert is the reason to assess, and the engine decides with the
  baseline before the deploy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from runbook_lib.core.decision import BUSINESS_TOLERANCE, Rule
from runbook_lib.core.promql import BUSINESS_PREFIX, ERROR_RATIO, P99_LATENCY, build_queries
from runbook_lib.core.settings import Settings

__all__ = [
    "ALERT_NAMES",
    "RECORD_PREFIX",
    "hold_duration",
    "promql_duration",
    "recorded_name",
    "render_rule_file",
    "rule_groups",
]

RECORD_PREFIX = "runbook:"
# Alert name per rule of "When to Rollback"; the receiver maps them back (label runbook_rule).
ALERT_NAMES: Mapping[Rule, str] = {
    Rule.ERROR_RATE: "RunbookErrorRatioHigh",
    Rule.LATENCY_P99: "RunbookLatencyP99High",
    Rule.BUSINESS: "RunbookBusinessDrop",
}


def promql_duration(seconds: float) -> str:
    """A PromQL duration of whole milliseconds, largest units first: ``2m15s``, ``1500ms``."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def hold_duration(sustain: float, step: float) -> float:
    """``for:`` in seconds: the smallest multiple of ``step`` strictly greater than ``sustain``.

    Prometheus fires when the alert has been active for ``>= for``; evaluations are ``step``
    apart, so this fires exactly when a run has lasted longer than ``sustain`` (the engine's
    rule). Computed in whole milliseconds so 120 s at 15 s is 135 s, not 134.99999.
    """
    sustain_ms, step_ms = round(sustain * 1000), round(step * 1000)
    return ((sustain_ms // step_ms) + 1) * step_ms / 1000


def recorded_name(column: str) -> str:
    """The recorded series for a column of the metric frame (``error_ratio`` -> ``runbook:...``)."""
    if column == ERROR_RATIO:
        return f"{RECORD_PREFIX}error_ratio"
    if column == P99_LATENCY:
        return f"{RECORD_PREFIX}p99_latency_seconds"
    if column.startswith(BUSINESS_PREFIX):
        return f"{RECORD_PREFIX}business:{column.removeprefix(BUSINESS_PREFIX)}"
    raise ValueError(f"not a column of the metric frame: {column!r}")


def _number(value: float) -> str:
    # repr() is the shortest text that reads back as the same float: 0.01 stays 0.01.
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _percent(value: float) -> str:
    return f"{value * 100:g}%"


def rule_groups(settings: Settings) -> dict[str, Any]:
    """The rule file as data: one group, recording rules first (same evaluation, same time).

    From the settings' release (``target``), queries (``metrics``), thresholds (``rules``) and
    evaluation interval (``sources.prometheus_step``).
    """
    release, namespace = settings.target.release, settings.target.namespace
    step = settings.sources.prometheus_step
    labels = {"release": release, "namespace": namespace}
    matchers = f'{{release="{release}",namespace="{namespace}"}}'
    queries = build_queries(settings.metrics)
    rules: list[dict[str, Any]] = [
        {"record": recorded_name(column), "expr": query, "labels": dict(labels)}
        for column, query in queries.items()
    ]
    th = settings.rules
    hold = promql_duration(hold_duration(th.sustain, step))
    sustain = promql_duration(th.sustain)
    target = f"release {release} (namespace {namespace})"
    command = f"runbook run rollback -p release {release} -p namespace {namespace}"

    def alert(rule: Rule, column: str, expr: str, hold_for: str | None, summary: str) -> None:
        entry: dict[str, Any] = {"alert": ALERT_NAMES[rule], "expr": expr}
        if hold_for is not None:
            entry["for"] = hold_for
        entry["labels"] = {**labels, "runbook": "rollback", "runbook_rule": rule.value}
        entry["labels"]["metric"] = column
        entry["annotations"] = {
            "summary": summary,
            "value": '{{ $value | printf "%.4g" }}',
            "runbook": command,
        }
        rules.append(entry)

    alert(
        Rule.ERROR_RATE,
        ERROR_RATIO,
        f"{recorded_name(ERROR_RATIO)}{matchers} > {_number(th.error_ratio)}",
        hold,
        f"5xx ratio above {_percent(th.error_ratio)} for longer than {sustain} in {target}",
    )
    alert(
        Rule.LATENCY_P99,
        P99_LATENCY,
        f"{recorded_name(P99_LATENCY)}{matchers} > {_number(th.latency_p99)}",
        hold,
        f"p99 latency above {th.latency_p99:g} s for longer than {sustain} in {target}",
    )
    factor = (1.0 - th.business_drop) * (1.0 - BUSINESS_TOLERANCE)
    smoothing = promql_duration(th.business_smoothing)
    baseline = promql_duration(th.business_baseline)
    for column in queries:
        if not column.startswith(BUSINESS_PREFIX):
            continue
        name = recorded_name(column)
        alert(
            Rule.BUSINESS,
            column,
            f"avg_over_time({name}{matchers}[{smoothing}]) < {_number(factor)} * "
            f"avg_over_time({name}{matchers}[{baseline}] offset {smoothing})",
            None,
            f"{column.removeprefix(BUSINESS_PREFIX)} down more than "
            f"{_percent(th.business_drop)} ({smoothing} mean against the {baseline} before) "
            f"in {target}",
        )
    group = {
        "name": f"runbook-rollback-{namespace}-{release}",
        "interval": promql_duration(step),
        "rules": rules,
    }
    return {"groups": [group]}


def render_rule_file(settings: Settings) -> str:
    """The rule file as YAML text, with a header saying what generated it and how to check it."""
    release, namespace = settings.target.release, settings.target.namespace
    header = (
        f"# Prometheus rules for release {release} (namespace {namespace}), "
        "generated by `runbook rules`.\n"
        "# The alert starts an assessment; the runbook's engine decides (deploy window "
        "included).\n# Check: promtool check rules FILE\n"
    )
    body = yaml.safe_dump(rule_groups(settings), sort_keys=False, width=1000)
    return header + body
