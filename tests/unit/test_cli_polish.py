"""The ``runbook`` command as a person meets it: --version and help texts.

Help: every subcommand and option explains itself and shows its default; files it names
exist in the repository. A closed pipe and a fresh interpreter's imports: tests/cli.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from runbook_lib.cli.main import RunbookParser, add_command, build_parser, main
from runbook_lib.evidence.manifest import MANIFEST_NAME, SIGNATURE_NAME

REPO = Path(__file__).resolve().parents[2]
REPLAY = REPO / "notebooks" / "data" / "bad_deploy.csv"


def _parsers(
    parser: argparse.ArgumentParser, path: str = "runbook"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


@cache
def _all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    return list(_parsers(build_parser()))


def _ids() -> list[str]:
    return [path for path, _ in _all_parsers()]


def _pyproject_version() -> str:
    version: str = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return version


def test_version_option_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"runbook {_pyproject_version()}"


def test_every_subcommand_has_a_one_line_help() -> None:
    for path, parser in _all_parsers():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                assert helped == set(action.choices), f"{path}: subcommands without help"


@pytest.mark.parametrize("path", _ids())
def test_every_option_has_help_and_shows_its_default(path: str) -> None:
    parser = dict(_all_parsers())[path]
    assert parser.description, f"{path}: no description in --help"
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue  # hidden: an earlier spelling, accepted but not shown
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"{path} {name}: no help text"
        if not action.option_strings or action.nargs == 0 or action.required:
            continue  # positionals, required options and flags have no default to show
        shown = formatter._expand_help(action)  # the text --help prints for this option
        # "empty: ..." is how the parameter vocabulary says what an empty default means.
        said = "default" in shown.lower() or "empty:" in shown.lower()
        assert said, f"{path} {name}: help does not show the default"


def test_a_command_module_docstring_is_its_help() -> None:
    doc = """Do the thing

    What the thing is, in a sentence
    that goes on.

    examples:
      runbook thing --now
      runbook thing --later
    """
    parser = RunbookParser(prog="runbook")
    child = add_command(parser.add_subparsers(dest="command"), "thing", doc)
    child.add_argument("--now", action="store_true", help="at once")
    assert re.search(r"^    thing +Do the thing$", parser.format_help(), flags=re.MULTILINE)
    text = child.format_help()
    assert "\n\nWhat the thing is, in a sentence that goes on.\n\n" in text
    # The examples follow the options, as in every other command's help.
    assert text.index("--now ") < text.index("examples:\n  runbook thing --now\n  runbook thing")
    assert text.count("examples:") == 1


def test_a_command_without_docstring_still_parses() -> None:
    # python -OO strips docstrings: the command loses its help text, not its options.
    parser = RunbookParser(prog="runbook")
    child = add_command(parser.add_subparsers(dest="command"), "thing", None)
    child.add_argument("--now", action="store_true", help="at once")
    assert parser.parse_args(["thing", "--now"]).now


def test_verify_evidence_help_names_the_files_it_checks() -> None:
    text = " ".join(dict(_all_parsers())["runbook verify-evidence"].format_help().split())
    assert MANIFEST_NAME in text
    assert SIGNATURE_NAME in text


def test_defaults_the_parser_knows_are_printed() -> None:
    out = build_parser()._subparsers._group_actions[0].choices["run"].format_help()  # type: ignore[union-attr]
    assert "--parameter NAME VALUE" in out
    text = " ".join(out.split())
    assert "(default: none)" in text  # -p is repeatable, none by default


def test_help_names_only_files_that_exist() -> None:
    texts = []
    for _, parser in _all_parsers():
        texts.append(parser.format_help())
    mentioned = set(re.findall(r"[\w./-]+\.md\b", "\n".join(texts)))
    for name in mentioned:
        assert (REPO / name).exists() or list(REPO.rglob(Path(name).name)), (
            f"--help refers to {name}, which is not in the repository"
        )
    assert "DESIGN.md" not in "\n".join(texts)


def test_help_prints_percent_signs_once() -> None:
    # Help strings are %-formatted (so "1%%" prints "1%"); descriptions are printed as written.
    for path, parser in _all_parsers():
        assert "%%" not in parser.format_help(), f"{path} --help shows a doubled percent sign"


def test_the_docs_describe_the_replay_format() -> None:
    body = (REPO / "docs" / "REPLAY.md").read_text()
    header = REPLAY.read_text().splitlines()[0]
    for column in header.split(","):
        name = "business:<name>" if column.startswith("business:") else column
        assert name in body, f"docs/REPLAY.md does not mention {name}"
