"""Evidence of a run whose notebook stopped at a failing step, gathered from outside the kernel.

``runbook run`` calls ``collect_after_failure`` with the notebook's parameters when papermill
reports a failed cell: the kernel is gone, but the incident timeline on disk says what was done,
so the record, the bundle and the manifest can still be written.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runbook_lib.core.redact import Redactor
from runbook_lib.errors import ParameterError, RunbookError
from runbook_lib.evidence import record as incident_record
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.params import RunParams, build_params
from runbook_lib.steps.post import EvidenceWritten, _build_record, _collect, _seal
from runbook_lib.timeline import Timeline

__all__ = ["collect_after_failure", "run_params_from_notebook"]


# The rollback notebook's flat parameters that are not ``RunParams`` fields of the same name.
_NOTEBOOK_THRESHOLDS = {
    "error_ratio_threshold": "error_ratio",
    "latency_p99_threshold_s": "latency_p99_s",
    "sustain_s": "sustain_s",
    "window_s": "window_s",
    "business_drop": "business_drop",
    "business_smoothing_s": "business_smoothing_s",
    "recovery_error_ratio": "recovery_error_ratio",
    "recovery_within_s": "recovery_within_s",
}
_NOTEBOOK_RENAMED = {"evaluate_at": "now"}
_NOTEBOOK_ONLY = ("root_cause_hypothesis", "request_rate_rps", "fix_forward_repo",
                  "postmortem_organizer")  # fmt: skip


def run_params_from_notebook(notebook_params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``start_run`` arguments the rollback notebook builds from its flat parameters.

    Mirrors the notebook's validation cell (empty text means "not given"), so ``runbook run``
    can reopen a failed run's incident from outside the kernel.
    """
    fields_ = {f.name: f for f in dataclasses.fields(RunParams)}
    params: dict[str, Any] = {}
    thresholds: dict[str, Any] = {}
    for name, value in notebook_params.items():
        if name in _NOTEBOOK_THRESHOLDS:
            thresholds[_NOTEBOOK_THRESHOLDS[name]] = value
            continue
        if name in _NOTEBOOK_ONLY:
            continue
        target = _NOTEBOOK_RENAMED.get(name, name)
        if target in fields_ and isinstance(value, Path):
            value = str(value)
        if value == "" and target in fields_ and fields_[target].default is None:
            value = None
        params[target] = value
    if thresholds:
        params["thresholds"] = thresholds
    counter = params.pop("business_counter", "")
    name = params.pop("business_metric", "")
    params["business_counters"] = {name: counter} if counter else {}
    return params


def collect_after_failure(
    notebook_params: Mapping[str, Any], *, environ: Mapping[str, str] | None = None
) -> EvidenceWritten:
    """Gather the evidence of a run whose notebook stopped at a failing step.

    Called by ``runbook run`` outside the kernel with the notebook's parameters: reopens the
    incident's timeline, writes the record (outcome from the timeline) and the bundle, and
    re-seals the manifest. Every source is best effort. Raises ``ParameterError`` when the
    parameters are invalid.
    """
    validated = build_params(run_params_from_notebook(notebook_params))
    if not validated.incident_id:
        raise ParameterError(["incident_id: needed to find the failed run's timeline"])
    redact = Redactor.build(
        secrets=(validated.slack_webhook_url,), env=os.environ if environ is None else environ
    )
    path = Path(validated.output_dir) / validated.incident_id / "timeline.jsonl"
    ctx = RunContext(params=validated, timeline=Timeline(path, redact=redact), redact=redact)
    report = _collect(ctx)
    problems = list(report.problems)
    rate = notebook_params.get("request_rate_rps")
    try:
        record = _build_record(
            ctx,
            root_cause_hypothesis=str(notebook_params.get("root_cause_hypothesis") or ""),
            request_rate_rps=float(rate) if isinstance(rate, int | float) and rate > 0 else None,
        )
        incident_record.write_record(record, ctx.incident_dir, redact=redact)
    except RunbookError as err:
        problems.append(f"incident record: {type(err).__name__}: {err}")
    _seal(ctx)
    return EvidenceWritten(ctx.incident_dir, report.written, tuple(problems))
