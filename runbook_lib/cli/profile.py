"""Propose a service profile from Prometheus (init), or check one (check)

A service profile describes a service once for every entry point (evaluate, run, rules,
serve). init proposes one from what a Prometheus holds for a release; check runs every query
of one against Prometheus and says what looks wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from runbook_lib.adapters.prometheus_api import PrometheusApi
from runbook_lib.adapters.prometheus_survey import observe, survey
from runbook_lib.adapters.settings_files import read_profile
from runbook_lib.cli.main import add_command, examples
from runbook_lib.core import checks, profile_check, profile_init
from runbook_lib.core.exit_status import BAD_INPUT, FAILED, OK, UNREACHABLE
from runbook_lib.core.kinds import Entry, read_duration
from runbook_lib.core.settings import from_flat
from runbook_lib.errors import MetricsError, ParameterError

__all__ = ["register"]

_INIT_EXAMPLE = (
    "runbook profile init --prometheus-url http://127.0.0.1:9090 --release shop \\\n"
    "    --namespace prod -o shop.yaml"
)
_CHECK_EXAMPLES = (
    "runbook profile check shop.yaml --prometheus-url http://prometheus.monitoring:9090",
    "runbook profile check shop.yaml --since 1h --strict   # the profile's prometheus_url",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # init writes annotated YAML (core.profile_init) for a person to review; check judges what
    # each query returns (core.profile_check). Exit statuses: core/exit_status.py.
    parser = add_command(
        subparsers, "profile", __doc__, epilog=examples(_INIT_EXAMPLE, *_CHECK_EXAMPLES)
    )
    commands = parser.add_subparsers(dest="profile_command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check",
        help="Run every query of a profile against Prometheus and judge what it returns",
        description=(
            "Run each signal's query (5xx ratio, p99 latency, each business query) over a "
            "recent window and say, per signal: the series it returns (one aggregate "
            "expected), its last value and range, and what looks wrong: a ratio outside "
            "0..1, a latency in seconds that reads like milliseconds (or the reverse), a "
            "metric that does not exist, a selector that matches nothing, a rate window "
            "under four scrape intervals. Exit 0 good, 1 warnings (--strict only), 2 bad "
            "profile, 7 Prometheus cannot be read."
        ),
        epilog=examples(*_CHECK_EXAMPLES),
    )
    check.add_argument("profile", metavar="FILE", help="the service profile (YAML)")
    check.add_argument(
        "--prometheus-url", metavar="URL", help="default: the profile's prometheus_url"
    )
    check.add_argument("--since", metavar="DURATION", default="10m", help="how far back to look")
    check.add_argument(
        "--step", metavar="DURATION", help="sample spacing (default: the profile's step, or 15s)"
    )
    check.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    check.add_argument("--json", action="store_true", help="print the findings as JSON")
    check.set_defaults(func=run_check)

    init = commands.add_parser(
        "init",
        help="Propose a profile for a release from what Prometheus holds",
        description=(
            "Look at a Prometheus' metric names, metadata and labels, recognise the naming "
            "convention of the release's requests (prometheus-client, otel, istio, "
            "nginx-ingress, linkerd), pick the labels that select the release, and write a "
            "profile annotated with what was found and what a person must review (business "
            "metrics are proposed as comments). Exit 0 written, 1 written but no convention "
            "recognised, 2 bad options or the file exists, 7 Prometheus cannot be read."
        ),
        epilog=examples(_INIT_EXAMPLE),
    )
    init.add_argument("--prometheus-url", metavar="URL", required=True, help="Prometheus")
    init.add_argument("--release", metavar="NAME", required=True, help="Helm release name")
    init.add_argument(
        "--namespace", metavar="NAME", default="", help="its namespace (default: not matched)"
    )
    init.add_argument(
        "--since", metavar="DURATION", default="10m", help="look at series seen this recently"
    )
    init.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    init.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    init.set_defaults(func=run_init)


def _duration(option: str, text: str, problems: list[str]) -> float:
    try:
        seconds = read_duration(text)
    except ValueError as err:
        problems.append(f"{option}: {err}")
        return 0.0
    if seconds <= 0:
        problems.append(f"{option}: must be longer than 0 s")
    return seconds


def run_check(args: argparse.Namespace) -> int:
    """Check a profile's queries. Raises ``ParameterError`` (exit 2) for a profile that does
    not load and for bad options; returns the exit status otherwise."""
    profile = read_profile(args.profile)
    problems = list(profile.problems)
    settings = None
    if not problems:
        try:
            settings = from_flat({}, used_by=Entry.RULES, profile=profile)
        except ParameterError as err:
            problems.extend(err.problems)
    url = args.prometheus_url or str(profile.values.get("prometheus_url") or "")
    if not url:
        problems.append("--prometheus-url: required (the profile gives no prometheus_url)")
    elif problem := checks.http_url(url):
        problems.append(f"--prometheus-url: {problem}")
    since = _duration("--since", args.since, problems)
    step = _duration("--step", args.step, problems) if args.step else None
    if problems or settings is None:
        raise ParameterError(problems)
    step = step or settings.sources.prometheus_step
    end = time.time()
    api = PrometheusApi(url)
    probes = profile_check.probes(settings.metrics)
    try:
        observed = observe(api, probes, start_s=end - since, end_s=end, step_s=step)
    except MetricsError as err:
        return _unreachable("check", err)
    report = profile_check.judge(observed)
    if args.json:
        document = {
            "profile": args.profile,
            "prometheus_url": url,
            "since_s": since,
            "step_s": step,
            "worst": report.worst.value if report.worst else None,
            "signals": [s.to_json_dict() for s in report.signals],
        }
        print(json.dumps(document, indent=2))
    else:
        print(profile_check.render(report, source=args.profile, url=url, window=args.since))
    if report.worst is profile_check.Severity.PROBLEM:
        return BAD_INPUT
    if report.worst is profile_check.Severity.WARNING and args.strict:
        return FAILED
    return OK


def run_init(args: argparse.Namespace) -> int:
    """Propose a profile. Raises ``ParameterError`` (exit 2) for bad options or an existing
    output file without ``--force``; returns the exit status otherwise."""
    problems = [
        f"--{name}: {found}"
        for name, found in (
            ("release", checks.release_name(args.release)),
            ("namespace", checks.namespace_name(args.namespace) if args.namespace else None),
            ("prometheus-url", checks.http_url(args.prometheus_url)),
        )
        if found
    ]
    since = _duration("--since", args.since, problems)
    if args.output and Path(args.output).exists() and not args.force:
        problems.append(f"--output: {args.output} exists (--force overwrites it)")
    if problems:
        raise ParameterError(problems)
    end = time.time()
    api = PrometheusApi(args.prometheus_url)
    try:
        found = survey(
            api,
            release=args.release,
            namespace=args.namespace,
            start_s=end - since,
            end_s=end,
        )
    except MetricsError as err:
        return _unreachable("init", err)
    proposal = profile_init.propose(found, release=args.release, namespace=args.namespace)
    at = datetime.fromtimestamp(end, UTC).isoformat(timespec="seconds")
    command = f"runbook profile init --release {args.release}" + (
        f" --namespace {args.namespace}" if args.namespace else ""
    )
    text = profile_init.render(proposal, command=command, at=at)
    if args.output:
        _write(Path(args.output), text, force=args.force)
        where = args.output
    else:
        sys.stdout.write(text)
        where = "stdout"
    if not proposal.complete:
        print(
            f"runbook profile init: wrote {where}, but recognised no naming convention for "
            f"release {args.release}: give its queries by hand (see the file's comments)",
            file=sys.stderr,
        )
        return FAILED
    print(
        f"runbook profile init: wrote {where} (preset {proposal.preset}); review the lines "
        "marked REVIEW, then run: runbook profile check FILE",
        file=sys.stderr,
    )
    return OK


def _write(path: Path, text: str, *, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError as err:  # created meanwhile
        raise ParameterError([f"--output: {path} exists (--force overwrites it)"]) from err
    except OSError as err:
        raise ParameterError([f"--output: cannot write {path}: {err.strerror}"]) from err
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def _unreachable(command: str, err: MetricsError) -> int:
    print(f"runbook profile {command}: {err}", file=sys.stderr)
    return UNREACHABLE
