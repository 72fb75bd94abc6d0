"""``runbook rules``: a Prometheus rule file that raises the runbook's triggers as alerts.

    runbook rules --profile shop.yaml [--output FILE]
    runbook rules --release app --namespace default [--prometheus-selector 'job="api"']
        [--business-counters orders=orders_total] [thresholds] [--output FILE]

Recording rules for the 5xx ratio, the p99 latency and each business metric (the PromQL of
``runbook evaluate --prometheus-url`` with the same settings, a profile's included), and one
alerting rule per trigger with the runbook's thresholds and sustain (``core.alert_rules`` says
how ``for:`` matches "longer than"). Check the file with ``promtool check rules FILE``. Exit 0
written, 2 bad parameters.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runbook_lib.adapters.settings_files import load_settings
from runbook_lib.cli.main import examples
from runbook_lib.cli.setting_options import add_setting_options, as_options, given_options
from runbook_lib.core.kinds import Entry
from runbook_lib.errors import ParameterError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rules",
        help="write Prometheus recording and alerting rules for a release's triggers",
        usage="%(prog)s (--profile FILE | --release NAME [--namespace NAME]) [options] [-o FILE]",
        description=(
            "Write a Prometheus rule file: recording rules for the 5xx ratio, p99 latency and "
            "business metrics (the queries of runbook evaluate with the same settings or "
            '--profile) and an alert per "When to Rollback" trigger, evaluated every --step '
            "(default 15s). Check it with promtool check rules. Exit 2 on bad parameters."
        ),
        epilog=examples(
            "runbook rules --profile shop.yaml -o shop-rules.yml && "
            "promtool check rules shop-rules.yml",
            "runbook rules --release app --prometheus-selector 'job=\"api\"' --sustain 3m",
        ),
    )
    add_setting_options(parser, Entry.RULES)
    parser.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the rule file (stdout or ``--output``). Returns 0; bad options raise (exit 2)."""
    # Here, not at the top: the rules read the decision engine's constants, which load pandas,
    # and building the parser must not.
    from runbook_lib.core.alert_rules import render_rule_file

    try:
        settings = load_settings(given_options(args, Entry.RULES), used_by=Entry.RULES)
    except ParameterError as err:
        raise ParameterError([as_options(p, Entry.RULES) for p in err.problems]) from err
    text = render_rule_file(settings)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"rules: wrote {args.output} (check: promtool check rules {args.output})")
    else:
        sys.stdout.write(text)
    return 0
