"""``runbook evaluate``: the "When to Rollback" decision on a replay file or a live Prometheus.

    runbook evaluate --replay-csv FILE.csv --deployed-at TIME [--now TIME] [--json] [rules...]
    runbook evaluate --prometheus-url URL --deployed-at TIME [--now TIME] [--json] [rules...]

Options are the parameters of ``core.parameters`` (the notebooks' names with dashes).
Exit status: 0 when evaluated, 2 for bad input (every invalid option, or the file, row and
column of a malformed replay), 1 when the metrics cannot be read. With ``--exit-status`` the
verdict also sets it: 0 no rollback, 3 roll back, 4 inconclusive.
"""

from __future__ import annotations

import argparse
import json
import sys

from runbook_lib.core import parameters as table
from runbook_lib.core.exit_status import BAD_INPUT, OK, exit_status_for
from runbook_lib.errors import InputFileError, ParameterError

__all__ = ["register", "run"]

# Earlier spellings, still accepted.
_ALIASES = {
    "replay_csv": ("--metrics",),
    "prometheus_url": ("--prometheus",),
    "prometheus_selector": ("--selector",),
    "prometheus_rate_window": ("--rate-window",),
    "manual_reason": ("--manual",),
}


def _help(parameter: table.Parameter) -> str:
    default = parameter.default
    shown = f" (default {default})" if default not in ("", None) else ""
    return parameter.help.replace("%", "%%") + shown.replace("%", "%%")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help='apply "When to Rollback" to recorded or live metrics',
        description=(
            'Apply the runbook\'s "When to Rollback" rules to a replay CSV (--replay-csv) or to '
            "a Prometheus server (--prometheus-url). Durations need a unit (90s, 2m), ratios "
            "are 1% or 0.01. Exit 0 when evaluated, 1 when the metrics cannot be read, 2 on "
            "bad input; with --exit-status: 0 no rollback, 3 roll back, 4 inconclusive."
        ),
    )
    for parameter in table.PARAMETERS:
        if table.EVALUATE not in parameter.used_by:
            continue
        underscored = "--" + parameter.name
        names = [parameter.option, *_ALIASES.get(parameter.name, ())]
        if underscored != parameter.option:
            names.append(underscored)
        parser.add_argument(
            *names, dest=parameter.name, metavar="VALUE", default=None, help=_help(parameter)
        )
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    parser.add_argument(
        "--exit-status",
        action="store_true",
        help="exit by verdict: 0 no rollback, 3 roll back, 4 inconclusive (2 stays bad input)",
    )
    parser.set_defaults(func=run)


def _as_options(problem: str) -> str:
    """A problem ("sustain: ...", "a / b: ...") named by its options, as the person typed them."""
    names, sep, rest = problem.partition(":")
    known = {p.name: p.option for p in table.PARAMETERS if table.EVALUATE in p.used_by}
    parts = [part.strip() for part in names.split("/")]
    if not sep or not all(part in known for part in parts):
        return problem
    return " / ".join(known[part] for part in parts) + sep + rest


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the decision.

    Raises ``ParameterError`` (exit 2 via ``main``) listing every invalid option, and
    ``MetricsError`` (exit 1) when Prometheus cannot be read.
    """
    # Here, not at the top: pandas and matplotlib would slow down every `runbook --help`.
    from runbook_lib import assessment

    raw = {
        p.name: getattr(args, p.name)
        for p in table.PARAMETERS
        if table.EVALUATE in p.used_by and getattr(args, p.name) is not None
    }
    try:
        params = assessment.check_params(raw, used_by=table.EVALUATE)
    except ParameterError as err:
        raise ParameterError([_as_options(problem) for problem in err.problems]) from err
    assert params.deployed_at is not None  # check_params requires it
    try:
        window = assessment.load_window(
            params, assessment.metrics_source(params), deployed_at=params.deployed_at
        )
    except InputFileError as err:
        print(f"runbook evaluate: bad input: {err}", file=sys.stderr)
        return BAD_INPUT
    decision = assessment.decide(params, window)
    if args.json:
        print(json.dumps(decision.to_json_dict(), indent=2))
    else:
        print(assessment.render(decision, window))
        print()
        print(assessment.decision_table(decision).to_string())
    return exit_status_for(decision.verdict) if args.exit_status else OK
