"""Run the standard game-day scenarios against your chart, profile and notebook

Runs the standard game-day scenarios (a bad deploy rolled back, a healthy one left alone,
metrics down, two runs at once, a run killed mid-rollback, a helm rollback cut off and left
pending, the evidence disk full, helm hanging, the wrong cluster) against your chart, profile
and notebook copy, each on a fresh release in its own namespace of the local sandbox (started
if it is not running; docs/HARNESS.md). Prints a progress line per scenario, then the Markdown
report: one row each with what was expected, what was seen, the time and the evidence folder.
Exit status: 0 only when every scenario held; 1 otherwise (a skipped one did not hold); 2 bad input.

example:
  runbook gameday --chart chart --profile profile.yaml --notebook rollback.ipynb \\
      --junit gameday.xml
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook_lib.cli.main import add_command

__all__ = ["SCENARIOS", "Row", "main", "markdown", "register"]

# The scenarios are a pytest module (runbook_sandbox.gameday_scenarios) run through the plugin
# on the sandbox named by the environment: pytest writes the JUnit XML, and a small reporter
# prints a progress line per scenario and the Markdown report.
# The scenarios in the order they run: the test's name without ``test_``.
SCENARIOS = (
    "bad_deploy_rolled_back",
    "healthy_deploy_left_alone",
    "metrics_down_changes_nothing",
    "two_runs_at_once_roll_back_once",
    "killed_mid_rollback_rerun_finishes_within_a_minute",
    "helm_cut_off_rerun_finishes_the_rollback",
    "evidence_disk_full_refused_before_any_change",
    "helm_hanging_killed_lock_freed",
    "wrong_cluster_refused",
)


@dataclass
class Row:
    """One scenario's line in the report."""

    name: str
    held: bool = False
    status: str = "not run"
    expected: str = ""
    seen: str = ""
    seconds: float = 0.0
    evidence: str = ""


@dataclass
class Reporter:
    """A pytest plugin object: collects a row per scenario and prints a progress line."""

    total: int
    out: Any = field(default_factory=lambda: sys.stdout)
    rows: dict[str, Row] = field(default_factory=dict)
    began: dict[str, float] = field(default_factory=dict)

    def _row(self, nodeid: str) -> Row:
        name = nodeid.rsplit("::", 1)[-1].removeprefix("test_")
        return self.rows.setdefault(name, Row(name))

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.began[nodeid] = time.monotonic()
        row = self._row(nodeid)
        print(f"[{len(self.rows)}/{self.total}] {row.name} ...", file=self.out, flush=True)

    def pytest_runtest_logreport(self, report: Any) -> None:
        row = self._row(report.nodeid)
        for key, value in report.user_properties:
            setattr(row, key, str(value))
        failed = report.failed or report.skipped
        if failed and row.status == "not run":
            crash = getattr(report.longrepr, "reprcrash", None)
            why = crash.message if crash is not None else str(report.longrepr)
            if report.skipped and isinstance(report.longrepr, tuple):
                why = str(report.longrepr[2])
            word = "skipped" if report.skipped else "FAILED"
            row.status = f"{word} ({report.when}): " + why.splitlines()[0][:300]
            row.held = False
        elif report.when == "call" and report.passed:
            row.status, row.held = "held", True
        if report.when == "teardown":
            row.seconds = time.monotonic() - self.began.get(report.nodeid, time.monotonic())
            line = "held" if row.held else row.status
            print(f"    {row.name}: {line} ({row.seconds:.0f} s)", file=self.out, flush=True)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(rows: list[Row], *, chart: Path, profile: Path, total_s: float) -> str:
    held = sum(r.held for r in rows)
    lines = [
        "# Game day",
        "",
        f"Chart `{chart}`, profile `{profile}`: {held} of {len(rows)} scenarios held "
        f"in {total_s:.0f} s.",
        "",
        "| Scenario | Held | Expected | Seen | Time | Evidence |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        seen = r.seen if r.held else "; ".join(p for p in (r.status, r.seen) if p)
        lines.append(
            f"| {r.name} | {'yes' if r.held else '**no**'} | {_cell(r.expected)} | "
            f"{_cell(seen)} | {r.seconds:.0f} s | {_cell(r.evidence)} |"
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    try:
        import pytest
    except ModuleNotFoundError:
        print("runbook gameday: the scenarios run with pytest: pip install pytest", file=sys.stderr)
        return 2
    from runbook_sandbox import gameday_scenarios

    for given in (args.chart, args.profile, args.notebook, args.values):
        if given is not None and not Path(given).exists():
            print(f"runbook gameday: {given}: no such file or folder", file=sys.stderr)
            return 2
    chosen = [s for s in SCENARIOS if not args.only or any(o in s for o in args.only)]
    if not chosen:
        print(f"runbook gameday: no scenario matches {args.only}; {SCENARIOS}", file=sys.stderr)
        return 2
    evidence = Path(args.evidence or tempfile.mkdtemp(prefix="gameday-evidence-")).resolve()
    scratch = Path(tempfile.mkdtemp(prefix="gameday-"))
    (scratch / "pytest.ini").write_text("[pytest]\n")
    argv = [
        str(Path(gameday_scenarios.__file__)),
        "-c", str(scratch / "pytest.ini"), "--rootdir", str(scratch),
        "-p", "no:cacheprovider", "-p", "no:terminal",
        "-o", "junit_family=xunit1", "-W", "ignore::DeprecationWarning",
        "--runbook-chart", str(Path(args.chart).resolve()),
        "--runbook-profile", str(Path(args.profile).resolve()),
        "--runbook-evidence", str(evidence),
        "-k", " or ".join(chosen),
    ]  # fmt: skip
    if args.notebook:
        argv += ["--runbook-notebook", str(Path(args.notebook).resolve())]
    if args.values:
        argv += ["--runbook-values", str(Path(args.values).resolve())]
    if args.junit:
        argv += ["--junitxml", str(Path(args.junit).resolve())]
    reporter = Reporter(total=len(chosen))
    print(f"game day: {len(chosen)} scenarios; evidence in {evidence}", flush=True)
    began = time.monotonic()
    status = pytest.main(argv, plugins=[reporter])
    total_s = time.monotonic() - began
    rows = [reporter.rows.get(name, Row(name)) for name in chosen]
    report = markdown(rows, chart=Path(args.chart), profile=Path(args.profile), total_s=total_s)
    print(report)
    if args.report:
        Path(args.report).write_text(report)
    return 0 if status == 0 and all(r.held for r in rows) else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(subparsers, "gameday", __doc__)
    p.add_argument("--chart", required=True, metavar="PATH", help="the team's Helm chart")
    p.add_argument("--profile", required=True, metavar="FILE", help="the service profile")
    p.add_argument(
        "--notebook",
        metavar="PATH",
        help="the team's rollback notebook copy (default: the bundled one)",
    )
    p.add_argument(
        "--values", metavar="FILE", help="a values file for every install (default: none)"
    )
    p.add_argument(
        "--report",
        metavar="MARKDOWN",
        help="also write the Markdown report here (default: printed only)",
    )
    p.add_argument("--junit", metavar="XML", help="JUnit XML for CI (default: none)")
    p.add_argument(
        "--evidence", metavar="DIR", help="keep the evidence here (default: a temporary folder)"
    )
    names = ", ".join(SCENARIOS)
    p.add_argument("--only", action="append", metavar="NAME",
                   help=f"run only the scenarios whose name contains NAME, repeatable "
                        f"(default: all): {names}")  # fmt: skip
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="runbook")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status
