"""What ``--help`` tells a person: one spelling per option, metavars that say what a value is,
an example per command; earlier spellings still work, with a warning; and the notebooks'
parameters listed from the settings model (what ``runbook run rollback --list-parameters``
prints)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from runbook_lib.cli.main import build_parser, main
from runbook_lib.cli.setting_options import parameter_table
from runbook_lib.core.settings import parameter_rows, parameters_cell

REPO = Path(__file__).resolve().parents[2]
REPLAY = REPO / "notebooks" / "data" / "bad_deploy.csv"
DEPLOYED = "2026-11-20T14:00:00Z"
COMMANDS = {
    "evaluate": ["evaluate"],
    "rules": ["rules"],
    "profile": ["profile"],
    "profile check": ["profile", "check"],
    "profile init": ["profile", "init"],
    "verify-evidence": ["verify-evidence"],
    "serve": ["serve"],
}


def _parser(path: list[str]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_command_shows_each_option_once_with_a_meaningful_metavar_and_an_example(
    command: str,
) -> None:
    text = _parser(COMMANDS[command]).format_help()
    listed = re.split(r"^examples?:$", text, flags=re.MULTILINE)[0]
    options = re.findall(r"^  (--[a-z][a-z0-9-]*)", listed, flags=re.MULTILINE)
    assert len(options) == len(set(options)), f"{command}: an option listed twice"
    assert not re.search(r"--[a-z0-9]+_[a-z0-9_]+", text), f"{command}: an underscore spelling"
    for vague in ("VALUE", "PATH", " TEXT"):
        assert vague not in text, f"{command}: metavar {vague.strip()} says nothing"
    assert re.search(r"^examples?:\n  runbook ", text, flags=re.MULTILINE), command


def test_evaluate_help_is_short() -> None:
    text = _parser(["evaluate"]).format_help()
    usage = text.split("\n\n")[0]
    assert len(usage.splitlines()) == 2
    for old in ("--metrics", "--prometheus", "--selector", "--rate-window", "--manual"):
        assert not re.search(rf"{old}\b(?!-)", text), old


@pytest.mark.parametrize(
    ("old", "new"),
    [("--metrics", "--replay-csv"), ("--manual", "--manual-reason")],
)
def test_earlier_spellings_still_work_and_say_which_to_use(
    old: str, new: str, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = [old, "on-call says so"] if old == "--manual" else []
    source = [] if extra else [old, str(REPLAY)]
    args = ["evaluate", *source, "--deployed-at", DEPLOYED, "--json", *extra]
    if extra:
        args = [
            "evaluate",
            "--replay-csv",
            str(REPLAY),
            "--deployed-at",
            DEPLOYED,
            "--json",
            *extra,
        ]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert f"runbook evaluate: {old} is deprecated; use {new}" in captured.err
    assert json.loads(captured.out)["verdict"] == "rollback"


def test_the_parameters_own_name_is_accepted_quietly(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["evaluate", "--replay_csv", str(REPLAY), "--deployed_at", DEPLOYED, "--json"]
    assert main(args) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("runbook", ["rollback", "assess"])
def test_the_parameter_table_lists_every_notebook_parameter(runbook: str) -> None:
    cell = parameters_cell(runbook)
    names = re.findall(r"^(\w+): \w+ = ", cell, flags=re.MULTILINE)
    table = parameter_table(runbook)
    listed = re.findall(r"^  (\w+)\s", table, flags=re.MULTILINE)
    assert listed == names
    rows = {r.name: r for r in parameter_rows(runbook)}
    for name in names:
        line = next(x for x in table.splitlines() if x.startswith(f"  {name} "))
        default = rows[name].default
        if rows[name].required and not default:
            assert line.split()[1] == "required", line
        else:  # quoted when empty or when it has spaces
            plain = default and " " not in default
            assert f"  {default if plain else chr(34) + default + chr(34)}  " in line, line
        assert rows[name].help.removesuffix(" (required)") in line


def test_required_parameters_say_why() -> None:
    table = parameter_table("rollback")
    line = next(x for x in table.splitlines() if x.startswith("  expected_cluster "))
    assert line.split()[1] == "required"
    assert "(required: a guard against rolling back the wrong cluster)" in line


def test_runbook_run_lists_its_parameters_without_starting_a_kernel(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "rollback", "--list-parameters"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.strip().startswith("expected_cluster"))
    assert "required" in line
    assert "wrong cluster" in line
    assert "(required) (required" not in out
    assert any(row.split()[:2] == ["rollout_timeout", "5m"] for row in out.splitlines())
