r"""Apply "When to Rollback" to recorded or live metrics

Apply the runbook's "When to Rollback" rules to a replay CSV or to Prometheus. A service
profile (--profile) gives the service's settings; options given override it. Durations need a
unit (90s, 2m), ratios are 1% or 0.01. Exit 0 evaluated, 1 the metrics cannot be read, 2 bad
input (every invalid option, or the file, row and column of a malformed replay); with
--exit-status: 0 no rollback, 3 roll back, 4 inconclusive.

examples:
  runbook evaluate --prometheus-url http://127.0.0.1:9090 --profile shop.yaml \
      --deployed-at 2026-11-20T14:00:00Z --json
  runbook evaluate --replay-csv notebooks/data/bad_deploy.csv \
      --deployed-at 2026-11-20T14:00:00+00:00 --sustain 3m
"""

from __future__ import annotations

import argparse
import json
import sys

from runbook_lib.cli.main import add_command
from runbook_lib.cli.setting_options import add_setting_options, as_options, given_options
from runbook_lib.core.exit_status import BAD_INPUT, OK, exit_status_for
from runbook_lib.core.kinds import Entry
from runbook_lib.errors import InputFileError, ParameterError

__all__ = ["register", "run"]

# Earlier spellings: still accepted, hidden from --help, with a deprecation warning.
_ALIASES = {
    "replay_csv": ("--metrics",),
    "prometheus_url": ("--prometheus",),
    "prometheus_selector": ("--selector",),
    "prometheus_rate_window": ("--rate-window",),
    "manual_reason": ("--manual",),
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # The options are the settings of core.settings (the notebooks' names with dashes).
    usage = (
        "%(prog)s (--replay-csv FILE | --prometheus-url URL) --deployed-at TIME\n"
        "       [--profile FILE] [--json] [--exit-status] [options]"
    )
    parser = add_command(subparsers, "evaluate", __doc__, usage=usage)
    add_setting_options(parser, Entry.EVALUATE, aliases=_ALIASES)
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    parser.add_argument(
        "--exit-status",
        action="store_true",
        help="exit by verdict: 0 no rollback, 3 roll back, 4 inconclusive",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the decision.

    Raises ``ParameterError`` (exit 2 via ``main``) listing every invalid option (and every
    problem of the profile, by key and line), and ``MetricsError`` (exit 1) when Prometheus
    cannot be read.
    """
    # Here, not at the top: pandas and matplotlib would slow down every `runbook --help`.
    from runbook_lib import assessment

    try:
        settings = assessment.check_settings(
            given_options(args, Entry.EVALUATE), used_by=Entry.EVALUATE
        )
    except ParameterError as err:
        raise ParameterError([as_options(p, Entry.EVALUATE) for p in err.problems]) from err
    try:
        window = assessment.read_window(settings)
    except InputFileError as err:
        print(f"runbook evaluate: bad input: {err}", file=sys.stderr)
        return BAD_INPUT
    decision = assessment.decide(settings, window)
    if args.json:
        print(json.dumps(decision.to_json_dict(), indent=2))
    else:
        print(assessment.render(decision, window))
        print()
        print(assessment.decision_table(decision).to_string())
    return exit_status_for(decision.verdict) if args.exit_status else OK
