"""Write Prometheus recording and alerting rules for a release's triggers

Write a Prometheus rule file: recording rules for the 5xx ratio, the p99 latency and each
business metric (the queries of runbook evaluate --prometheus-url with the same settings or
--profile), and one alerting rule per "When to Rollback" trigger with the runbook's thresholds
and sustain, evaluated every --step (default 15s). Check the file with promtool check rules.
Exit 0 written, 2 bad parameters.

examples:
  runbook rules --profile shop.yaml -o shop-rules.yml && promtool check rules shop-rules.yml
  runbook rules --release app --prometheus-selector 'job="api"' --sustain 3m
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runbook_lib.adapters.settings_files import load_settings
from runbook_lib.cli.main import add_command
from runbook_lib.cli.setting_options import add_setting_options, as_options, given_options
from runbook_lib.core.kinds import Entry
from runbook_lib.errors import ParameterError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # core.alert_rules says how an alert's for: matches the runbook's "longer than".
    usage = "%(prog)s (--profile FILE | --release NAME [--namespace NAME]) [options] [-o FILE]"
    parser = add_command(subparsers, "rules", __doc__, usage=usage)
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
